"""Repetitions are independent streams: R = 1 and R = 100 agree, anytime runs agree with fixed-budget runs,
and a run resumed from `state_dict()` continues exactly where it stopped."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.bandits import get_method, list_methods, make_algorithm, repetition_keys
from raygems.populations import generate_tree
from raygems.replay import MatrixEnvironment, replay, replay_budgets

SPENDING = [m for m in list_methods() if get_method(m).spends_budget]


@pytest.fixture(scope="module")
def tree_matrix():
    return generate_tree("mistral-7b", num_finetunes=70, num_adapters=20, queries_per_task=60).matrix


@pytest.mark.parametrize("method", SPENDING + ["random"])
@pytest.mark.parametrize("exact", [False, True])
def test_single_repetition_matches_batched(tree_matrix, method, exact):
    reps = 12 if method != "ttts" else 6
    batched = replay(tree_matrix, method, 10, reps=reps, seed=7, exact=exact).per_rep
    for r in (0, reps // 2, reps - 1):
        alone = replay(tree_matrix, method, 10, reps=1, seed=7, first_rep=r, exact=exact).per_rep
        assert alone["arm"].iloc[0] == batched["arm"].iloc[r], (method, r)
        assert alone["budget_used"].iloc[0] == batched["budget_used"].iloc[r]


@pytest.mark.parametrize("method", ["ucb", "ucb-stddev", "ttts"])
def test_anytime_run_matches_separate_runs(tree_matrix, method):
    reps = 20 if method != "ttts" else 5
    shared = replay_budgets(tree_matrix, method, [10, 25], reps=reps, seed=3)
    for result, budget in zip(shared, [10, 25]):
        alone = replay(tree_matrix, method, budget, reps=reps, seed=3)
        assert np.array_equal(result.per_rep["arm"], alone.per_rep["arm"])
        assert np.array_equal(result.per_rep["budget_used"], alone.per_rep["budget_used"])
    offset = replay_budgets(tree_matrix, method, [10, 25], reps=2, seed=3, first_rep=3)
    assert all(list(result.per_rep["rep"]) == [3, 4] for result in offset)          # labelled as asked
    assert np.array_equal(offset[0].per_rep["arm"], shared[0].per_rep["arm"].iloc[3:5])


@pytest.mark.parametrize("method", SPENDING)
def test_state_dict_resume(tree_matrix, method):
    k, q = tree_matrix.num_models, tree_matrix.num_queries
    seeds = repetition_keys(1, 4)

    def fresh():
        return make_algorithm(method, k, q, 12, seeds)

    reference = fresh()
    env = MatrixEnvironment(tree_matrix.values, seeds, exact=True)
    while not reference.done:
        reference.tell(env.evaluate(reference.ask()))

    first = fresh()
    env = MatrixEnvironment(tree_matrix.values, seeds, exact=True)
    for _ in range(3):
        if not first.done:
            first.tell(env.evaluate(first.ask()))
    state = first.state_dict()
    resumed = fresh()
    resumed.load_state_dict(state)
    while not resumed.done:
        resumed.tell(env.evaluate(resumed.ask()))
    assert np.array_equal(resumed.recommend(), reference.recommend())
    assert np.array_equal(resumed.budget_used, reference.budget_used)


def test_common_random_numbers_across_methods(tree_matrix):
    """Correlated methods with the same seed read the same shared permutation."""
    a = make_algorithm("ours", tree_matrix.num_models, tree_matrix.num_queries, 10, repetition_keys(5, 2))
    b = make_algorithm("ours-sh-schedule", tree_matrix.num_models, tree_matrix.num_queries, 10, repetition_keys(5, 2))
    pa, pb = a.ask(), b.ask()
    n = min(pa.count[0], pb.count[0])
    assert np.array_equal(pa.query_ids(0)[:n], pb.query_ids(0)[:n])


def test_tell_validates_its_input(tree_matrix):
    algo = make_algorithm("uniform", tree_matrix.num_models, tree_matrix.num_queries, 5)
    with pytest.raises(RuntimeError, match="without a pending ask"):
        algo.tell([1])
    pulls = algo.ask()
    with pytest.raises(ValueError, match="one per pull entry"):
        algo.tell(np.zeros(len(pulls) + 1))
    with pytest.raises(ValueError, match="between 0 and"):
        algo.tell(np.full(len(pulls), 99))


def test_failed_arms_are_never_recommended(tree_matrix):
    acc = tree_matrix.accuracies
    best = int(np.argmax(acc))
    for method in ("ours", "sequential-halving", "ucb", "ttts"):
        algo = make_algorithm(method, tree_matrix.num_models, tree_matrix.num_queries, 10)
        env = MatrixEnvironment(tree_matrix.values, algo.seeds, exact=True)
        algo.tell(env.evaluate(algo.ask()), failed=[best])
        while not algo.done:
            algo.tell(env.evaluate(algo.ask()))
        assert algo.recommend()[0] != best
