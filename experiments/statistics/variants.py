"""Design-study variants of the recommended method whose options were tested and not kept (so they are not
in raygems.bandits.recommended): an aggressive first round, confidence-bound cuts, keeping arms tied at the
cut-off. Registered as `recommended-study` in the processes that import this module (design_study.py).

* first_round_share, first_round_keep: round 1 asks every model round(share * N) queries and keeps that
  fraction of the models (the paper's idea, milder), then the recommended schedule.
* cut_z: after a round, also drop arms whose count is more than z standard deviations below the leader's
  (sd from the binomial variances of the two, ignoring their positive correlation: conservative).
* tie_slack: arms tied on count with the last kept arm also go on when they add at most tie_slack * keep
  survivors (otherwise ties at the cut-off are broken at random, as in the recommended method).
* late_budget="halving": the gentle late stage gets only the budget of the halving rounds it replaces
  (`plan_round`'s weights) instead of an equal share per round.
* anchor_arm: an arm (the popular base) that is never eliminated before the final round, so the answer is
  compared with it on the largest shared block.
"""
from __future__ import annotations

import numpy as np

from raygems.bandits import list_methods, register_method
from raygems.bandits.recommended import RecommendedSearch, plan_round


class StudyVariant(RecommendedSearch):
    def __init__(self, *args, first_round_share: float | None = None, first_round_keep: float | None = None,
                 cut_z: float | None = None, tie_slack: float = 0.0, late_budget: str = "per_round",
                 anchor_arm: int | None = None, **kwargs):
        self.first_round_share = first_round_share
        self.first_round_keep = first_round_keep
        self.cut_z = cut_z
        self.tie_slack = float(tie_slack)
        self.late_budget = late_budget
        self.anchor_arm = anchor_arm
        super().__init__(*args, **kwargs)

    def plan(self, survivors, budget_left, pool_left):
        if self.round == 0 and self.first_round_share is not None:
            t = np.full(self.reps, max(1, int(round(self.first_round_share * self.budget_per_model))))
            return np.minimum(t, np.minimum(pool_left, budget_left // np.maximum(survivors, 1)))
        return plan_round(survivors, budget_left, pool_left, self.eta, self.late_eta, self.late_survivors,
                          self.late_budget)

    def survivors_mask(self, keys):
        alive = np.isfinite(keys)
        survivors = alive.sum(axis=1)
        if self.round == 0 and self.first_round_keep is not None:
            keep = np.maximum(1, np.ceil(survivors * self.first_round_keep).astype(np.int64))
            order = np.argsort(-keys, axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.broadcast_to(np.arange(self.num_arms), order.shape), axis=1)
            kept = rank < keep[:, None]
        else:
            kept = super().survivors_mask(keys)
            keep = kept.sum(axis=1)
        if self.tie_slack > 0:
            order = np.argsort(-keys, axis=1, kind="stable")
            last = np.take_along_axis(order, (np.maximum(keep, 1) - 1)[:, None], axis=1)
            boundary = np.take_along_axis(self.successes, last, axis=1)
            tied = (self.successes == boundary) & alive & ~kept
            few = tied.sum(axis=1) <= self.tie_slack * keep
            kept |= tied & few[:, None]
        if self.cut_z is not None:
            n = np.maximum(self.queries_used, 1)[:, None].astype(float)
            p = self.successes / n
            leader = np.where(alive, self.successes, -1).max(axis=1, keepdims=True)
            p_lead = leader / n
            sd = np.sqrt(n * (p * (1 - p) + p_lead * (1 - p_lead)) + 1.0)
            kept &= (leader - self.successes) <= self.cut_z * sd
        if self.anchor_arm is not None:
            # protected while more than two models remain (the final round decides between it and the best)
            protect = alive[:, self.anchor_arm] & (survivors > 2)
            kept[protect, self.anchor_arm] = True
        return kept


def register() -> None:
    if "recommended-study" not in list_methods():
        register_method("recommended-study", StudyVariant, label="Recommended (study variant)",
                        accepts_query_groups=True)
