"""The straightforward replay: one repetition at a time, one pull at a time (the baseline for the speed-up).

What "straightforward" means here: the algorithms of `raygems.bandits` (same schedules, same estimators,
same index formulas, same TTTS rules and p-best recommendation), written the way one first writes them:
for each repetition, keep n[i] and S[i] in numpy arrays, answer each pull by reading
M[i, perm_i[n_i]] from a per-arm random permutation (correlated methods: one shared permutation), compute
an index over all K arms with numpy at every step, draw all K posteriors at every TTTS draw. Anytime methods
(UCB, UCB-StdDev, TTTS) get the same sharing as the fast engine: one run to the largest budget, recorded as
it passes each budget.

Its own randomness (numpy Generators per repetition) differs from raygems', so its choices differ draw for
draw; the mean ranks it prints are the same quantities (a sanity check that it runs the same algorithms).

    python benchmarks/naive_replay.py --reps 2 --trees qwen-3b --methods ucb,ours

Run on a few repetitions and extrapolated linearly to 100 by benchmarks/replay_grid.py (repetitions are
independent and identically distributed, so time is proportional to their number).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from raygems.bandits.schedules import (  # noqa: E402
    aggressive_schedule,
    karnin_schedule,
    successive_rejects_schedule,
    uniform_schedule,
)
from raygems.populations import PAPER_TREES, generate_tree  # noqa: E402
from raygems.replay.matrix import rank_of  # noqa: E402

BUDGETS = (10, 25, 50, 100, 200)
METHODS = ("uniform", "ucb", "ucb-stddev", "ttts", "successive-rejects", "bayes-elim", "ucb-e",
           "sequential-halving", "ours")
ANYTIME = ("ucb", "ucb-stddev", "ttts")


class Arms:
    """n[i], S[i] and per-arm (or shared) query permutations of one repetition; pull() answers one query."""

    def __init__(self, values: np.ndarray, rng: np.random.Generator, shared: bool = False):
        self.values, self.rng, self.shared = values, rng, shared
        self.k, self.q = values.shape
        self.n = np.zeros(self.k, dtype=np.int64)
        self.s = np.zeros(self.k, dtype=np.int64)
        self.perms: dict[int, np.ndarray] = {}
        self.shared_perm = rng.permutation(self.q) if shared else None
        self.used = 0

    def pull(self, i: int, position: int | None = None) -> int:
        if self.shared:
            query = self.shared_perm[position]
        else:
            perm = self.perms.get(i)
            if perm is None:
                perm = self.perms[i] = self.rng.permutation(self.q)
            query = perm[self.n[i]]
        reward = int(self.values[i, query])
        self.n[i] += 1
        self.s[i] += reward
        self.used += 1
        return reward


def argmax_random(keys: np.ndarray, rng) -> int:
    best = np.flatnonzero(keys == keys.max())
    return int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])


def top_random(keys: np.ndarray, m: int, rng) -> np.ndarray:
    return np.lexsort((rng.random(keys.size), keys))[::-1][:m]


def eliminate(values, budget, rng, schedule, estimator="cumulative", shared=False) -> int:
    arms = Arms(values, rng, shared)
    alive = np.arange(arms.k)
    used = 0
    for rnd in schedule:
        before = arms.s.copy()
        for i in alive:
            for j in range(rnd.queries_per_arm):
                arms.pull(int(i), used + j)
        used += rnd.queries_per_arm
        score = (arms.s - before) if estimator == "per_round" and rnd.queries_per_arm else arms.s
        alive = alive[top_random(score[alive].astype(float), rnd.keep, rng)]
    return int(alive[0])


def index_policy(values, budgets, rng, kind) -> dict[int, int]:
    """UCB1 / UCB1-Tuned / adaptive UCB-E, one pull per step, recorded at every budget in `budgets`."""
    arms = Arms(values, rng)
    k, q = arms.k, arms.q
    largest = max(budgets) * k
    chosen = {}
    for i in range(k):
        arms.pull(i)
    tie = 1e-10 * rng.random(k)
    if kind == "ucb-e":
        schedule = successive_rejects_schedule(k, max(budgets), q)
        ends, alive, total = [], k, 0
        for rnd in schedule:
            total += alive * rnd.queries_per_arm
            ends.append(total)
            alive = rnd.keep
        ends = np.asarray(ends)
        phase, explore = -1, largest / k
    for t in range(k, largest + 1):
        if t in {b * k for b in budgets}:
            mean = arms.s / arms.n
            chosen[t // k] = int(np.lexsort((rng.random(k), arms.n, mean))[-1])
        if t == largest:
            break
        mean = arms.s / arms.n
        log_t = math.log(t + 1)
        if kind == "ucb":
            index = mean + np.sqrt(2 * log_t / arms.n)
        elif kind == "ucb-stddev":
            v = mean * (1 - mean) + np.sqrt(2 * log_t / arms.n)
            index = mean + np.sqrt(log_t / arms.n * np.minimum(0.25, v))
        else:
            p = int(np.searchsorted(ends, t, side="right"))
            if p != phase:
                phase = p
                if p == 0:
                    hardness = k
                else:
                    gaps = np.sort(np.maximum(mean.max() - mean, 0.01))
                    hardness = (np.arange(1, k + 1) / gaps**2)[k - min(p, k - 1):].max()
                explore = largest / hardness
            index = mean + np.sqrt(explore / arms.n)
        index = np.where(arms.n >= q, -np.inf, index + tie)
        arms.pull(int(np.argmax(index)))
    return chosen


def ttts(values, budgets, rng, beta=0.5, redraws=100, mc=2000) -> dict[int, int]:
    """Top-two Thompson sampling with a full Beta draw of all K arms per draw, p-best recommendation."""
    arms = Arms(values, rng)
    k, q = arms.k, arms.q
    largest = max(budgets) * k
    chosen = {}
    for t in range(largest + 1):
        a, b = 1.0 + arms.s, 1.0 + arms.n - arms.s
        if t in {n * k for n in budgets}:
            draws = rng.beta(a, b, size=(mc, k))
            wins = np.bincount(draws.argmax(axis=1), minlength=k)
            chosen[t // k] = int(np.argmax(wins + 1e-3 * a / (a + b)))
        if t == largest:
            break
        pullable = arms.n < q
        leader = int(np.argmax(rng.beta(a, b)))
        arm = leader
        if not (rng.random() < beta and pullable[leader]):
            for _ in range(redraws):
                theta = rng.beta(a, b)
                arm = int(np.argmax(theta))
                if arm != leader and pullable[arm]:
                    break
            else:
                theta[leader] = -np.inf
                theta[~pullable] = -np.inf
                arm = int(np.argmax(theta))
        arms.pull(arm)
    return chosen


def run_cell(values, method, budgets, rng) -> dict[int, int]:
    """One repetition of `method` at every budget: {budget: chosen arm}."""
    k, q = values.shape
    if method in ("ucb", "ucb-stddev", "ucb-e"):
        if method == "ucb-e":  # not anytime: one run per budget
            return {n: index_policy(values, [n], rng, method)[n] for n in budgets}
        return index_policy(values, budgets, rng, method)
    if method == "ttts":
        return ttts(values, budgets, rng)
    out = {}
    for n in budgets:
        if method == "uniform":
            out[n] = eliminate(values, n * k, rng, uniform_schedule(k, n, q))
        elif method == "successive-rejects":
            out[n] = eliminate(values, n * k, rng, successive_rejects_schedule(k, n, q))
        elif method == "sequential-halving":
            out[n] = eliminate(values, n * k, rng, karnin_schedule(k, n, q), estimator="per_round")
        elif method == "bayes-elim":
            out[n] = eliminate(values, n * k, rng, karnin_schedule(k, n, q))
        elif method == "ours":
            out[n] = eliminate(values, n * k, rng, aggressive_schedule(k, n, q), shared=True)
        else:
            raise ValueError(f"unknown method {method!r}")
    return out


def measure(trees, methods, budgets, reps, seed=0, progress=True) -> list[dict]:
    """CPU and wall seconds of `reps` repetitions per (tree, method) covering all budgets."""
    rows = []
    for tree in trees:
        matrix = generate_tree(tree).matrix
        values, acc = matrix.values, matrix.accuracies
        for method in methods:
            cpu, wall = time.process_time(), time.perf_counter()
            picks = [run_cell(values, method, budgets, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(r,))))
                     for r in range(reps)]
            row = {"tree": tree, "method": method, "reps": reps, "budgets": list(budgets),
                   "cpu_s": time.process_time() - cpu,
                   "wall_s": time.perf_counter() - wall,
                   "mean_rank": {n: float(rank_of(acc, np.array([p[n] for p in picks])).mean()) for n in budgets}}
            rows.append(row)
            if progress:
                print(f"naive {tree:10s} {method:20s} {reps} reps: cpu {row['cpu_s']:7.2f}s wall {row['wall_s']:7.2f}s",
                      file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trees", default=",".join(PAPER_TREES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = measure(args.trees.split(","), args.methods.split(","), [int(b) for b in args.budgets.split(",")],
                   args.reps, args.seed)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
