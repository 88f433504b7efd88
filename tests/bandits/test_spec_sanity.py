"""The implementation spec's sanity tests (../shared/spec/bandits.md section 12), for every method."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.bandits import get_method, list_methods, make_algorithm, repetition_keys
from raygems.replay import CorrectnessMatrix, MatrixEnvironment, replay
from raygems.replay.engine import run_to_end

SPENDING = [m for m in list_methods() if get_method(m).spends_budget]
CORRELATED = ["ours", "ours-sh-schedule"]


def random_matrix(k: int, q: int, seed: int = 0) -> CorrectnessMatrix:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, size=(k, 1))
    values = (rng.random((k, q)) < p).astype(np.uint8)
    return CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)))


class RecordingEnvironment(MatrixEnvironment):
    """Exact environment that remembers every (rep, arm, query) it served, per request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, exact=True, **kwargs)
        self.served: list[tuple[int, int, np.ndarray]] = []
        self.requests: list[list[tuple[int, int, np.ndarray]]] = []

    def evaluate(self, pulls):
        batch = [(int(pulls.rep[j]), int(pulls.arm[j]), pulls.query_ids(j)) for j in range(len(pulls))]
        self.served.extend(batch)
        self.requests.append(batch)
        return super().evaluate(pulls)


@pytest.mark.parametrize("method", SPENDING)
@pytest.mark.parametrize("budget", [3, 10, 40])
def test_budget_never_exceeded(method, budget):
    matrix = random_matrix(40, 120, seed=budget)
    result = replay(matrix, method, budget, reps=8, seed=1)
    total = budget * matrix.num_models
    assert (result.per_rep["budget_used"] <= total).all()
    if budget == 10:  # no pool cap binds at N = 10, Q = 120: the spec's expected budget use (section 12.1)
        fraction = result.summary()["budget_fraction"]
        expected_floor = {"uniform": 1.0, "ucb": 1.0, "ucb-stddev": 1.0, "ucb-e": 1.0, "ttts": 1.0, "ours": 0.99,
                          "ours-no-corr": 0.99}
        assert fraction >= expected_floor.get(method, 0.85) - 1e-12, (method, fraction)


@pytest.mark.parametrize("method", SPENDING)
def test_no_pair_evaluated_twice(method):
    matrix = random_matrix(24, 60, seed=3)
    seeds = repetition_keys(5, 3)
    algo = make_algorithm(method, matrix.num_models, matrix.num_queries, 10, seeds)
    env = RecordingEnvironment(matrix.values, seeds)
    run_to_end(algo, env)
    seen = set()
    for rep, arm, ids in env.served:
        for q in ids.tolist():
            assert (rep, arm, q) not in seen, f"{method}: pair (arm {arm}, query {q}) evaluated twice"
            seen.add((rep, arm, q))
    assert len(seen) == int(algo.budget_used.sum())


@pytest.mark.parametrize("method", CORRELATED)
def test_survivors_of_a_round_share_query_ids(method):
    matrix = random_matrix(60, 200, seed=4)
    seeds = repetition_keys(2, 4)
    algo = make_algorithm(method, matrix.num_models, matrix.num_queries, 12, seeds)
    env = RecordingEnvironment(matrix.values, seeds)
    run_to_end(algo, env)
    assert len(env.requests) >= 3
    for batch in env.requests:
        for rep in {r for r, _, _ in batch}:
            blocks = [ids for r, _, ids in batch if r == rep]
            assert len(blocks) >= 1
            assert all(np.array_equal(blocks[0], b) for b in blocks)


@pytest.mark.parametrize("method", SPENDING)
def test_independent_methods_draw_different_queries_per_arm(method):
    matrix = random_matrix(20, 100, seed=6)
    seeds = repetition_keys(0, 1)
    algo = make_algorithm(method, matrix.num_models, matrix.num_queries, 10, seeds)
    if getattr(algo, "correlated", False):
        pytest.skip("correlated by design")
    env = RecordingEnvironment(matrix.values, seeds)
    run_to_end(algo, env)
    firsts = {}
    for _, arm, ids in env.served:
        firsts.setdefault(arm, ids[0])
    assert len(firsts) > 5
    assert len(set(firsts.values())) > len(firsts) // 2


@pytest.mark.parametrize("method", SPENDING)
def test_one_good_arm_is_found(method):
    """Spec 12.3. K and N are chosen so that the test is passable in theory: with K = 50 and N = 10, Uniform
    ties the perfect arm with another 10/10 arm in ~5% of repetitions and loses half of those ties."""
    rng = np.random.default_rng(11)
    k, q = 20, 400
    values = (rng.random((k, q)) < 0.5).astype(np.uint8)
    good = 17
    values[good] = 1
    matrix = CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)))
    result = replay(matrix, method, 20, reps=100, seed=0)
    share = float((result.per_rep["arm"] == good).mean())
    assert share >= 0.99, f"{method} found the perfect arm in only {share:.0%} of repetitions"


def test_bayes_elim_with_flat_prior_equals_cumulative_sequential_halving():
    matrix = random_matrix(90, 300, seed=8)
    a = replay(matrix, "bayes-elim", 10, reps=50, seed=4)
    b = replay(matrix, "sequential-halving", 10, reps=50, seed=4, options={"estimator": "cumulative"})
    assert np.array_equal(a.per_rep["arm"], b.per_rep["arm"])
    uniform_prior = {"prior_alpha": np.full(90, 3.0), "prior_beta": np.full(90, 3.0)}
    c = replay(matrix, "bayes-elim", 10, reps=50, seed=4, options=uniform_prior)
    assert np.array_equal(a.per_rep["arm"], c.per_rep["arm"])  # a shared prior ranks like counts


def test_ours_with_sh_like_schedule_performs_like_ours_sh_schedule():
    """Spec 12.4: rule A with round 1 = Karnin's round 0 and m2 = ceil(K/2) behaves like ours-sh-schedule."""
    from raygems.populations import generate_tree

    matrix = generate_tree("mistral-7b").matrix
    k = matrix.num_models
    a = replay(matrix, "ours", 20, reps=100, seed=0,
               options={"first_round_fraction": 20 / (20 * 9), "keep_after_first": (k + 1) // 2}).summary()
    b = replay(matrix, "ours-sh-schedule", 20, reps=100, seed=0).summary()
    assert abs(a["mean_accuracy"] - b["mean_accuracy"]) < 0.01


def test_fast_draws_match_permutation_prefixes():
    """Spec 12.5: the fast path's block counts have the hypergeometric mean and variance of permutation prefixes."""
    q, good, t, reps = 100, 37, 20, 10_000
    values = np.zeros((2, q), dtype=np.uint8)
    values[0, :good] = 1
    values[1, :q // 2] = 1
    seeds = repetition_keys(9, reps)
    counts = {}
    for exact in (False, True):
        algo = make_algorithm("uniform", 2, q, t, seeds)
        env = MatrixEnvironment(values, seeds, exact=exact)
        pulls = algo.ask()
        successes = env.evaluate(pulls)
        counts[exact] = successes[pulls.arm == 0]
    mean = t * good / q
    var = t * (good / q) * (1 - good / q) * (q - t) / (q - 1)
    for exact, c in counts.items():
        assert abs(c.mean() - mean) < 4 * np.sqrt(var / reps), exact
        assert abs(c.var() - var) / var < 0.08, exact


@pytest.mark.parametrize("method", ["successive-rejects", "sequential-halving", "ours", "ours-sh-schedule",
                                    "ours-no-corr", "bayes-elim", "ucb", "ucb-e", "uniform"])
def test_pool_cap(method):
    """Spec 12.6 (with N <= Q, see docs/bandits.md): a small pool caps pulls, the run finishes, and the
    choice is exact among arms whose whole pool was seen."""
    matrix = random_matrix(16, 50, seed=12)
    result = replay(matrix, method, 40, reps=10, seed=3, exact=True)
    algo = make_algorithm(method, 16, 50, 40, repetition_keys(3, 10))
    run_to_end(algo, MatrixEnvironment(matrix.values, algo.seeds, exact=True))
    assert (algo.pulls <= 50).all()
    assert (algo.budget_used <= 40 * 16).all()
    complete = algo.pulls == 50
    if method in ("ours", "ours-sh-schedule", "successive-rejects"):
        assert complete.any(axis=1).all()
    chosen = algo.recommend()
    for r in range(10):
        if complete[r, chosen[r]] and method not in ("ucb", "ucb-e"):
            full = np.flatnonzero(complete[r])
            assert matrix.accuracies[chosen[r]] == matrix.accuracies[full].max()
    assert np.array_equal(chosen, result.per_rep["arm"].to_numpy())


def test_plugin_ucb_e_uses_the_sum_of_inverse_squared_gaps():
    """Spec 4: a = (25/36)(B - K) / H1, H1 = sum 1/D_i^2, the best arm's gap being its gap to the runner-up."""
    from raygems.replay import kernels

    algo = make_algorithm("ucb-e", 5, 100, 10, repetition_keys(0, 2), mode="plugin")
    algo.successes[:] = np.array([9, 8, 7, 6, 5])
    algo.pulls[:] = 10
    algo.failed[1, 4] = True                 # a failed arm is left out
    expected = np.array([100 + 100 + 1 / 0.2**2 + 1 / 0.3**2 + 1 / 0.4**2, 100 + 100 + 1 / 0.2**2 + 1 / 0.3**2])
    assert np.allclose(algo._plugin_hardness(), expected)
    compiled = [kernels._ucbe_plugin_hardness(algo.successes[r].astype(np.int64), algo.pulls[r].astype(np.int64),
                                              algo.failed[r], algo.gap_floor) for r in range(2)]
    assert np.array_equal(algo._plugin_hardness(), np.array(compiled))
