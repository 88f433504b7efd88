"""Issue 8's statistics from a sweep's output: the recommended method against the best existing one per cell,
the paper's ordering claims, the literal Table 4, and what each method costs a live search.

    python experiments/statistics/report.py experiments/statistics/evidence.yaml \
        experiments/statistics/results/evidence [--out experiments/statistics/results/evidence/summary.md]

Definitions
* existing methods: every registered spending method except `recommended`; the literal Table 4 schedule is
  shown but not eligible as "best existing" (it spends more than the budget);
* best existing (per tree and N): the existing method with the lowest mean rank;
* paired difference: recommended's rank minus the best existing method's rank, repetition by repetition
  (all methods share their repetition keys); its SE is sd(differences) / sqrt(R);
* the bar (issue 8): recommended's mean rank <= best existing mean rank + 1 SE, for both SEs: the paired
  SE of the difference and the best method's own SE (the one the tables print);
* geometric mean of rank ratios: exp(mean over cells of log(rank_recommended / rank_other)).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

RECOMMENDED = "recommended"
FAMILY_OF_PREFIX = {"Cal-": "calibrated", "Dense-": "dense-band", "LB-": "leaderboard", "RouterBench": "routerbench"}
PAPER_METHODS = ("ours", "sequential-halving", "ours-sh-schedule", "ours-no-corr")


def family_of(tree: str) -> str:
    for prefix, family in FAMILY_OF_PREFIX.items():
        if tree.startswith(prefix):
            return family
    return "other"


def load(out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = pd.read_parquet(out_dir / "results.parquet")
    per_rep = pd.read_parquet(out_dir / "per_rep.parquet")
    for frame in (results, per_rep):
        frame["variant"] = np.where(frame["schedule"].isin(["-", "rule_a", "karnin"]), frame["method"],
                                    frame["method"] + ":" + frame["schedule"])
    return results, per_rep


def ranks_of(per_rep: pd.DataFrame, tree: str, variant: str, budget: int) -> np.ndarray:
    cell = per_rep[(per_rep["tree"] == tree) & (per_rep["variant"] == variant) & (per_rep["budget"] == budget)]
    return cell.sort_values("rep")["rank"].to_numpy(dtype=float)


def verdict(results: pd.DataFrame, per_rep: pd.DataFrame) -> pd.DataFrame:
    spending = results[results["budget"] > 0]
    rows = []
    for (tree, budget), cell in spending.groupby(["tree", "budget"], sort=False):
        existing = cell[(cell["method"] != RECOMMENDED) & (cell["budget_fraction"] <= 1.0 + 1e-9)]
        rec = cell[cell["method"] == RECOMMENDED]
        if existing.empty or rec.empty:
            continue
        best = existing.sort_values("mean_rank").iloc[0]
        rec = rec.iloc[0]
        a = ranks_of(per_rep, tree, RECOMMENDED, budget)
        b = ranks_of(per_rep, tree, best["variant"], budget)
        d = a - b
        paired_se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
        rows.append({
            "family": family_of(tree), "tree": tree, "N": int(budget), "best_existing": best["label"],
            "best_rank": best["mean_rank"], "best_se": best["se_rank"], "rec_rank": rec["mean_rank"],
            "rec_se": rec["se_rank"], "diff": float(d.mean()), "paired_se": paired_se,
            "ratio": rec["mean_rank"] / best["mean_rank"],
            "within_paired_se": bool(d.mean() <= paired_se + 1e-12),
            "within_best_se": bool(rec["mean_rank"] <= best["mean_rank"] + best["se_rank"] + 1e-12),
            "rec_acc": rec["mean_accuracy"], "best_acc": best["mean_accuracy"],
            "rec_p_top3": rec["p_top3"], "best_p_top3": best["p_top3"],
        })
    return pd.DataFrame(rows)


def ratio_table(results: pd.DataFrame) -> pd.DataFrame:
    """Geometric mean over cells of rank(recommended) / rank(method), per method (and per family)."""
    spending = results[results["budget"] > 0]
    rec = spending[spending["method"] == RECOMMENDED].set_index(["tree", "budget"])["mean_rank"]
    rows = []
    for (variant, label), group in spending[spending["method"] != RECOMMENDED].groupby(["variant", "label"]):
        other = group.set_index(["tree", "budget"])["mean_rank"]
        common = rec.index.intersection(other.index)
        if common.empty:
            continue
        logs = np.log(rec[common] / other[common])
        row = {"method": label, "cells": len(common), "all": float(np.exp(logs.mean()))}
        fam = pd.Series([family_of(t) for t, _ in common], index=common)
        for family in dict.fromkeys(fam):
            row[family] = float(np.exp(logs[fam == family].mean()))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("all")


def best_existing_ratio(table: pd.DataFrame) -> dict[str, float]:
    out = {"all": float(np.exp(np.log(table["ratio"]).mean()))}
    for family, group in table.groupby("family", sort=False):
        out[family] = float(np.exp(np.log(group["ratio"]).mean()))
    return out


def paper_claims(results: pd.DataFrame, per_rep: pd.DataFrame) -> pd.DataFrame:
    """Per family and N: the paper's orderings, each counted as (holds significantly / reversed significantly
    / within noise) over trees, by the paired difference of ranks and its SE."""
    claims = [("Ours < Sequential Halving", "ours", "sequential-halving"),
              ("Ours < Ours w. SH Scheduler (aggressive schedule helps)", "ours", "ours-sh-schedule"),
              ("Ours < Ours w/o Corr. Sampling (correlation helps)", "ours", "ours-no-corr"),
              ("Ours w. SH Scheduler < Sequential Halving", "ours-sh-schedule", "sequential-halving"),
              ("Ours < UCB-StdDev.", "ours", "ucb-stddev"),
              ("Ours < BayesElim", "ours", "bayes-elim")]
    rows = []
    spending = results[results["budget"] > 0]
    for claim, a_name, b_name in claims:
        for (family, budget), cells in spending.assign(family=spending["tree"].map(family_of)).groupby(
                ["family", "budget"], sort=False):
            holds = reversed_ = noise = 0
            ratios = []
            for tree in cells["tree"].unique():
                a, b = ranks_of(per_rep, tree, a_name, budget), ranks_of(per_rep, tree, b_name, budget)
                if a.size == 0 or b.size == 0:
                    continue
                d = a - b
                se = d.std(ddof=1) / np.sqrt(d.size)
                ratios.append(a.mean() / b.mean())
                if d.mean() < -se:
                    holds += 1
                elif d.mean() > se:
                    reversed_ += 1
                else:
                    noise += 1
            if ratios:
                rows.append({"claim": claim, "family": family, "N": int(budget), "holds": holds,
                             "reversed": reversed_, "within_1se": noise,
                             "geo_mean_ratio": float(np.exp(np.mean(np.log(ratios))))})
    return pd.DataFrame(rows)


def live_cost(config_path: Path, budgets=(10, 50)) -> pd.DataFrame:
    """What a live search pays beyond evaluations: ask/tell rounds (each one a broadcast to the survivors)
    and arm-rounds (a survivor answering one round: a model (re)load unless it stays resident), for one
    repetition on each tree size of the config."""
    from raygems.bandits import get_method, list_methods, repetition_keys
    from raygems.replay import MatrixEnvironment
    from raygems.replay.engine import method_options
    from raygems.sweep.config import SweepConfig

    config = SweepConfig.from_yaml(config_path)
    rows = []
    seen = set()
    for tree in config.trees:
        matrix = tree.load()
        if matrix.num_models in seen or matrix.num_models < 100:
            continue
        seen.add(matrix.num_models)
        for budget in budgets:
            for method in list_methods():
                spec = get_method(method)
                if not spec.spends_budget or spec.anytime or method == "successive-rejects" and budget > 10:
                    continue
                schedules = ["rule_a", "table4_literal"] if method == "ours" else [None]
                for schedule in schedules:
                    opts = method_options(matrix, method, {"schedule": schedule} if schedule else {})
                    algo = spec.make(matrix.num_models, matrix.num_queries, budget, repetition_keys(0, 1), **opts)
                    env = MatrixEnvironment(matrix.values, algo.seeds)
                    rounds = arm_rounds = 0
                    while not algo.done:
                        pulls = algo.ask()
                        if pulls is None:
                            break
                        rounds += 1
                        arm_rounds += len(pulls)
                        algo.tell(env.evaluate(pulls))
                    rows.append({"K": matrix.num_models, "N": budget,
                                 "method": spec.label + (f" ({schedule})" if schedule == "table4_literal" else ""),
                                 "ask_tell_rounds": rounds, "arm_rounds": arm_rounds,
                                 "arm_rounds_per_model": arm_rounds / matrix.num_models})
            b = budget * matrix.num_models
            rows.append({"K": matrix.num_models, "N": budget, "method": "UCB / UCB-E / UCB-StdDev. / TTTS",
                         "ask_tell_rounds": b, "arm_rounds": b, "arm_rounds_per_model": float(budget)})
    return pd.DataFrame(rows)


def per_tree_tables(results: pd.DataFrame) -> list[str]:
    parts = []
    spending = results[results["budget"] > 0]
    budgets = sorted(spending["budget"].unique())
    for tree in spending["tree"].unique():
        cells = spending[spending["tree"] == tree]
        k = int(cells["num_models"].iloc[0])
        refs = results[(results["tree"] == tree) & (results["budget"] == 0)]
        header = "| Method | " + " | ".join(f"N={n}: rank ± SE / acc ± SE / P(top-3)" for n in budgets) + " |"
        lines = [f"#### {tree} (K={k}, {family_of(tree)})", "", header, "|---|" + "---|" * len(budgets)]
        order = cells.groupby("label")["mean_rank"].mean().sort_values().index
        for label in order:
            row = cells[cells["label"] == label].set_index("budget")
            values = []
            for n in budgets:
                if n not in row.index:
                    values.append("–")
                    continue
                r = row.loc[n]
                mark = "†" if r["budget_fraction"] > 1 + 1e-9 else ""
                values.append(f"{r['mean_rank']:.1f} ± {r['se_rank']:.1f} / {r['mean_accuracy']:.3f} ± "
                              f"{r['se_accuracy']:.3f} / {r['p_top3']:.2f}{mark}")
            lines.append(f"| {'**' + label + '**' if label == 'Recommended' else label} | " + " | ".join(values) + " |")
        for _, r in refs.iterrows():
            lines.append(f"| {r['label']} | " + " | ".join(
                [f"{r['mean_rank']:.1f} / {r['mean_accuracy']:.3f}"] + [""] * (len(budgets) - 1)) + " |")
        parts += lines + [""]
    return parts


def budget_table(results: pd.DataFrame) -> str:
    spending = results[results["budget"] > 0]
    budgets = sorted(spending["budget"].unique())
    lines = ["| Method | " + " | ".join(f"N={n}" for n in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for label, group in spending.groupby("label"):
        cells = []
        for n in budgets:
            f = group.loc[group["budget"] == n, "budget_fraction"]
            cells.append(f"{f.mean():.3f} [{f.min():.2f}-{f.max():.2f}]" if len(f) else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(frame: pd.DataFrame, floats: int = 2) -> str:
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            frame[column] = frame[column].map(lambda v: f"{v:.{floats}f}")
        elif frame[column].dtype.kind == "b":
            frame[column] = frame[column].map(lambda v: "yes" if v else "**no**")
    header = "| " + " | ".join(frame.columns) + " |"
    lines = [header, "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("out_dir")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-live-cost", action="store_true")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    results, per_rep = load(out_dir)
    table = verdict(results, per_rep)
    parts = ["# Issue 8 evidence: summary", "", f"Source: `{out_dir}` (results.parquet, per_rep.parquet).", ""]
    if not table.empty:
        ok_paired, ok_best = table["within_paired_se"].sum(), table["within_best_se"].sum()
        ratios = best_existing_ratio(table)
        parts += ["## Recommended vs the best existing method, per cell", "",
                  f"Within one paired SE of the best existing method: {ok_paired} of {len(table)} cells; within "
                  f"one SE of the best method's mean: {ok_best} of {len(table)}. Geometric mean of rank ratios "
                  f"(recommended / best existing per cell): " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
                  + ".", "", fmt(table.drop(columns=["rec_acc", "best_acc"]), 2), ""]
        parts += ["## Geometric mean of rank ratios, recommended / method", "",
                  fmt(ratio_table(results), 3), ""]
    claims = paper_claims(results, per_rep)
    if not claims.empty:
        claims.to_csv(out_dir / "paper_claims.csv", index=False)
        compact = []
        for (claim, family), group in claims.groupby(["claim", "family"], sort=False):
            compact.append({"claim": claim, "family": family, "cells": int(group[["holds", "reversed",
                                                                                    "within_1se"]].values.sum()),
                            "holds": int(group["holds"].sum()), "reversed": int(group["reversed"].sum()),
                            "within_1se": int(group["within_1se"].sum()),
                            "geo_mean_ratio": float(np.exp(np.log(group["geo_mean_ratio"]).mean())),
                            "ratio_by_N": " / ".join(f"{v:.2f}" for v in group.sort_values("N")["geo_mean_ratio"])})
        parts += ["## The paper's orderings", "",
                  "Per claim and family, over trees and N = " + ", ".join(str(n) for n in sorted(claims["N"].unique()))
                  + ": cells where the claim holds by more than one paired SE, is reversed by more than one paired SE, "
                  "or is within noise; geo_mean_ratio = rank(left) / rank(right), below 1 when the claim holds on "
                  "average (per N in ratio_by_N). Per-cell counts: paper_claims.csv.", "", fmt(pd.DataFrame(compact), 2), ""]
    literal = results[results["schedule"] == "table4_literal"]
    if not literal.empty:
        rule_a = results[(results["method"] == "ours") & (results["schedule"] == "rule_a")].set_index(
            ["tree", "budget"])
        rec = results[results["method"] == RECOMMENDED].set_index(["tree", "budget"])
        rows = []
        for _, r in literal.iterrows():
            key = (r["tree"], r["budget"])
            rows.append({"tree": r["tree"], "N": int(r["budget"]), "budget_fraction": r["budget_fraction"],
                         "literal_rank": r["mean_rank"], "literal_se": r["se_rank"],
                         "rule_a_rank": rule_a["mean_rank"].get(key, np.nan),
                         "recommended_rank": rec["mean_rank"].get(key, np.nan)})
        parts += ["## The literal Table 4 schedule", "", fmt(pd.DataFrame(rows), 2), ""]
    parts += ["## Budget used", "", "Mean evaluations spent as a fraction of N·K, averaged over the trees (min-max "
              "over trees in brackets).", "", budget_table(results), ""]
    parts += ["## Per tree", ""] + per_tree_tables(results)
    if not args.no_live_cost:
        parts += ["## Live cost: ask/tell rounds and arm-rounds (one repetition)", "",
                  fmt(live_cost(Path(args.config)), 1), ""]
    text = "\n".join(parts) + "\n"
    out = Path(args.out) if args.out else out_dir / "summary.md"
    out.write_text(text)
    table.to_csv(out.with_name("verdict.csv"), index=False)
    print(text[:4000])
    print(f"... written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
