"""Markdown tables for docs/prior.md from the experiment outputs in experiments/prior/results.

    python experiments/prior/report_tables.py [--results experiments/prior/results]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
METHOD_ORDER = ["modellens", "gbm", "model_mean", "params", "likes", "random"]


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}f}"
        return str(value)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def evaluation_tables(results: pd.DataFrame) -> str:
    results = results.copy()
    results["kind"] = results["split"].str.split(":").str[0]
    out = []
    means = results.groupby(["kind", "method"])[["wtau", "ndcg@10", "recall@10"]].mean()
    for kind in ["completion", "unseen_models", "unseen_task"]:
        if kind not in means.index.get_level_values(0):
            continue
        table = means.loc[kind].reindex([m for m in METHOD_ORDER if m in means.loc[kind].index]).reset_index()
        tasks = results[results["kind"] == kind]["task"].nunique()
        out += [f"**{kind}** (mean over {tasks} tasks)", "", markdown(table), ""]
    for kind in ["completion", "unseen_models", "unseen_task"]:
        part = results[results["kind"] == kind]
        if part.empty:
            continue
        pivot = part.pivot_table(index="task", columns="method", values="wtau")
        pivot = pivot[[m for m in METHOD_ORDER if m in pivot.columns]].reset_index()
        out += [f"**{kind}: weighted Kendall tau per task**", "", markdown(pivot), ""]
    return "\n".join(out)


def replay_tables(replay: pd.DataFrame) -> str:
    out = []
    replay = replay.copy()
    replay["cell"] = replay["mean_rank"].map(lambda v: f"{v:.1f}") + replay["se_rank"].map(
        lambda v: "" if pd.isna(v) else f" ±{v:.1f}") + replay["mean_accuracy"].map(lambda v: f" ({100 * v:.1f})")
    for (population, task, seed), group in replay.groupby(["population", "task", "seed"], sort=False):
        top = group[group["method"] == "prior-top1"].iloc[0]
        head = (f"**{population} / {task}** (seed {seed}, K={int(group['K'].iloc[0])}, best accuracy "
                f"{100 * group['best_accuracy'].iloc[0]:.1f}, Spearman(prior, accuracy) {group['spearman_prior'].iloc[0]:.2f}; "
                f"prior's top-1 without search: rank {top['mean_rank']:.0f} ({100 * top['mean_accuracy']:.1f}))")
        body = group[group["method"] != "prior-top1"]
        pivot = body.pivot_table(index=["method", "condition"], columns="N", values="cell", aggfunc="first", sort=False)
        pivot.columns = [f"N={c}: rank ±se (acc %)" for c in pivot.columns]
        downloads = body.groupby(["method", "condition"], sort=False)["downloads"].first()
        pivot["downloads"] = downloads.astype(int).astype(str)
        out += [head, "", markdown(pivot.reset_index()), ""]
    return "\n".join(out)


def replay_summary(replay: pd.DataFrame) -> str:
    """Mean change in rank and accuracy against the same method without the prior, over population draws."""
    runs = replay[replay["method"] != "prior-top1"].copy()
    keys = ["population", "task", "seed", "method", "N"]
    none = runs[runs["condition"] == "none"].set_index(keys)
    index = runs.set_index(keys).index
    runs["d_rank"] = runs["mean_rank"].to_numpy() - none["mean_rank"].reindex(index).to_numpy()
    runs["d_acc"] = 100 * (runs["mean_accuracy"].to_numpy() - none["mean_accuracy"].reindex(index).to_numpy())
    runs = runs[runs["condition"] != "none"]
    rows = []
    for (method, condition), group in runs.groupby(["method", "condition"], sort=False):
        row = {"method": method, "condition": condition}
        for n, part in group.groupby("N"):
            base = none.xs(n, level="N")["mean_rank"]
            base = base[base.index.get_level_values("method") == method].mean()
            row[f"N={n}: rank without -> with"] = f"{base:.1f} -> {base + part['d_rank'].mean():.1f}"
            row[f"N={n}: d rank (better in)"] = f"{part['d_rank'].mean():+.1f} ({int((part['d_rank'] < 0).sum())}/{len(part)})"
            row[f"N={n}: d acc (points)"] = f"{part['d_acc'].mean():+.2f}"
        row["downloads"] = str(int(group["downloads"].iloc[0]))
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=REPO / "experiments/prior/results")
    args = parser.parse_args()
    evaluation = args.results / "results.csv"
    if evaluation.exists():
        print(evaluation_tables(pd.read_csv(evaluation)))
    frames = []
    for path in sorted(args.results.glob("replay_with_prior_seed*.csv")):
        frame = pd.read_csv(path)
        frame["seed"] = int(path.stem.rsplit("seed", 1)[1])
        frames.append(frame)
    if frames:
        replay = pd.concat(frames, ignore_index=True)
        print(replay_summary(replay))
        print()
        print(replay_tables(replay))


if __name__ == "__main__":
    main()
