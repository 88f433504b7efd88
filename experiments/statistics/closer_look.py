"""A closer look at chosen cells of the evidence grid: more repetitions, with a repetition seed the sweep did
not use, for the recommended method and the existing methods that matter there (paired differences).

    python experiments/statistics/closer_look.py --trees calibrated-mistral-7b,dense-qwen-3b --budgets 10 \
        --methods recommended,ours-sh-schedule,successive-rejects --reps 1000 --seed 11 \
        --out experiments/statistics/results/closer_look.csv
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from raygems.replay import load_matrix, replay

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="confirm")
    parser.add_argument("--trees", required=True)
    parser.add_argument("--budgets", default="10")
    parser.add_argument("--methods", default="recommended,ours-sh-schedule")
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(HERE / "results" / "closer_look.csv"))
    args = parser.parse_args()
    methods = args.methods.split(",")
    rows = []
    for tree in args.trees.split(","):
        folder = HERE / "data" / args.split / tree
        matrix = load_matrix(folder, models=folder / "models.parquet")
        for budget in (int(b) for b in args.budgets.split(",")):
            ranks = {m: replay(matrix, m, budget, reps=args.reps, seed=args.seed).per_rep["rank"].to_numpy(float)
                     for m in methods}
            ref = ranks[methods[0]]
            for m in methods:
                d = ranks[m] - ref
                rows.append({"tree": tree, "N": budget, "method": m, "reps": args.reps, "seed": args.seed,
                             "mean_rank": ranks[m].mean(), "se": ranks[m].std(ddof=1) / np.sqrt(args.reps),
                             f"minus_{methods[0]}": d.mean(), "paired_se": d.std(ddof=1) / np.sqrt(args.reps)})
    frame = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(frame.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
