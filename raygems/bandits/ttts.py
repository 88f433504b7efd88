"""Top-Two Thompson Sampling (Russo 2016) with Beta-Bernoulli posteriors (spec 7).

Each step: draw theta from every arm's posterior, I = argmax. With probability beta (0.5) play I;
otherwise redraw until the argmax J differs from I (at most 100 redraws; then the best arm other than I of
the last draw) and play J. No forced initialisation (faithful; `init_each_arm=True` pulls every arm first).

Recommendation (spec 7, default "p-best"): the arm most often best in `mc_samples` joint posterior draws,
restricted to the arms whose posterior can still plausibly be the best (its 1 - 1e-6 upper quantile is above
the highest 1e-6 lower quantile); others have P(best) < 1e-6. Flags: "posterior-mean", "eba", "most-played".

Posterior draws (`ttts_sampler.py`): each decision's argmax draws are exact in distribution but only touch
the arms that can be the argmax, with counter-based randomness (a repetition makes the same choices whether
it runs alone or among R = 100, through ask/tell or through the replay's compiled loop, `raygems.replay.ttts_loop`,
which takes the state from `kernel_state()`). Compiled with numba when it is installed; the same functions run
as plain Python otherwise. `tests/bandits/ttts_reference.py` keeps the straightforward
sampler (a full draw of all K posteriors per draw) that tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import betaincinv

from raygems.bandits import ttts_sampler
from raygems.bandits.base import BanditAlgorithm, Pulls
from raygems.bandits.randomness import STREAM_TIEBREAK, uniform
from raygems.compiled import HAVE_NUMBA

RECOMMENDATIONS = ("p-best", "posterior-mean", "eba", "most-played")


@dataclass(frozen=True)
class TTTSKernelState:
    """TTTS's state as a compiled replay loop advances it (`raygems.replay.ttts_loop`): its counts, decision
    numbers and priors (updated in place) and the arguments of its sampler (`ttts_sampler.choose`: posterior
    parameters, pullable arms, thresholds, tail sums, `min_spacing`, the statistics counters)."""

    num_queries: int
    seeds: np.ndarray
    beta: float
    max_redraws: int
    pulls: np.ndarray
    successes: np.ndarray
    budget_used: np.ndarray
    decisions_made: np.ndarray
    prior_alpha: np.ndarray
    prior_beta: np.ndarray
    sampler: tuple


class TopTwoThompsonSampling(BanditAlgorithm):
    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, beta: float = 0.5,
                 recommendation: str = "p-best", mc_samples: int = 2000, max_redraws: int = 100,
                 init_each_arm: bool = False, prior_alpha=None, prior_beta=None):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if recommendation not in RECOMMENDATIONS:
            raise ValueError(f"recommendation must be one of {RECOMMENDATIONS}, got {recommendation!r}")
        if mc_samples < 1 or max_redraws < 0:
            raise ValueError(f"mc_samples must be >= 1 and max_redraws >= 0, got {mc_samples} and {max_redraws}")
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
        # sampler state that is not derived from the counts: per repetition, the sampler's threshold, the
        # decision at which it was set, and the number of decisions made
        self.tail_threshold = np.full(self.reps, np.nan)
        self.tail_refreshed_at = np.zeros(self.reps, dtype=np.int64)
        self.decisions_made = np.zeros(self.reps, dtype=np.int64)
        self._sampler: dict[str, np.ndarray] | None = None

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
            return self._pull_every_arm_once()
        active = (self.budget_used < self.budget) & self._pullable().any(axis=1)
        sampler = self._sampler_state()
        chosen = self._call(ttts_sampler.choose_all, active, self.decisions_made, self.seeds, self.beta,
                            self.max_redraws, *self._sampler_arguments(sampler))
        rep = np.flatnonzero(chosen >= 0)
        arm = chosen[rep]
        return self._issue(Pulls(rep, arm, self.pulls[rep, arm], np.ones(rep.size, dtype=np.int64), False,
                                 self.order))

    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        if not self.initialized:
            self.initialized = True
            self._sampler = None  # every arm changed: rebuilt on the next ask
            return
        self.decisions_made[np.unique(pulls.rep)] += 1
        if self._sampler is None:
            return
        sampler = self._sampler
        sampler["alpha"][:] = self.alpha
        sampler["beta"][:] = self.beta_param
        sampler["pullable"][:] = self._pullable()
        for r, a in zip(pulls.rep.tolist(), pulls.arm.tolist()):
            self._call(ttts_sampler.after_pull, r, a, *self._state_arguments(sampler))

    # ------------------------------------------------------------------------------------- fast sampling
    def _min_spacing(self) -> int:
        """The sampler's threshold is refreshed at most once per this many decisions (unless unset)."""
        return max(16, self.num_arms // 8)

    def _pullable(self) -> np.ndarray:
        return ~self.failed & (self.pulls < self.num_queries)

    def _sampler_state(self) -> dict[str, np.ndarray]:
        """Arrays the compiled sampler works on; all but the threshold are derived from the counts."""
        if self._sampler is None:
            reps, k = self.reps, self.num_arms
            blocks = -(-k // ttts_sampler.BLOCK)
            self._sampler = sampler = {
                "alpha": np.ascontiguousarray(self.alpha), "beta": np.ascontiguousarray(self.beta_param),
                "usable": ~self.failed, "pullable": self._pullable(),
                "mass": np.zeros((reps, k)), "hazard": np.zeros((reps, k)), "is_tail": np.zeros((reps, k), bool),
                "block_hazard": np.zeros((reps, blocks)), "block_mass": np.zeros((reps, blocks)),
                "full_list": np.zeros((reps, k), dtype=np.int64), "full_count": np.zeros(reps, dtype=np.int64),
            }
            self._call(ttts_sampler.rebuild, *self._state_arguments(sampler))
        return self._sampler

    def _state_arguments(self, sampler) -> tuple:
        return (sampler["alpha"], sampler["beta"], sampler["usable"], self.tail_threshold, sampler["mass"],
                sampler["hazard"], sampler["is_tail"], sampler["block_hazard"], sampler["block_mass"],
                sampler["full_list"], sampler["full_count"])

    def _sampler_arguments(self, sampler) -> tuple:
        return (sampler["alpha"], sampler["beta"], sampler["usable"], sampler["pullable"], self.tail_threshold,
                self.tail_refreshed_at, sampler["mass"], sampler["hazard"], sampler["is_tail"],
                sampler["block_hazard"], sampler["block_mass"], sampler["full_list"], sampler["full_count"],
                self._min_spacing(), SAMPLER_STATS)

    @staticmethod
    def _call(fn, *args):
        if HAVE_NUMBA:
            return fn(*args)
        with np.errstate(over="ignore"):  # plain-Python uint64 hashing wraps around, as compiled code does
            return fn(*args)

    def kernel_state(self) -> TTTSKernelState | None:
        """The state a compiled replay loop advances in place; None once an arm has failed (the loop does not
        handle failed arms)."""
        if self._any_failed:
            return None
        return TTTSKernelState(self.num_queries, self.seeds, self.beta, self.max_redraws, self.pulls, self.successes,
                               self.budget_used, self.decisions_made, self.prior_alpha, self.prior_beta,
                               self._sampler_arguments(self._sampler_state()))

    def mark_failed(self, failed) -> None:
        super().mark_failed(failed)
        self._sampler = None  # rebuilt on the next ask

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
                # the posterior mean (x 1e-3) decides between arms whose estimated P(best) lie within
                # 1e-3 of each other: two Monte Carlo steps at the default 2,000 samples
                keys = self._probability_best(alpha, beta) + 1e-3 * keys
        keys = np.where(self.failed, -np.inf, keys)
        return np.argmax(keys, axis=1)

    def _probability_best(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Monte Carlo estimate of P(arm is the best | data) from `mc_samples` joint posterior draws over the
        plausible arms (each draw's argmax from the exact sampler of `ttts_sampler`)."""
        plausible = np.zeros((self.reps, self.num_arms), dtype=bool)
        for r in range(self.reps):
            plausible[r, self.plausible_arms(alpha[r], beta[r], self.failed[r])] = True
        return self._call(ttts_sampler.probability_best, np.ascontiguousarray(alpha, dtype=np.float64),
                          np.ascontiguousarray(beta, dtype=np.float64), plausible, self.seeds, self.decisions_made,
                          self.mc_samples, SAMPLER_STATS)

    PLAUSIBLE_TAIL: ClassVar[float] = 1e-6

    @classmethod
    def plausible_arms(cls, alpha: np.ndarray, beta: np.ndarray, failed: np.ndarray) -> np.ndarray:
        """Arms (sorted indices) whose upper 1 - 1e-6 posterior quantile reaches the highest lower 1e-6
        quantile: `flatnonzero(upper >= max(lower))` over the arms that did not fail.

        Computing the two quantiles (betaincinv) for every arm costs ~50 us each; this gives the same set
        while computing few of them. With a, b >= 1 (log-concave posteriors) P(theta <= mean) and
        P(theta >= mean) are both >= 1/e, so lower <= mean <= upper: the highest lower quantile is found
        among the arms of highest mean, and every arm whose mean reaches it is plausible. Below it, arms
        whose Chernoff bound P(theta > L) = P(Bin(a+b-1, L) <= a-1) <= exp(-n KL) is under 1e-7 (integer
        parameters) are certainly not plausible (their upper quantile is below L); the quantile is computed
        for the rest. Other priors use the direct computation.
        """
        tail = cls.PLAUSIBLE_TAIL
        usable = np.flatnonzero(~failed)
        a, b = alpha[usable], beta[usable]
        integer = np.all(a == np.round(a)) and np.all(b == np.round(b))
        if not (np.all(a >= 1.0) and np.all(b >= 1.0) and integer) or usable.size == 0:
            lower = np.where(failed, -np.inf, betaincinv(alpha, beta, tail))
            upper = np.where(failed, -np.inf, betaincinv(alpha, beta, 1.0 - tail))
            return np.flatnonzero(upper >= lower.max())
        mean = a / (a + b)
        order = np.argsort(-mean, kind="stable")
        best_lower, done = -np.inf, 0
        while done < order.size and mean[order[done]] >= best_lower:
            chunk = order[done:done + 8]
            chunk = chunk[mean[chunk] >= best_lower]
            best_lower = max(best_lower, float(betaincinv(a[chunk], b[chunk], tail).max()))
            done += 8
        plausible = mean >= best_lower
        rest = np.flatnonzero(~plausible)
        if rest.size:
            n = a[rest] + b[rest] - 1.0
            frac = (a[rest] - 1.0) / n
            with np.errstate(divide="ignore", invalid="ignore"):
                kl = (np.where(frac > 0, frac * np.log(frac / best_lower), 0.0)
                      + (1.0 - frac) * np.log((1.0 - frac) / (1.0 - best_lower)))
            maybe = rest[~((frac < best_lower) & (n * kl > -np.log(1e-7)))]
            if maybe.size:
                plausible[maybe] = betaincinv(a[maybe], b[maybe], 1.0 - tail) >= best_lower
        return usable[plausible]

    def load_state_dict(self, state):
        state = dict(state)
        state.pop("rng_states", None)  # saved by the reference sampler; not used here
        super().load_state_dict(state)
        self._sampler = None  # rebuilt from the counts and the restored thresholds on the next ask


#: counters of the sampler, process-wide: draws, tail candidates, draws that needed every arm, refreshes
SAMPLER_STATS = np.zeros(4, dtype=np.int64)

