"""Design study for the recommended method: replay method variants on the dev trees, paired by repetition.

Every variant is replayed with the same repetition keys (common random numbers), so differences between
variants are paired per repetition; the study reports mean rank ± SE per tree and budget, and the geometric
mean over cells of each variant's rank ratio to a reference variant.

    python experiments/statistics/design_study.py --variants all --seed 0 --reference sh-corr \
        --out experiments/statistics/results/design/dev_seed0.parquet
    python experiments/statistics/design_study.py --variants finalists --seed 2 --reference final \
        --out experiments/statistics/results/design/dev_seed2.parquet

Only fast (elimination) methods belong here; the full comparison with every method is the sweep
(experiments/statistics/*.yaml).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from raygems.replay import load_matrix, replay_budgets

import variants  # noqa: E402  (registers `recommended-study`: the options tested and not kept)

variants.register()

HERE = Path(__file__).resolve().parent
ROUTERBENCH = HERE.parents[2] / "shared" / "data" / "matrices" / "routerbench-0shot-11x3150"

#: label -> (registered method, options). Every option of `recommended` is spelled out, so the labels keep
#: their meaning whatever the defaults are. "replan" = correlated halving re-planned every round (carry-over,
#: pool-aware); "final" = the shipped defaults (replan + gentle elimination among the last 32).
BASE = {"eta": 2.0, "late_eta": None, "late_survivors": 32, "stratify": False}
FINAL = {"eta": 2.0, "late_eta": 1.3, "late_survivors": 32, "stratify": False}
VARIANTS: dict[str, tuple[str, dict]] = {
    # existing methods
    "sh": ("sequential-halving", {}),
    "bayes-elim": ("bayes-elim", {}),
    "sr": ("successive-rejects", {}),
    "ours": ("ours", {}),
    "ours-no-corr": ("ours-no-corr", {}),
    "sh-corr": ("ours-sh-schedule", {}),
    # the ladder from the best paper method to the recommended one
    "sh-corr-carry": ("ours-sh-schedule", {"carry_over": True}),
    "replan": ("recommended", BASE),
    "final": ("recommended", FINAL),
    "final+late-budget-halving": ("recommended-study", {**FINAL, "late_budget": "halving"}),
    # task strata
    "replan+strata": ("recommended", {**BASE, "stratify": True}),
    "final+strata": ("recommended", {**FINAL, "stratify": True}),
    # one elimination ratio throughout
    "eta3": ("recommended", {**BASE, "eta": 3.0}),
    "eta1.7": ("recommended", {**BASE, "eta": 1.7}),
    "eta1.5": ("recommended", {**BASE, "eta": 1.5}),
    "eta1.3": ("recommended", {**BASE, "eta": 1.3}),
    # halve early, gentle late: late ratio and where the late stage begins
    "late13-16": ("recommended", {**FINAL, "late_survivors": 16}),
    "late13-64": ("recommended", {**FINAL, "late_survivors": 64}),
    "late13-128": ("recommended", {**FINAL, "late_survivors": 128}),
    "late11-32": ("recommended", {**FINAL, "late_eta": 1.1}),
    "late15-32": ("recommended", {**FINAL, "late_eta": 1.5}),
    "late15-64": ("recommended", {**FINAL, "late_eta": 1.5, "late_survivors": 64}),
    "late17-32": ("recommended", {**FINAL, "late_eta": 1.7}),
    "eta1.5+late13-32": ("recommended", {**FINAL, "eta": 1.5}),
    # options tested on top of the final design and not kept (experiments/statistics/variants.py)
    "final+ties25": ("recommended-study", {**FINAL, "tie_slack": 0.25}),
    "final+ties-all": ("recommended-study", {**FINAL, "tie_slack": 1e9}),
    "final+z3": ("recommended-study", {**FINAL, "cut_z": 3.0}),
    "final+z2": ("recommended-study", {**FINAL, "cut_z": 2.0}),
    "final+first30keep25": ("recommended-study", {**FINAL, "first_round_share": 0.3, "first_round_keep": 0.25}),
    "final+first20keep35": ("recommended-study", {**FINAL, "first_round_share": 0.2, "first_round_keep": 0.35}),
    "final+anchor": ("recommended-study", {**FINAL, "anchor_arm": "popular-base"}),
}
STAGES = {
    "all": list(VARIANTS),
    "finalists": ["sh-corr", "bayes-elim", "sr", "replan", "final", "final+late-budget-halving", "final+strata", "eta1.5", "eta1.7",
                  "late13-64", "late15-32", "late15-64", "eta1.5+late13-32"],
}


def load_trees(split: str, names: list[str] | None):
    folder = HERE / "data" / split
    trees = {}
    for path in sorted(folder.iterdir()):
        if names and path.name not in names:
            continue
        models = path / "models.parquet"
        trees[path.name] = load_matrix(path, models=models if models.exists() else None)
    if (not names or "routerbench" in names) and ROUTERBENCH.is_dir():
        trees["routerbench"] = load_matrix(ROUTERBENCH)
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev")
    parser.add_argument("--trees", default="", help="comma-separated tree names (default: all but the K ~ 2,000 "
                        "leaderboard tree)")
    parser.add_argument("--variants", default="all", help="comma-separated labels, or a stage: " + ", ".join(STAGES))
    parser.add_argument("--budgets", default="10,25,50,100")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--routerbench-reps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", default=None, help="variant the ratios are taken against (default: first)")
    parser.add_argument("--out", default=str(HERE / "results" / "design" / "study.parquet"))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    variants = STAGES.get(args.variants) or args.variants.split(",")
    trees = load_trees(args.split, [t for t in args.trees.split(",") if t] or None)
    if not args.trees:
        trees.pop("leaderboard-mistral-7b-all", None)
    out = Path(args.out)
    frames = [pd.read_parquet(out)] if out.exists() else []
    done = set()
    if frames:
        old = frames[0]
        done = set(zip(old["tree"], old["variant"], old["seed"], old["reps_total"]))
    for tree, matrix in trees.items():
        reps = args.routerbench_reps if tree == "routerbench" else args.reps
        for label in variants:
            if (tree, label, args.seed, reps) in done:
                continue
            method, options = VARIANTS[label]
            if options.get("anchor_arm") == "popular-base":
                options = {**options, "anchor_arm": matrix.popular_base()}
            start = time.perf_counter()
            results = replay_budgets(matrix, method, budgets, reps=reps, seed=args.seed, options=options)
            for result in results:
                frame = result.per_rep[["rep", "rank", "accuracy", "budget_fraction"]].copy()
                frame.insert(0, "budget", result.budget_per_model)
                frame.insert(0, "variant", label)
                frame.insert(0, "tree", tree)
                frame["seed"] = args.seed
                frame["reps_total"] = reps
                frames.append(frame)
            print(f"{tree:28s} {label:14s} " + " ".join(
                f"N={r.budget_per_model}:{r.summary()['mean_rank']:.2f}" for r in results)
                + f"  ({time.perf_counter() - start:.1f} s)", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(frames, ignore_index=True).to_parquet(out, index=False)
    data = pd.concat(frames, ignore_index=True)
    data = data[data["variant"].isin(variants) & data["tree"].isin(list(trees)) & data["seed"].eq(args.seed)]
    table = summarize(data, args.reference or variants[0])
    print(table.to_string())
    table.to_csv(out.with_suffix(".summary.csv"), index=False)


def family_of(tree: str) -> str:
    return tree.split("-")[0] if tree != "routerbench" else "routerbench"


def summarize(data: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per variant: geometric mean over cells of its rank ratio to `reference` (overall and per family), and
    the number of cells where it is more than one paired SE worse / better than the reference."""
    rows = []
    ref_all = data[data["variant"] == reference]
    for variant, group in data.groupby("variant"):
        logs, families, worse, better = [], [], 0, 0
        for (tree, budget), cell in group.groupby(["tree", "budget"]):
            ref = ref_all[(ref_all["tree"] == tree) & (ref_all["budget"] == budget)]
            if ref.empty:
                continue
            a = cell.sort_values("rep")["rank"].to_numpy(float)
            b = ref.sort_values("rep")["rank"].to_numpy(float)
            logs.append(np.log(a.mean() / b.mean()))
            families.append(family_of(tree))
            d = a - b
            se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
            worse += int(d.mean() > se and d.mean() > 0)
            better += int(-d.mean() > se and d.mean() < 0)
        logs, families = np.asarray(logs), np.asarray(families)
        row = {"variant": variant, "geo_mean_ratio": float(np.exp(logs.mean())), "cells": len(logs),
               "worse_by_1se": worse, "better_by_1se": better}
        for family in dict.fromkeys(families):
            row[family] = float(np.exp(logs[families == family].mean()))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("geo_mean_ratio")

if __name__ == "__main__":
    main()
