"""The replay fast paths (the fast environment's compiled loops) make the same decisions as the plain ask/tell loop.

* Index policies and the environment: exactly the same choices as before the fast paths existed (a reference
  saved from the original implementation, tests/replay/data/replay_reference.npz) and as the ask/tell loop.
* TTTS: a repetition's decisions do not depend on R, on the path (ask/tell or compiled loop) or on whether
  numba is installed (its sampler's distribution: tests/bandits/test_ttts.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raygems.bandits import get_method, repetition_keys
from raygems.compiled import HAVE_NUMBA
from raygems.populations import generate_tree
from raygems.replay import MatrixEnvironment, replay_budgets
from raygems.replay.engine import method_options, run_to_end
from raygems.replay.environment import Environment

DATA = Path(__file__).parent / "data" / "replay_reference.npz"
REPO = Path(__file__).resolve().parents[2]
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed: no compiled path")


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA)


@pytest.fixture(scope="module")
def small_tree():
    """The tree the saved reference was made on (K = 90, Q = 300)."""
    return generate_tree("mistral-7b", num_finetunes=70, num_adapters=20, queries_per_task=60).matrix


def run(method, matrix, budget, seeds, exact=False, ask_tell=False, **options):
    algo = get_method(method).make(matrix.num_models, matrix.num_queries, budget, seeds,
                                   **{**method_options(matrix, method, None), **options})
    env = MatrixEnvironment(matrix.values, seeds, exact=exact)
    if ask_tell:
        while not algo.done:
            algo.tell(env.evaluate(algo.ask()))
    else:
        run_to_end(algo, env)
    return algo, env


def fingerprint(algo):
    return {"arm": algo.recommend(), "budget_used": algo.budget_used.copy(), "pulls": algo.pulls.copy(),
            "successes": algo.successes.copy()}


# ------------------------------------------------------------------------- exact equality, deterministic
@pytest.mark.parametrize("method", ["uniform", "ucb", "ucb-stddev", "ucb-e", "successive-rejects",
                                    "sequential-halving", "bayes-elim", "ours", "ours-sh-schedule",
                                    "ours-no-corr", "random", "best-base"])
def test_choices_equal_the_saved_reference(reference, small_tree, method):
    """Choices, budgets and every arm's counts equal those of the implementation before the fast paths,
    for both environments and two budgets."""
    seeds = repetition_keys(int(reference["seed"]), int(reference["reps"]))
    for exact in (False, True):
        for budget in reference["budgets"].tolist():
            algo, _ = run(method, small_tree, budget, seeds, exact=exact)
            tag = f"{method}|{'exact' if exact else 'fast'}|{budget}"
            for field, value in fingerprint(algo).items():
                assert np.array_equal(reference[f"{tag}|{field}"], value), (tag, field)


@needs_numba
@pytest.mark.parametrize("method, options", [
    ("ucb", {}), ("ucb", {"c": 0.3}), ("ucb-stddev", {}), ("ucb-stddev", {"variant": "ucb-v"}),
    ("ucb-stddev", {"variant": "mean-se"}), ("ucb-e", {}), ("ucb-e", {"mode": "plugin"}), ("ttts", {}),
    ("ttts", {"init_each_arm": True, "beta": 0.8}),
])
def test_compiled_loop_equals_ask_tell(method, options):
    """The environment's compiled loop (one call) and the ask/tell loop make the same choices, including the state at
    intermediate budgets of an anytime run; a small pool (Q = 30) exercises arm exhaustion."""
    matrix = generate_tree("qwen-3b", num_finetunes=25, num_adapters=15, queries_per_task=6).matrix
    seeds = repetition_keys(5, 7)
    fast, slow = (run(method, matrix, 20, seeds, ask_tell=mode, **options)[0] for mode in (False, True))
    for field, value in fingerprint(fast).items():
        assert np.array_equal(value, fingerprint(slow)[field]), field
    assert (fast.pulls <= matrix.num_queries).all()
    if method in ("ucb", "ttts") and not options:  # anytime: recorded budgets equal separate runs
        shared = replay_budgets(matrix, method, [4, 9, 20], reps=7, seed=5)
        for result, budget in zip(shared, [4, 9, 20]):
            alone = run(method, matrix, budget, seeds, ask_tell=True)[0]
            assert np.array_equal(result.per_rep["arm"], alone.recommend())
            assert np.array_equal(result.per_rep["budget_used"], alone.budget_used)


def test_step_log_table_equals_the_per_step_log():
    """The compiled path reads ln t from a table computed by numpy; it equals numpy's per-step value for
    arrays of any length (R = 1 live search, R = 100 replays)."""
    table = np.log(np.arange(300_001, dtype=np.int64) + 1.0)
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 7, 100, 1000):
        used = rng.integers(0, 300_001, size=size)
        assert np.array_equal(np.log(used + 1.0), table[used])


_FALLBACK_SCRIPT = """
import json, numpy as np
from raygems.compiled import HAVE_NUMBA
from raygems.replay import replay_budgets
from raygems.populations import generate_tree
assert not HAVE_NUMBA
m = generate_tree("qwen-3b", num_finetunes=20, num_adapters=10, queries_per_task=10).matrix
out = {meth: [r.per_rep["arm"].tolist() + r.per_rep["budget_used"].tolist()
              for r in replay_budgets(m, meth, [3, 8], reps=5, seed=2)]
       for meth in ("ucb", "ucb-stddev", "ucb-e", "ttts", "successive-rejects")}
print(json.dumps(out))
"""


@needs_numba
def test_numpy_fallback_gives_identical_results():
    """Without numba (RAYGEMS_NO_NUMBA=1) every method runs on numpy / plain Python with the same results."""
    env = {**os.environ, "RAYGEMS_NO_NUMBA": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    without = json.loads(done.stdout.strip().splitlines()[-1])
    m = generate_tree("qwen-3b", num_finetunes=20, num_adapters=10, queries_per_task=10).matrix
    for method, results in without.items():
        compiled = [r.per_rep["arm"].tolist() + r.per_rep["budget_used"].tolist()
                    for r in replay_budgets(m, method, [3, 8], reps=5, seed=2)]
        assert compiled == results, method


# ------------------------------------------------------------------------------ TTTS: per-repetition
def test_ttts_repetition_does_not_depend_on_r_or_path():
    """Repetition r alone (R = 1, ask/tell as in the live search) decides exactly as inside R = 20 on the
    compiled replay path."""
    matrix = generate_tree("mistral-7b", num_finetunes=40, num_adapters=10, queries_per_task=20).matrix
    seeds = repetition_keys(9, 20)
    batched, _ = run("ttts", matrix, 12, seeds)
    for r in (0, 13, 19):
        alone, _ = run("ttts", matrix, 12, seeds[r:r + 1], ask_tell=True)
        assert np.array_equal(alone.pulls[0], batched.pulls[r])
        assert alone.recommend()[0] == batched.recommend()[r]


# ------------------------------------------------------------------------- the environment interface
class ListEnvironment(Environment):
    """The smallest environment: answers from a matrix, exact, and no faster route."""

    def __init__(self, values):
        self.values, self.evaluations = values, 0

    def evaluate(self, pulls):
        self.evaluations += pulls.total
        return np.array([self.values[pulls.arm[j], pulls.query_ids(j)].sum() for j in range(len(pulls))])


def test_any_environment_runs_an_algorithm_by_ask_tell():
    matrix = generate_tree("qwen-3b", num_finetunes=12, num_adapters=4, queries_per_task=10).matrix
    seeds = repetition_keys(3, 2)
    algo = get_method("ucb").make(matrix.num_models, matrix.num_queries, 6, seeds)
    env = ListEnvironment(matrix.values)
    assert env.advance(algo, algo.budget) is False and algo.budget_used.sum() == 0
    run_to_end(algo, env)
    exact = get_method("ucb").make(matrix.num_models, matrix.num_queries, 6, seeds)
    run_to_end(exact, MatrixEnvironment(matrix.values, seeds, exact=True))
    assert np.array_equal(algo.recommend(), exact.recommend()) and np.array_equal(algo.pulls, exact.pulls)
    assert env.evaluations == int(algo.budget_used.sum())


@needs_numba
def test_the_fast_environment_advances_only_what_its_loops_cover():
    """The compiled route is taken for its own repetitions in fast mode, with nothing pending; the environment
    counts the evaluations it answered either way."""
    matrix = generate_tree("qwen-3b", num_finetunes=12, num_adapters=4, queries_per_task=10).matrix
    seeds = repetition_keys(3, 2)

    def fresh(method="ucb"):
        return get_method(method).make(matrix.num_models, matrix.num_queries, 6, seeds)

    for env, algo in [(MatrixEnvironment(matrix.values, seeds, exact=True), fresh()),
                      (MatrixEnvironment(matrix.values, seeds[:1]), fresh()),
                      (MatrixEnvironment(matrix.values, seeds), fresh("uniform"))]:
        assert env.advance(algo, 10) is False and algo.budget_used.sum() == 0 and env.evaluations == 0
    env, algo = MatrixEnvironment(matrix.values, seeds), fresh()
    algo.ask()
    assert env.advance(algo, 10) is False                       # a request is pending
    algo.tell(env.evaluate(algo.pending))
    assert env.advance(algo, 40) is True
    assert np.all(algo.budget_used == 40) and env.evaluations == 80 and algo.pending is None
