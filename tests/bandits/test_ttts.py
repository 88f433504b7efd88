"""Top-Two Thompson Sampling's exact fast sampler: the same distribution as full posterior draws, the same
decisions as the straightforward reference sampler (`ttts_reference.py`) in distribution, and a run resumed
from its state dict continues exactly."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from raygems.bandits import make_algorithm, repetition_keys, ttts_sampler
from raygems.bandits.ttts import TopTwoThompsonSampling
from raygems.compiled import HAVE_NUMBA
from raygems.populations import generate_tree
from raygems.replay import CorrectnessMatrix, MatrixEnvironment
from ttts_reference import TopTwoThompsonSamplingReference

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")


def test_ttts_resume_from_state_dict_mid_run():
    matrix = generate_tree("mistral-7b", num_finetunes=40, num_adapters=10, queries_per_task=20).matrix
    seeds = repetition_keys(4, 3)
    reference = make_algorithm("ttts", matrix.num_models, matrix.num_queries, 10, seeds)
    env = MatrixEnvironment(matrix.values, seeds)
    while not reference.done:
        reference.tell(env.evaluate(reference.ask()))
    first = make_algorithm("ttts", matrix.num_models, matrix.num_queries, 10, seeds)
    env = MatrixEnvironment(matrix.values, seeds)
    for _ in range(137):
        first.tell(env.evaluate(first.ask()))
    resumed = make_algorithm("ttts", matrix.num_models, matrix.num_queries, 10, seeds)
    resumed.load_state_dict(first.state_dict())
    while not resumed.done:
        resumed.tell(env.evaluate(resumed.ask()))
    assert np.array_equal(resumed.pulls, reference.pulls)


# ---------------------------------------------------------------------------- TTTS: in distribution
def _random_posteriors(k, seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 60, size=k)
    n[: k // 5] = 0  # some arms never pulled: flat posteriors
    s = rng.binomial(n, rng.uniform(0.3, 0.8, size=k))
    return (1.0 + s)[None, :], (1.0 + n - s)[None, :]


def _reference_argmax_frequencies(alpha, beta, draws, seed):
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha[0], beta[0], size=(draws, alpha.shape[1]))
    return np.bincount(theta.argmax(axis=1), minlength=alpha.shape[1])


def _sampler_argmax_frequencies(alpha, beta, draws, tau_value, exclude=-1):
    """Argmax counts of `draws` sampler draws with a forced threshold tau (exercising every path)."""
    k = alpha.shape[1]
    usable = np.ones((1, k), dtype=bool)
    pullable = np.ones((1, k), dtype=bool)
    blocks = -(-k // ttts_sampler.BLOCK)
    tau = np.array([tau_value])
    state = dict(mass=np.zeros((1, k)), hazard=np.zeros((1, k)), is_tail=np.zeros((1, k), bool),
                 block_hazard=np.zeros((1, blocks)), block_mass=np.zeros((1, blocks)),
                 full_list=np.zeros((1, k), np.int64), full_count=np.zeros(1, np.int64))
    with np.errstate(over="ignore"):
        ttts_sampler.rebuild(alpha, beta, usable, tau, state["mass"], state["hazard"], state["is_tail"],
                             state["block_hazard"], state["block_mass"], state["full_list"], state["full_count"])
        have, touched, stats = np.zeros(k, bool), np.zeros(k, np.int64), np.zeros(4, np.int64)
        counts, counts_other = np.zeros(k, np.int64), np.zeros(k, np.int64)
        for j in range(draws):
            best, other = ttts_sampler._argmax_draw(0, np.uint64(12345), 7, j, exclude, alpha, beta, pullable, tau,
                                                     state["hazard"], state["block_hazard"], state["is_tail"],
                                                     state["full_list"], state["full_count"], have, touched,
                                                     stats)
            counts[best] += 1
            if exclude >= 0:
                counts_other[other] += 1
    return counts, counts_other, stats


@needs_numba
@pytest.mark.parametrize("tau_quantile", [0.5, 0.97, 0.9995])
def test_sampler_argmax_has_the_full_draw_distribution(tau_quantile):
    """The argmax of the sampler's draws has the distribution of the argmax of full independent Beta draws,
    whatever the threshold (low: many arms drawn in full; high: frequent draws below tau)."""
    alpha, beta = _random_posteriors(70, seed=int(tau_quantile * 1e4))
    draws = 40_000
    tau = float(np.quantile(np.random.default_rng(1).beta(alpha[0], beta[0], size=(50, 70)).max(axis=1),
                            tau_quantile))
    counts, _, stats = _sampler_argmax_frequencies(alpha, beta, draws, tau)
    ref = _reference_argmax_frequencies(alpha, beta, draws, seed=3)
    keep = (counts + ref) > 0
    p_value = chi2_contingency(np.vstack([counts[keep], ref[keep]]))[1]
    assert p_value > 1e-4, (p_value, tau, stats)


@needs_numba
def test_sampler_excluding_the_leader_has_the_conditional_distribution():
    """The fallback after the last redraw: the best arm other than `exclude` of the same draw."""
    alpha, beta = _random_posteriors(40, seed=5)
    leader = int(np.argmax(alpha[0] / (alpha[0] + beta[0])))
    draws = 30_000
    _, other, _ = _sampler_argmax_frequencies(alpha, beta, draws, 0.8, exclude=leader)
    theta = np.random.default_rng(4).beta(alpha[0], beta[0], size=(draws, 40))
    theta[:, leader] = -np.inf
    ref = np.bincount(theta.argmax(axis=1), minlength=40)
    keep = (other + ref) > 0
    assert chi2_contingency(np.vstack([other[keep], ref[keep]]))[1] > 1e-4


def _ttts_play_counts(cls, matrix, budget, reps, seed):
    seeds = repetition_keys(seed, reps)
    algo = cls(matrix.num_models, matrix.num_queries, budget, seeds)
    env = MatrixEnvironment(matrix.values, seeds)
    played = []
    while not algo.done:
        pulls = algo.ask()
        arms = np.full(reps, -1)
        arms[pulls.rep] = pulls.arm
        played.append(arms)
        algo.tell(env.evaluate(pulls))
    return np.array(played), algo


@pytest.mark.slow
def test_ttts_decisions_match_the_reference_sampler_in_distribution():
    """P(arm played at step t) and the final pull counts agree with the straightforward sampler."""
    rng = np.random.default_rng(2)
    k, q = 12, 40
    p = np.linspace(0.35, 0.75, k)
    values = (rng.random((k, q)) < p[:, None]).astype(np.uint8)
    matrix = CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)))
    reps, budget = 3000, 4
    new, new_algo = _ttts_play_counts(TopTwoThompsonSampling, matrix, budget, reps, seed=1)
    old, old_algo = _ttts_play_counts(TopTwoThompsonSamplingReference, matrix, budget, reps, seed=2)
    for t in (0, 5, 20, k * budget - 1):
        table = np.vstack([np.bincount(new[t], minlength=k), np.bincount(old[t], minlength=k)])
        table = table[:, table.sum(axis=0) > 0]
        assert chi2_contingency(table)[1] > 1e-4, t
    for arm in (k - 1, k - 2, 0):
        a, b = new_algo.pulls[:, arm], old_algo.pulls[:, arm]
        assert abs(a.mean() - b.mean()) < 4 * np.sqrt((a.var() + b.var()) / reps), arm


def test_probability_best_matches_full_draws():
    """The p-best recommendation's Monte Carlo estimate agrees with counting argmaxes of full draws."""
    alpha, beta = _random_posteriors(50, seed=8)
    algo = make_algorithm("ttts", 50, 200, 10, repetition_keys(0, 1), mc_samples=20_000)
    estimate = algo._probability_best(alpha, beta)[0]
    ref = _reference_argmax_frequencies(alpha, beta, 20_000, seed=9) / 20_000
    assert np.all(np.abs(estimate - ref) < 5 * np.sqrt(np.maximum(ref, 1e-3) / 20_000) + 1e-3)


def test_plausible_arms_equal_the_direct_quantile_rule():
    from scipy.special import betaincinv

    rng = np.random.default_rng(3)
    for trial in range(40):
        k = int(rng.integers(2, 400))
        n = rng.integers(0, int(rng.choice([3, 50, 2500])), size=k)
        s = rng.binomial(n, rng.uniform(0.2, 0.9, size=k))
        alpha, beta = 1.0 + s, 1.0 + n - s
        failed = rng.random(k) < (0.1 if trial % 2 else 0.0)
        if failed.all():
            continue
        lower = np.where(failed, -np.inf, betaincinv(alpha, beta, 1e-6))
        upper = np.where(failed, -np.inf, betaincinv(alpha, beta, 1 - 1e-6))
        expected = np.flatnonzero(upper >= lower.max())
        assert np.array_equal(TopTwoThompsonSampling.plausible_arms(alpha, beta, failed), expected)
