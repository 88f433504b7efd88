"""What a replay cannot serve is refused before it runs: budgets outside the pool, and more repetitions than
memory holds. The memory need is an upper bound of what every registered method really allocates."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from raygems.bandits import list_methods
from raygems.errors import UsageError
from raygems.replay import CorrectnessMatrix
from raygems.replay.engine import check_replay, replay_budgets, replay_memory_bytes


def matrix_of(k: int, q: int, seed: int = 0) -> CorrectnessMatrix:
    rng = np.random.default_rng(seed)
    values = (rng.random((k, q)) < rng.uniform(0.2, 0.8, size=(k, 1))).astype(np.uint8)
    ids = tuple(f"org/m{i}" for i in range(k))
    models = pd.DataFrame({"model_id": ids, "downloads": rng.integers(0, 1000, k), "is_base": np.arange(k) < 2})
    return CorrectnessMatrix(values, ids, tuple(f"q{j}" for j in range(q)), None, models)


def peak_bytes(matrix, method, budgets, reps, exact) -> int:
    tracemalloc.start()
    try:
        replay_budgets(matrix, method, budgets, reps=reps, exact=exact)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("k, q, exact", [(60, 400, False), (12, 3000, False), (40, 300, True)])
def test_the_memory_need_bounds_what_each_method_allocates_per_repetition(k, q, exact):
    """Per repetition (the slope between two repetition counts, so that fixed costs such as compiled kernels
    do not count): measured <= estimated for every method; and the estimate is not loose by more than 3x
    against the most demanding method."""
    matrix, budgets, small, large = matrix_of(k, q), [5, 10], 8, 24
    slopes = {}
    for method in list_methods():
        replay_budgets(matrix, method, budgets, reps=2, exact=exact)          # compile kernels, fill caches
        slopes[method] = (peak_bytes(matrix, method, budgets, large, exact)
                          - peak_bytes(matrix, method, budgets, small, exact)) / (large - small)
    for method, slope in slopes.items():
        from raygems.bandits import get_method

        spec = get_method(method)
        per_model_orders = exact and spec.spends_budget and not spec.correlated()
        estimate = replay_memory_bytes(k, q, 1, len(budgets), per_model_orders)
        assert slope <= estimate, (method, slope, estimate)
    assert max(slopes.values()) * 3 >= replay_memory_bytes(k, q, 1, len(budgets), exact)


def test_repetitions_beyond_memory_are_refused_with_the_numbers():
    matrix = matrix_of(50, 200)
    per_rep = replay_memory_bytes(50, 200, 1, 2)
    check_replay(matrix, "ours", [5, 10], 1000, available=per_rep * 1000)
    with pytest.raises(UsageError) as refused:
        check_replay(matrix, "ours", [5, 10], 1001, available=per_rep * 1000)
    message = str(refused.value)
    assert message.startswith("1,001 repetitions of ours on 50 models x 200 queries need about")
    assert message.endswith("use at most 1,000 repetitions")
    # exact mode keeps one query order per model for methods that sample independently: K x Q more per rep
    check_replay(matrix, "ours", [5], 100, exact=True, available=per_rep * 100)            # correlated: shared
    with pytest.raises(UsageError, match=r"repetitions of uniform on 50 models x 200 queries \(exact\)"):
        check_replay(matrix, "uniform", [5], 100, exact=True, available=per_rep * 100)
    with pytest.raises(UsageError, match="not even one repetition fits"):
        check_replay(matrix, "uniform", [5], 1, exact=True, available=1000)
    with pytest.raises(UsageError, match="1,000,000,000,000 repetitions"):      # this machine's real memory
        check_replay(matrix, "ours", [5], 10**12)


@pytest.mark.parametrize("budgets, reps, message", [
    ([0], 10, "at least 1, got 0"),
    ([201], 10, "exceeds the pool of 200 queries"),
    ([], 10, "no budgets"),
    ([5], 0, "whole number >= 1, got 0"),
    ([5], 2.5, "whole number >= 1, got 2.5"),
])
def test_budgets_and_repetitions_out_of_range(budgets, reps, message):
    with pytest.raises(ValueError, match=message):
        check_replay(matrix_of(50, 200), "ours", budgets, reps)
