"""The replay engine: run a search method against a recorded correctness matrix, R repetitions in lockstep.

    result = replay(matrix, "ours", budget_per_model=50, reps=100, seed=0)
    result.summary()   # mean rank, std of rank, mean accuracy, P(top-1), P(top-3), budget fraction, seconds
    result.per_rep     # DataFrame: rep, arm, model_id, rank, accuracy, budget_used, budget_fraction

Common random numbers: for one seed, repetition r of every method uses the same key, hence the same
query permutations and reward draws wherever the methods ask for the same (arm, position).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from raygems.bandits import get_method, repetition_keys
from raygems.bandits.base import BanditAlgorithm
from raygems.replay.environment import MatrixEnvironment
from raygems.replay.matrix import CorrectnessMatrix, MatrixError, rank_of

SUMMARY_KEYS = ("method", "budget", "reps", "mean_rank", "std_rank", "mean_accuracy", "p_top1", "p_top3",
                "budget_fraction", "seconds")


@dataclass
class ReplayResult:
    """Per-repetition outcomes of one (method, budget) cell, and their summary."""

    method: str
    budget_per_model: int
    seed: int
    per_rep: pd.DataFrame
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reps(self) -> int:
        return len(self.per_rep)

    def summary(self) -> dict[str, Any]:
        rank = self.per_rep["rank"].to_numpy(dtype=float)
        acc = self.per_rep["accuracy"].to_numpy(dtype=float)
        n = max(len(rank), 1)
        return {
            "method": self.method,
            "budget": self.budget_per_model,
            "reps": len(rank),
            "mean_rank": float(rank.mean()),
            "std_rank": float(rank.std(ddof=1)) if len(rank) > 1 else 0.0,
            "se_rank": float(rank.std(ddof=1) / np.sqrt(n)) if len(rank) > 1 else 0.0,
            "median_rank": float(np.median(rank)),
            "mean_accuracy": float(acc.mean()),
            "se_accuracy": float(acc.std(ddof=1) / np.sqrt(n)) if len(acc) > 1 else 0.0,
            "p_top1": float((rank <= 1).mean()),
            "p_top3": float((rank <= 3).mean()),
            "budget_fraction": float(self.per_rep["budget_fraction"].mean()),
            "seconds": float(self.seconds),
        }


def method_options(matrix: CorrectnessMatrix, method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Options a method needs from the matrix: the models table (best-base: downloads and is_base) and the
    task label of every query (methods with `uses_query_groups`, e.g. recommended: stratified query blocks)."""
    spec = get_method(method)
    merged = dict(options or {})
    if spec.needs_models_table and "downloads" not in merged:
        if matrix.models is None or "downloads" not in matrix.models.columns:
            raise MatrixError(f"method {method!r} needs a models table with a 'downloads' column (--models PATH)")
        merged["downloads"] = matrix.models["downloads"].to_numpy(dtype=float)
        if "is_base" in matrix.models.columns:
            merged["is_base"] = matrix.models["is_base"].fillna(False).to_numpy(dtype=bool)
    if getattr(spec.cls, "uses_query_groups", False) and "query_groups" not in merged and matrix.tasks is not None:
        merged["query_groups"] = np.asarray(matrix.tasks)   # task label per query (stratified query blocks)
    return merged


def replay(matrix: CorrectnessMatrix, method: str, budget_per_model: int, reps: int = 100, seed: int = 0, *,
           exact: bool = False, first_rep: int = 0, options: dict[str, Any] | None = None) -> ReplayResult:
    """Replay one method at one budget. `first_rep` selects repetitions first_rep .. first_rep+reps-1."""
    return replay_budgets(matrix, method, [budget_per_model], reps, seed, exact=exact, first_rep=first_rep,
                          options=options)[0]


def replay_budgets(matrix: CorrectnessMatrix, method: str, budgets: Iterable[int], reps: int = 100, seed: int = 0,
                   *, exact: bool = False, first_rep: int = 0,
                   options: dict[str, Any] | None = None) -> list[ReplayResult]:
    """Replay one method at several budgets.

    Anytime methods (UCB, UCB-StdDev, TTTS: they never look at the total budget) run once to the largest
    budget and are recorded as they pass each smaller one: the result at budget N is exactly what a
    separate run at N gives (same keys, same draws), at the cost of one run. Their `seconds` is the time to
    reach that budget.
    """
    budgets = [int(b) for b in budgets]
    if not budgets:
        raise ValueError("no budgets given")
    for b in budgets:
        if b < 1:
            raise ValueError(f"budget per model N must be at least 1, got {b}")
        if b > matrix.num_queries:
            raise ValueError(f"budget per model N={b} exceeds the pool of {matrix.num_queries} queries per model: "
                             f"the pool cannot serve it")
    spec = get_method(method)
    opts = method_options(matrix, method, options)
    seeds = repetition_keys(seed, reps, first=first_rep)
    if spec.anytime and len(budgets) > 1:
        return _replay_anytime(matrix, spec, sorted(set(budgets)), seeds, seed, exact, opts, budgets, first_rep)
    results = []
    for b in budgets:
        start = time.perf_counter()
        algo = spec.make(matrix.num_models, matrix.num_queries, b, seeds, **opts)
        env = MatrixEnvironment(matrix.values, seeds, exact=exact)
        run_to_end(algo, env)
        results.append(_result(matrix, method, b, seed, algo, algo.recommend(), algo.budget_used,
                               time.perf_counter() - start, opts, first_rep))
    return results


def run_to_end(algo: BanditAlgorithm, env: MatrixEnvironment) -> None:
    advance(algo, env, algo.budget)
    while not algo.done:
        pulls = algo.ask()
        if pulls is None:
            break
        algo.tell(env.evaluate(pulls))


def advance(algo: BanditAlgorithm, env: MatrixEnvironment, budget: int) -> bool:
    """Take the algorithm's compiled fast path (`run_until`) to `budget` evaluations per repetition when it
    has one that applies to `env`; returns False when it has none (the ask/tell loop then does the work).
    The fast paths make the same choices as the ask/tell loop (tests/bandits/test_fast_paths.py)."""
    run_until = getattr(algo, "run_until", None)
    return bool(run_until is not None and run_until(env, budget))


def _replay_anytime(matrix, spec, sorted_budgets, seeds, seed, exact, opts, requested, first_rep):
    start = time.perf_counter()
    largest = sorted_budgets[-1]
    algo = spec.make(matrix.num_models, matrix.num_queries, largest, seeds, **opts)
    env = MatrixEnvironment(matrix.values, seeds, exact=exact)
    by_budget: dict[int, ReplayResult] = {}
    pending = list(sorted_budgets)
    while pending:
        target = pending[0] * matrix.num_models
        advance(algo, env, target)  # no-op without a fast path; else every repetition now stands at target
        if algo.done or np.all(algo.budget_used >= target):
            by_budget[pending[0]] = _result(matrix, spec.name, pending[0], seed, algo, algo.recommend(),
                                            np.minimum(algo.budget_used, target), time.perf_counter() - start,
                                            opts, first_rep)
            pending.pop(0)
            continue
        pulls = algo.ask()
        if pulls is None:
            continue
        algo.tell(env.evaluate(pulls))
    return [by_budget[b] for b in requested]


def _result(matrix, method, budget, seed, algo, chosen, budget_used, seconds, opts, first_rep) -> ReplayResult:
    accuracies = matrix.accuracies
    chosen = np.asarray(chosen, dtype=np.int64)
    total = budget * matrix.num_models
    if not getattr(algo, "may_overspend", False) and np.any(budget_used > total):
        raise AssertionError(f"{method} spent {int(budget_used.max())} evaluations with a budget of {total}")
    per_rep = pd.DataFrame({
        "rep": np.arange(first_rep, first_rep + chosen.size),
        "arm": chosen,
        "model_id": np.asarray(matrix.model_ids, dtype=object)[chosen],
        "rank": rank_of(accuracies, chosen),
        "accuracy": accuracies[chosen],
        "budget_used": np.asarray(budget_used, dtype=np.int64),
        "budget_fraction": np.asarray(budget_used, dtype=float) / total,
    })
    public_opts = {k: v for k, v in opts.items() if np.isscalar(v) or v is None}
    return ReplayResult(method, budget, seed, per_rep, seconds, public_opts)


def replay_grid(matrix: CorrectnessMatrix, methods: Iterable[str], budgets: Iterable[int], reps: int = 100,
                seed: int = 0, *, exact: bool = False, progress: bool = True,
                options: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every method at every budget; one summary row per cell (columns: SUMMARY_KEYS and more)."""
    methods, budgets = list(methods), [int(b) for b in budgets]
    rows = []
    bar = tqdm(methods, desc="replay", disable=not progress, unit="method")
    for method in bar:
        bar.set_postfix_str(method)
        spec = get_method(method)
        cell_budgets = budgets if spec.spends_budget else budgets[:1]
        results = replay_budgets(matrix, method, cell_budgets, reps, seed, exact=exact,
                                 options=(options or {}).get(method))
        if not spec.spends_budget:  # reference rows do not depend on the budget
            results = [ReplayResult(method, b, seed, results[0].per_rep, results[0].seconds) for b in budgets]
        rows.extend(r.summary() for r in results)
    return pd.DataFrame(rows)
