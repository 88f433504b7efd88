"""Design study for the recommended method: replay method variants on the dev trees, paired by repetition.

Every variant is replayed with the same repetition keys (common random numbers), so differences between
variants are paired per repetition; the study reports mean rank ± SE per tree and budget, and the geometric
mean over cells of each variant's rank ratio to a reference variant.

    python experiments/statistics/design_study.py --split dev --variants sh-corr,rec-plain,rec --reps 200 \
        --out experiments/statistics/results/design/dev.parquet

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

HERE = Path(__file__).resolve().parent
ROUTERBENCH = HERE.parents[2] / "shared" / "data" / "matrices" / "routerbench-0shot-11x3150"

#: label -> (registered method, options)
VARIANTS: dict[str, tuple[str, dict]] = {
    # existing methods
    "sh": ("sequential-halving", {}),
    "bayes-elim": ("bayes-elim", {}),
    "sr": ("successive-rejects", {}),
    "ours": ("ours", {}),
    "ours-no-corr": ("ours-no-corr", {}),
    "sh-corr": ("ours-sh-schedule", {}),
    "sh-corr-carry": ("ours-sh-schedule", {"carry_over": True}),
    # correlated halving re-planned every round (carry-over + pool-aware), with and without task strata
    "rec": ("recommended", {"eta": 2.0, "stratify": True}),
    "rec-plain": ("recommended", {"eta": 2.0, "stratify": False}),
    # elimination ratio
    "rec-eta3": ("recommended", {"eta": 3.0, "stratify": True}),
    "rec-eta1.7": ("recommended", {"eta": 1.7, "stratify": True}),
    "rec-eta1.5": ("recommended", {"eta": 1.5, "stratify": True}),
    "rec-eta1.3": ("recommended", {"eta": 1.3, "stratify": True}),
    "v17": ("recommended", {"eta": 1.7, "stratify": True}),
    "v17-plain": ("recommended", {"eta": 1.7, "stratify": False}),
    # keep arms tied with the cut-off (all of them, or when they add at most 25% / 50% more survivors)
    "rec-ties": ("recommended", {"eta": 2.0, "stratify": True, "tie_slack": 1e9}),
    "v17-ties25": ("recommended", {"eta": 1.7, "stratify": True, "tie_slack": 0.25}),
    "v17-ties50": ("recommended", {"eta": 1.7, "stratify": True, "tie_slack": 0.5}),
    # extra cuts by a (conservative) confidence bound on the gap to the leader
    "rec-z3": ("recommended", {"eta": 2.0, "stratify": True, "cut_z": 3.0}),
    "rec-z2": ("recommended", {"eta": 2.0, "stratify": True, "cut_z": 2.0}),
    # an aggressive first round (share of the budget, share of the models kept), then halving
    "rec-f30k25": ("recommended", {"eta": 2.0, "stratify": True, "first_round_share": 0.3, "first_round_keep": 0.25}),
    "rec-f20k35": ("recommended", {"eta": 2.0, "stratify": True, "first_round_share": 0.2, "first_round_keep": 0.35}),
    # halve while many models remain, eliminate gently among the last few
    "late17-32": ("recommended", {"eta": 2.0, "stratify": True, "late_eta": 1.7, "late_survivors": 32}),
    "late15-64": ("recommended", {"eta": 2.0, "stratify": True, "late_eta": 1.5, "late_survivors": 64}),
    "late15-32": ("recommended", {"eta": 2.0, "stratify": True, "late_eta": 1.5, "late_survivors": 32}),
    "late15-128": ("recommended", {"eta": 2.0, "stratify": True, "late_eta": 1.5, "late_survivors": 128}),
    "late13-64": ("recommended", {"eta": 2.0, "stratify": True, "late_eta": 1.3, "late_survivors": 64}),
    "e3-late15-64": ("recommended", {"eta": 3.0, "stratify": True, "late_eta": 1.5, "late_survivors": 64}),
    "late15-64-plain": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.5, "late_survivors": 64}),
    # finalists without strata (second dev seed)
    "P-eta2": ("recommended", {"eta": 2.0, "stratify": False}),
    "P-eta1.5": ("recommended", {"eta": 1.5, "stratify": False}),
    "P-eta1.7": ("recommended", {"eta": 1.7, "stratify": False}),
    "P-late15-32": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.5, "late_survivors": 32}),
    "P-late15-64": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.5, "late_survivors": 64}),
    "P-late13-64": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.3, "late_survivors": 64}),
    "P-late13-32": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.3, "late_survivors": 32}),
    "P-late13-16": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.3, "late_survivors": 16}),
    "P-late13-128": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.3, "late_survivors": 128}),
    "P-late11-32": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.1, "late_survivors": 32}),
    "P-E15-late13-32": ("recommended", {"eta": 1.5, "stratify": False, "late_eta": 1.3, "late_survivors": 32}),
    "P-corr-SR": ("recommended", {"eta": 1.0001, "stratify": False}),
    "P-lateSR-32": ("recommended", {"eta": 2.0, "stratify": False, "late_eta": 1.0001, "late_survivors": 32}),
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
    parser.add_argument("--trees", default="", help="comma-separated tree names (default: all)")
    parser.add_argument("--variants", default="sh-corr,rec-plain,rec")
    parser.add_argument("--budgets", default="10,25,50,100")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--routerbench-reps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", default=None, help="variant the ratios are taken against (default: first)")
    parser.add_argument("--out", default=str(HERE / "results" / "design" / "study.parquet"))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    variants = args.variants.split(",")
    trees = load_trees(args.split, [t for t in args.trees.split(",") if t] or None)
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
    print(summarize(data, args.reference or variants[0]).to_string())


def summarize(data: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per variant: geometric mean of rank ratios to `reference` over cells, and the count of cells where it
    is more than one paired SE worse / better than the reference."""
    rows = []
    for variant, group in data.groupby("variant"):
        ratios, worse, better = [], 0, 0
        for (tree, budget), cell in group.groupby(["tree", "budget"]):
            ref = data[(data["variant"] == reference) & (data["tree"] == tree) & (data["budget"] == budget)]
            if ref.empty:
                continue
            a = cell.sort_values("rep")["rank"].to_numpy(float)
            b = ref.sort_values("rep")["rank"].to_numpy(float)
            ratios.append(a.mean() / b.mean())
            d = a - b
            se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
            worse += int(d.mean() > se and d.mean() > 0)
            better += int(-d.mean() > se and d.mean() < 0)
        rows.append({"variant": variant, "geo_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
                     "cells": len(ratios), "worse_by_1se": worse, "better_by_1se": better})
    return pd.DataFrame(rows).sort_values("geo_mean_ratio")


if __name__ == "__main__":
    main()
