"""Reference implementation of Top-Two Thompson Sampling: the straightforward sampler, kept to check the fast one.

This is the TTTS of raygems before the exact fast sampler (`ttts.py`, `ttts_sampler.py`): a full Beta draw
for every arm at every draw, one numpy Generator per repetition. The two make different draws but the same
decisions in distribution; tests/bandits/test_ttts.py compares them. Not registered as a method.

Top-Two Thompson Sampling (Russo 2016) with Beta-Bernoulli posteriors (spec 7).

Each step: draw theta from every arm's posterior, I = argmax. With probability beta (0.5) play I;
otherwise redraw until the argmax J differs from I (at most 100 redraws; then the best arm other than I of
the last draw) and play J. No forced initialisation (faithful; `init_each_arm=True` pulls every arm first).

Recommendation (spec 7, default "p-best"): the arm most often best in `mc_samples` joint posterior draws,
restricted to the arms whose posterior can still plausibly be the best (its 1 - 1e-6 upper quantile is above
the highest 1e-6 lower quantile); others have P(best) < 1e-6. Flags: "posterior-mean", "eba", "most-played".

Posterior draws come from one numpy Generator per repetition, seeded by the repetition's key, so a
repetition gives the same choices whether it runs alone or among R = 100.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import betaincinv

from raygems.bandits.base import BanditAlgorithm, Pulls, make_pulls
from raygems.bandits.randomness import STREAM_POSTERIOR, STREAM_TIEBREAK, mix64, uniform

RECOMMENDATIONS = ("p-best", "posterior-mean", "eba", "most-played")


class TopTwoThompsonSamplingReference(BanditAlgorithm):
    name = "ttts-reference"
    anytime: ClassVar[bool] = True

    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, beta: float = 0.5,
                 recommendation: str = "p-best", mc_samples: int = 2000, max_redraws: int = 100,
                 init_each_arm: bool = False, prior_alpha=None, prior_beta=None):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if recommendation not in RECOMMENDATIONS:
            raise ValueError(f"recommendation must be one of {RECOMMENDATIONS}, got {recommendation!r}")
        self.beta = float(beta)
        self.recommendation = recommendation
        self.mc_samples = int(mc_samples)
        self.max_redraws = int(max_redraws)
        self.init_each_arm = init_each_arm
        self.initialized = not init_each_arm
        shape = (self.reps, self.num_arms)
        self.prior_alpha = np.broadcast_to(np.asarray(1.0 if prior_alpha is None else prior_alpha, float), shape).copy()
        self.prior_beta = np.broadcast_to(np.asarray(1.0 if prior_beta is None else prior_beta, float), shape).copy()
        if np.any(self.prior_alpha <= 0) or np.any(self.prior_beta <= 0):
            raise ValueError("prior_alpha and prior_beta must be positive")
        stream = mix64(np.uint64(STREAM_POSTERIOR))
        self._rngs = [np.random.default_rng(int(k ^ stream)) for k in self.seeds]

    # ------------------------------------------------------------------------------------------ posterior
    @property
    def alpha(self) -> np.ndarray:
        return self.prior_alpha + self.successes

    @property
    def beta_param(self) -> np.ndarray:
        return self.prior_beta + self.pulls - self.successes

    @property
    def done(self) -> bool:
        if bool(np.all(self.budget_used >= self.budget)):
            return True
        return not ((self.pulls < self.num_queries) & ~self.failed).any()

    def ask(self) -> Pulls | None:
        if self._pending is not None:
            return self._pending
        if self.done:
            return None
        if not self.initialized:
            rep, arm = np.nonzero(~self.failed)
            return self._issue(make_pulls(rep, arm, np.zeros_like(rep), np.ones_like(rep), False, self.order))
        alpha, beta = self.alpha, self.beta_param
        chosen = np.full(self.reps, -1, dtype=np.int64)
        for r in range(self.reps):
            if self.budget_used[r] >= self.budget:
                continue
            chosen[r] = self._choose(r, alpha[r], beta[r])
        rep = np.flatnonzero(chosen >= 0)
        arm = chosen[rep]
        return self._issue(Pulls(rep, arm, self.pulls[rep, arm], np.ones(rep.size, dtype=np.int64), False,
                                 self.order))

    def _choose(self, r: int, alpha: np.ndarray, beta: np.ndarray) -> int:
        rng = self._rngs[r]
        usable = ~self.failed[r]
        pullable = usable & (self.pulls[r] < self.num_queries)
        theta = np.where(usable, rng.beta(alpha, beta), -np.inf)
        leader = int(np.argmax(theta))
        if rng.random() < self.beta and pullable[leader]:
            return leader
        for _ in range(self.max_redraws):
            theta = np.where(usable, rng.beta(alpha, beta), -np.inf)
            challenger = int(np.argmax(theta))
            if challenger != leader and pullable[challenger]:
                return challenger
        theta[leader] = -np.inf
        theta[~pullable] = -np.inf
        return int(np.argmax(theta))

    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        self.initialized = True

    # ---------------------------------------------------------------------------------- recommendation
    def recommend(self) -> np.ndarray:
        alpha, beta = self.alpha, self.beta_param
        jitter = uniform(self.seeds, STREAM_TIEBREAK, -1, np.arange(self.num_arms))
        if self.recommendation == "most-played":
            keys = self.pulls + 0.5 * jitter
        elif self.recommendation == "eba":
            keys = np.where(self.pulls > 0, self.means, -np.inf) + 1e-12 * jitter
        else:
            keys = alpha / (alpha + beta) + 1e-12 * jitter
            if self.recommendation == "p-best":
                keys = self._probability_best(alpha, beta) + 1e-3 * keys  # posterior mean breaks ties
        keys = np.where(self.failed, -np.inf, keys)
        return np.argmax(keys, axis=1)

    def _probability_best(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Monte Carlo estimate of P(arm is the best | data), over the plausible arms."""
        p_best = np.zeros((self.reps, self.num_arms))
        tail = 1e-6
        lower = betaincinv(alpha, beta, tail)
        upper = betaincinv(alpha, beta, 1.0 - tail)
        lower[self.failed], upper[self.failed] = -np.inf, -np.inf
        for r in range(self.reps):
            plausible = np.flatnonzero(upper[r] >= lower[r].max())
            rng = np.random.default_rng(int(self.seeds[r] ^ mix64(np.uint64(STREAM_POSTERIOR + 1))))
            draws = rng.beta(alpha[r, plausible], beta[r, plausible], size=(self.mc_samples, plausible.size))
            wins = np.bincount(np.argmax(draws, axis=1), minlength=plausible.size)
            p_best[r, plausible] = wins / self.mc_samples
        return p_best

    def state_dict(self):
        state = super().state_dict()
        state["rng_states"] = [g.bit_generator.state for g in self._rngs]
        return state

    def load_state_dict(self, state):
        state = dict(state)
        for g, s in zip(self._rngs, state.pop("rng_states")):
            g.bit_generator.state = s
        super().load_state_dict(state)
