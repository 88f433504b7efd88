"""Round-based elimination: Uniform, Successive Rejects, Sequential Halving, BayesElim and the paper's method.

All of them share one loop: every survivor answers the round's queries, then the best `keep` survive.
They differ only in
* the schedule (`schedules.py`),
* the sampling: independent (each arm draws its own queries) or correlated (all survivors of a round answer
  the same queries, drawn from one shared permutation per repetition),
* the score used to eliminate: the cumulative count, the count of this round only (Karnin's SH), or a
  Beta posterior mean (BayesElim with per-arm priors).
Ties are broken uniformly at random with fresh jitter at every decision (spec 0.1).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls, make_pulls, top_m
from raygems.bandits.schedules import (
    OURS_SCHEDULES,
    Round,
    aggressive_schedule,
    karnin_schedule,
    ratio_schedule,
    successive_rejects_schedule,
    table4_literal_schedule,
    uniform_schedule,
)

ESTIMATORS = ("cumulative", "per_round")


class EliminationAlgorithm(BanditAlgorithm):
    """Generic round-based elimination (see module docstring).

    Options
    -------
    correlated: survivors of a round answer identical queries (one shared permutation per repetition).
    estimator: "cumulative" (all answers so far) or "per_round" (this round's answers only).
    prior_alpha, prior_beta: optional per-arm Beta prior (arrays of shape (K,) or (R, K)); when given, arms are
        ranked by posterior mean (a + S) / (a + b + n) instead of by count. With one prior shared by all arms
        the ranking is the same as by count.
    arm_priority: optional (K,) or (R, K) array; among arms tied on score, higher priority survives first
        (e.g. a learned prior's ranking). Remaining ties are broken at random.
    """

    default_estimator: ClassVar[str] = "cumulative"

    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, estimator: str | None = None,
                 correlated: bool | None = None, prior_alpha=None, prior_beta=None, arm_priority=None):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        self.estimator = estimator or self.default_estimator
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if correlated is not None:
            self.correlated = bool(correlated)
        self.prior_alpha = self._per_arm_array(prior_alpha, "prior_alpha", positive=True)
        self.prior_beta = self._per_arm_array(prior_beta, "prior_beta", positive=True)
        if (self.prior_alpha is None) != (self.prior_beta is None):
            raise ValueError("give both prior_alpha and prior_beta, or neither")
        self.arm_priority = self._per_arm_array(arm_priority, "arm_priority")
        self.schedule: list[Round] = self.make_schedule()
        self.round = 0
        self.alive = np.ones((self.reps, self.num_arms), dtype=bool)
        self.round_successes = np.zeros((self.reps, self.num_arms), dtype=np.int64)
        self.queries_used = 0  # per survivor (equal for all survivors)
        self._skip_empty_rounds()

    def _per_arm_array(self, value, label: str, positive: bool = False):
        if value is None:
            return None
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape not in ((self.num_arms,), (self.reps, self.num_arms)):
            raise ValueError(f"{label} must have shape ({self.num_arms},) or ({self.reps}, {self.num_arms}), "
                             f"got {arr.shape}")
        if not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
            raise ValueError(f"{label} must be finite{' and positive' if positive else ''}")
        return np.broadcast_to(arr, (self.reps, self.num_arms)).copy()

    def make_schedule(self) -> list[Round]:
        raise NotImplementedError

    # --------------------------------------------------------------------------------------- protocol
    @property
    def done(self) -> bool:
        return self.round >= len(self.schedule)

    def ask(self) -> Pulls | None:
        if self._pending is not None:
            return self._pending
        if self.done:
            return None
        count = self.schedule[self.round].queries_per_arm
        rep, arm = np.nonzero(self.alive & ~self.failed)
        start = np.full(rep.shape, self.queries_used) if self.correlated else self.pulls[rep, arm]
        return self._issue(make_pulls(rep, arm, start, np.full(rep.shape, count), self.correlated, self.order))

    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        self.round_successes[:] = 0
        np.add.at(self.round_successes, (pulls.rep, pulls.arm), successes)
        self.queries_used += self.schedule[self.round].queries_per_arm
        self._eliminate()
        self._skip_empty_rounds()

    def _skip_empty_rounds(self) -> None:
        """Rounds with no queries left to ask (tiny budgets, exhausted pool) still eliminate (spec 9.4)."""
        while not self.done and self.schedule[self.round].queries_per_arm == 0:
            self.round_successes[:] = 0
            self._eliminate()

    def _eliminate(self) -> None:
        keep = self.schedule[self.round].keep
        self.alive &= ~self.failed
        self.alive = top_m(self.elimination_keys(), keep) & self.alive
        self.round += 1

    def elimination_keys(self) -> np.ndarray:
        """Score + tie-break per (rep, arm); -inf for eliminated arms."""
        jitter = self.jitter()
        if self.prior_alpha is not None:
            score = (self.prior_alpha + self.successes) / (self.prior_alpha + self.prior_beta + self.pulls)
            scale = 1e-12
        elif (self.estimator == "per_round" and self.schedule[self.round].queries_per_arm > 0
              and self.queries_used < self.num_queries):
            # per-round scores keep rounds independent (Karnin); once survivors have seen the whole pool their
            # cumulative means are exact and are used instead
            score, scale = self.round_successes.astype(np.float64), 0.5
        else:
            # Survivors all have the same number of pulls, so counts rank exactly like means.
            score, scale = self.successes.astype(np.float64), 0.5
        if self.arm_priority is not None:
            order = np.argsort(np.argsort(self.arm_priority, axis=1), axis=1)  # 0 .. K-1, higher = preferred
            jitter = (order + jitter) / self.num_arms
        keys = score + scale * jitter
        keys[~self.alive] = -np.inf
        return keys

    def eliminated(self) -> np.ndarray:
        return ~self.alive

    def recommend(self) -> np.ndarray:
        if not self.done:
            raise RuntimeError(f"{type(self).__name__}: recommend() before the schedule finished (round "
                               f"{self.round} of {len(self.schedule)})")
        keys = np.where(self.alive, self.successes.astype(np.float64), -np.inf)
        # A repetition whose last survivors all failed falls back on the best arm that did not fail.
        orphaned = ~np.isfinite(keys).any(axis=1)
        keys[orphaned] = np.where(self.failed[orphaned], -np.inf, self.means[orphaned])
        return np.argmax(keys, axis=1)


class Uniform(EliminationAlgorithm):
    """Every arm answers N queries (independently sampled); the empirical best is returned."""

    def make_schedule(self):
        return uniform_schedule(self.num_arms, self.budget_per_model, self.num_queries)


class SuccessiveRejects(EliminationAlgorithm):
    """Audibert & Bubeck (2010): K-1 phases, dropping the empirically worst arm after each (spec 5)."""

    def __init__(self, *args, spend_remainder: bool = False, **kwargs):
        self.spend_remainder = spend_remainder
        super().__init__(*args, **kwargs)

    def make_schedule(self):
        return successive_rejects_schedule(self.num_arms, self.budget_per_model, self.num_queries,
                                           spend_remainder=self.spend_remainder)


class SequentialHalving(EliminationAlgorithm):
    """Karnin et al. (2013): ceil(log2 K) rounds, keep the better half by this round's mean (spec 6)."""

    default_estimator = "per_round"

    def __init__(self, *args, carry_over: bool = False, **kwargs):
        self.carry_over = carry_over
        super().__init__(*args, **kwargs)

    def make_schedule(self):
        return karnin_schedule(self.num_arms, self.budget_per_model, self.num_queries, carry_over=self.carry_over)


class BayesElim(SequentialHalving):
    """Bayesian Elimination (Atsidakou et al. 2022), Beta-Bernoulli version (spec 8).

    Sequential-halving stages ranked by cumulative posterior means. With the default shared Beta(1, 1)
    prior this ranks exactly like SH with the cumulative estimator; per-arm priors (`prior_alpha`,
    `prior_beta`, e.g. from a learned model prior) are where it differs.
    """

    default_estimator = "cumulative"


class AggressiveElimination(EliminationAlgorithm):
    """The paper's method: correlated sampling + the aggressive schedule (spec 9), and its ablations.

    Options: schedule "rule_a" (default: budget-exact, keep 100 after round 1), "rule_b" (keep K/15),
    "table4_literal" (the paper's table; overspends on small trees), or "karnin"; first_round_fraction
    (0.6) and keep_after_first (100) for rule A; carry_over for "karnin".
    """

    correlated = True

    def __init__(self, *args, schedule: str = "rule_a", first_round_fraction: float = 0.6,
                 keep_after_first: int = 100, carry_over: bool = False, **kwargs):
        if schedule not in OURS_SCHEDULES:
            raise ValueError(f"schedule must be one of {OURS_SCHEDULES}, got {schedule!r}")
        self.schedule_name = schedule
        self.first_round_fraction = first_round_fraction
        self.keep_after_first = keep_after_first
        self.carry_over = carry_over
        super().__init__(*args, **kwargs)

    def make_schedule(self):
        k, n, q = self.num_arms, self.budget_per_model, self.num_queries
        builders: dict[str, Callable[[], list[Round]]] = {
            "rule_a": lambda: aggressive_schedule(k, n, q, first_round_fraction=self.first_round_fraction,
                                                  keep_after_first=self.keep_after_first),
            "rule_b": lambda: ratio_schedule(k, n, q, first_round_fraction=self.first_round_fraction),
            "table4_literal": lambda: table4_literal_schedule(k, n, q),
            "karnin": lambda: karnin_schedule(k, n, q, carry_over=self.carry_over),
        }
        return builders[self.schedule_name]()


class OursSHSchedule(AggressiveElimination):
    """Ablation: correlated sampling with Karnin's schedule, cumulative counts (spec 9.5)."""

    def __init__(self, *args, schedule: str = "karnin", **kwargs):
        super().__init__(*args, schedule=schedule, **kwargs)


class OursNoCorrelation(AggressiveElimination):
    """Ablation: the aggressive schedule with independent per-arm sampling (spec 9.5)."""

    correlated = False
