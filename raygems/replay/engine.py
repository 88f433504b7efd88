"""The replay engine: run a search method against a recorded correctness matrix, R repetitions in lockstep.

    result = replay(matrix, "ours", budget_per_model=50, reps=100, seed=0)
    result.summary()   # mean rank, std of rank, mean accuracy, P(top-1), P(top-3), budget fraction, seconds
    result.per_rep     # DataFrame: rep, arm, model_id, rank, accuracy, budget_used, budget_fraction

Common random numbers: for one seed, repetition r of every method uses the same key, hence the same
query permutations and reward draws wherever the methods ask for the same (arm, position).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from raygems.bandits import get_method, repetition_keys
from raygems.bandits.base import BanditAlgorithm
from raygems.errors import UsageError
from raygems.registry import as_names
from raygems.replay.environment import Environment, MatrixEnvironment
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
    task label of every query (methods that accept query groups, e.g. recommended: stratified query blocks)."""
    spec = get_method(method)
    merged = dict(options or {})
    downloads = is_base = None
    if spec.needs_models_table and "downloads" not in merged:
        if matrix.models is None or "downloads" not in matrix.models.columns:
            raise MatrixError(f"method {method!r} needs a models table with a 'downloads' column (--models PATH)")
        downloads = matrix.models["downloads"].to_numpy(dtype=float)
        if "is_base" in matrix.models.columns:
            is_base = matrix.models["is_base"].fillna(False).to_numpy(dtype=bool)
    query_groups = None if matrix.tasks is None else np.asarray(matrix.tasks)   # stratified query blocks
    return spec.with_inputs(merged, downloads=downloads, is_base=is_base, query_groups=query_groups)


#: What a replay holds per repetition, in 8-byte words: the algorithm's (R, K) state and its temporaries (at most
#: ~20 words per model for every registered method), one shared query permutation (~1 word per query), a row
#: of results per budget and, in exact mode for methods that sample each model's queries independently, one
#: cached query permutation per model (Q words, plus its array header and cache entry). Measured with
#: tracemalloc; tests/replay/test_replay_limits.py checks that these stay upper bounds for every method.
WORDS_PER_MODEL, WORDS_PER_QUERY, WORDS_PER_BUDGET, WORDS_PER_CACHED_ORDER = 24, 2, 8, 32


def replay_memory_bytes(num_models: int, num_queries: int, reps: int, num_budgets: int = 1,
                        per_model_orders: bool = False) -> int:
    """Upper bound of the memory one `replay_budgets` call holds (the matrix itself aside)."""
    words = (WORDS_PER_MODEL * num_models + WORDS_PER_QUERY * num_queries + WORDS_PER_BUDGET * num_budgets
             + (num_models * (num_queries + WORDS_PER_CACHED_ORDER) if per_model_orders else 0))
    return 8 * words * int(reps)


def available_memory_bytes() -> int:
    """Memory this machine can give a new allocation now (psutil's `available`; total memory without psutil)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_replay(matrix: CorrectnessMatrix, method: str, budgets: Iterable[int], reps: int, *, exact: bool = False,
                 options: dict[str, Any] | None = None, available: int | None = None) -> None:
    """Refuse, before anything runs, what a replay cannot serve: a budget outside 1..Q, fewer than one
    repetition, or more repetitions than this machine's memory holds (the need computed from K, Q, the
    repetitions and the method, with the numbers in the message)."""
    budgets = [int(b) for b in budgets]
    if not budgets:
        raise ValueError("no budgets given")
    for b in budgets:
        if b < 1:
            raise ValueError(f"budget per model N must be at least 1, got {b}")
        if b > matrix.num_queries:
            raise ValueError(f"budget per model N={b} exceeds the pool of {matrix.num_queries} queries per model: "
                             f"the pool cannot serve it")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"repetitions must be a whole number >= 1, got {reps!r}")
    spec = get_method(method)
    per_model_orders = exact and spec.spends_budget and not spec.correlated(options)
    need = replay_memory_bytes(matrix.num_models, matrix.num_queries, reps, len(budgets), per_model_orders)
    available = available_memory_bytes() if available is None else available
    if need > available:
        per_rep = need / reps
        fits = int(available // per_rep)
        raise UsageError(
            f"{reps:,} repetitions of {method} on {matrix.num_models:,} models x {matrix.num_queries:,} queries"
            + (" (exact)" if per_model_orders else "") + f" need about {_size(need)} of memory ({_size(per_rep)} "
            f"per repetition), but this machine has {_size(available)} available: "
            + (f"use at most {fits:,} repetitions" if fits else "not even one repetition fits"))


def _size(num_bytes: float) -> str:
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    unit = 0
    while num_bytes >= 1000 and unit < len(units) - 1:
        num_bytes, unit = num_bytes / 1000, unit + 1
    return f"{num_bytes:.3g} {units[unit]}"


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
    check_replay(matrix, method, budgets, reps, exact=exact, options=options)
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
        results.append(_result(matrix, spec, b, seed, algo.recommend(), algo.budget_used,
                               time.perf_counter() - start, opts, first_rep))
    return results


def run_to_end(algo: BanditAlgorithm, env: Environment) -> None:
    """Run `algo` until it is done: by the environment's faster route where it has one (the compiled loops make
    the same choices: tests/replay/test_fast_paths.py), then by ask/tell."""
    env.advance(algo, algo.budget)
    while not algo.done:
        pulls = algo.ask()
        if pulls is None:
            break
        algo.tell(env.evaluate(pulls))


def _replay_anytime(matrix, spec, sorted_budgets, seeds, seed, exact, opts, requested, first_rep):
    start = time.perf_counter()
    largest = sorted_budgets[-1]
    algo = spec.make(matrix.num_models, matrix.num_queries, largest, seeds, **opts)
    env = MatrixEnvironment(matrix.values, seeds, exact=exact)
    by_budget: dict[int, ReplayResult] = {}
    pending = list(sorted_budgets)
    while pending:
        target = pending[0] * matrix.num_models
        env.advance(algo, target)   # no-op without a faster route; else every repetition now stands at target
        if algo.done or np.all(algo.budget_used >= target):
            by_budget[pending[0]] = _result(matrix, spec, pending[0], seed, algo.recommend(),
                                            np.minimum(algo.budget_used, target), time.perf_counter() - start,
                                            opts, first_rep)
            pending.pop(0)
            continue
        pulls = algo.ask()
        if pulls is None:
            continue
        algo.tell(env.evaluate(pulls))
    return [by_budget[b] for b in requested]


def _result(matrix, spec, budget, seed, chosen, budget_used, seconds, opts, first_rep) -> ReplayResult:
    accuracies = matrix.accuracies
    chosen = np.asarray(chosen, dtype=np.int64)
    total = budget * matrix.num_models
    if not spec.may_overspend(opts) and np.any(budget_used > total):
        raise AssertionError(f"{spec.name} spent {int(budget_used.max())} evaluations with a budget of {total}")
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
    return ReplayResult(spec.name, budget, seed, per_rep, seconds, public_opts)


def replay_grid(matrix: CorrectnessMatrix, methods: Iterable[str], budgets: Iterable[int], reps: int = 100,
                seed: int = 0, *, exact: bool = False, progress: bool = True,
                options: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every method at every budget; one summary row per cell (columns: SUMMARY_KEYS and more)."""
    methods = list(as_names(methods))
    budgets = [budgets] if isinstance(budgets, int) else [int(b) for b in budgets]
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
