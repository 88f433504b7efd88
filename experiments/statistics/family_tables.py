"""The population families' statistics for docs/statistics.md: one row per generated tree (from family.json
beside each tree written by make_families.py), RouterBench, and the dense band's fit to the paper.

    python experiments/statistics/family_tables.py --split confirm
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from raygems.populations import load_routerbench
from raygems.populations.families import DENSE_BAND_FITS, PAPER_TREE_STATS

HERE = Path(__file__).resolve().parent


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summary_row(name: str, s: dict) -> dict:
    base_acc = s.get("popular_base_accuracy")
    return {"tree": name, "K": s["K"], "Q": s["Q"], "best": f"{s['best']:.3f}", "mean": f"{s['mean']:.3f}",
            "popular base: acc / rank": f"{base_acc:.3f} / {s['popular_base_rank']}" if base_acc is not None else "–",
            "models ≤1 / ≤2 / ≤5 pts below best": f"{s['within_1_point']} / {s['within_2_points']} / {s['within_5_points']}",
            "share >10 pts below": f"{s['share_10_points_below_best']:.2f}", "exact copies": s["exact_copies"]}


def fit_table(results_dir: Path) -> pd.DataFrame:
    fits = pd.concat([pd.read_csv(path) for path in sorted(results_dir.glob("dense_band_fit_*_pass.csv"))])
    rows = []
    for tree, fit in DENSE_BAND_FITS.items():
        cand = fits[fits["tree"] == tree]
        for key, value in fit.items():
            cand = cand[(cand[key] - value).abs() < 1e-9]
        best = cand.iloc[0]
        stats = PAPER_TREE_STATS[tree]
        for method, label, paper in (("uniform", "Uniform", stats.uniform_rank),
                                     ("sequential-halving", "Sequential Halving", stats.sh_rank)):
            row = {"tree": tree, "method": label}
            row.update({f"N={n}": f"{best[f'{method}@{n}']:.1f} ({paper[n]:.1f})" for n in (10, 25, 50, 100, 200)})
            row["fit loss"] = f"{best['loss']:.3f}"
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="confirm")
    args = parser.parse_args()
    rows = []
    for path in sorted((HERE / "data" / args.split).glob("*/family.json")):
        info = json.loads(path.read_text())
        rows.append(summary_row(info["name"], info["summary"]))
    rows.append(summary_row("routerbench", load_routerbench().summary()))
    print(markdown(pd.DataFrame(rows)))
    print()
    print(markdown(fit_table(HERE / "results")))


if __name__ == "__main__":
    main()
