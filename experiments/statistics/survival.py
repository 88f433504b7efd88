"""Why the paper's aggressive schedule loses: how often the best models survive the first cut.

For each method, the search is stepped round by round (100 repetitions, the evidence's seed) and, at the
first moment at most `cut` models (default 120) are still alive, we record whether the best model of the
tree and any top-3 model are among them, and how many queries every model has answered by then. The paper's
rule A reaches 100 survivors after one round of round(0.6 N) shared queries; halving gets there after
log2(K / 120) rounds with fewer queries per model but a gentler cut.

    python experiments/statistics/survival.py --trees calibrated-qwen-3b,dense-qwen-3b,leaderboard-mistral-7b
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd

from raygems.bandits import get_method, repetition_keys
from raygems.replay import MatrixEnvironment, load_matrix
from raygems.replay.engine import method_options

HERE = Path(__file__).resolve().parent


def survival(matrix, method: str, budget: int, reps: int, seed: int, cut: int) -> dict:
    acc = matrix.accuracies
    top1 = acc == acc.max()
    top3 = matrix.ranks() <= 3
    spec = get_method(method)
    seeds = repetition_keys(seed, reps)
    algo = spec.make(matrix.num_models, matrix.num_queries, budget, seeds, **method_options(matrix, method, {}))
    env = MatrixEnvironment(matrix.values, seeds)
    while not algo.done:
        algo.tell(env.evaluate(algo.ask()))
        alive = algo.alive & ~algo.failed
        if alive.sum(axis=1).max() <= cut:
            break
    return {"method": method, "N": budget, "survivors": float(alive.sum(axis=1).mean()),
            "queries_per_model": float(algo.budget_used.mean() / matrix.num_models),
            "p_best_alive": float((alive & top1).any(axis=1).mean()),
            "p_top3_alive": float((alive & top3).any(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="confirm")
    parser.add_argument("--trees", default="calibrated-qwen-3b,dense-qwen-3b,leaderboard-mistral-7b")
    parser.add_argument("--methods", default="ours,ours-sh-schedule,recommended")
    parser.add_argument("--budgets", default="10,50")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cut", type=int, default=120)
    parser.add_argument("--out", default=str(HERE / "results" / "survival.csv"))
    args = parser.parse_args()
    rows = []
    for tree in args.trees.split(","):
        folder = HERE / "data" / args.split / tree
        matrix = load_matrix(folder, models=folder / "models.parquet")
        for budget in (int(b) for b in args.budgets.split(",")):
            for method in args.methods.split(","):
                rows.append({"tree": tree, **survival(matrix, method, budget, args.reps, args.seed, args.cut)})
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out, index=False)
    print(frame.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
