"""The recommended search method (`recommended`): correlated Sequential Halving that spends the whole budget.

(Experimental knobs are being evaluated; see docs/statistics.md.)
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls, make_pulls
from raygems.bandits.randomness import STREAM_SHARED_ORDER, QueryOrder, uniform


class StratifiedQueryOrder(QueryOrder):
    """A shared query order whose every prefix holds each group (task) in proportion to its size.

    Within a group the queries come in random order; the groups are interleaved systematically: the i-th
    query of group g (of size n_g) sits at key (i + v_g) / n_g with a random offset v_g per group, and the
    order is the sort by key. A block of t consecutive positions therefore holds t * n_g / Q queries of
    group g, give or take one, instead of a hypergeometric number: comparisons between models with different
    task profiles lose the variance of the task mix. Fixed by the repetition key, like `QueryOrder`.
    """

    def __init__(self, keys: np.ndarray, num_queries: int, groups):
        super().__init__(keys, num_queries)
        groups = np.asarray(groups)
        if groups.shape != (self.num_queries,):
            raise ValueError(f"query_groups must have one label per query ({self.num_queries}), got shape "
                             f"{groups.shape}")
        _, self.group_codes = np.unique(groups, return_inverse=True)
        self.group_sizes = np.bincount(self.group_codes)

    def shared_permutation(self, rep: int) -> np.ndarray:
        perm = self._shared.get(rep)
        if perm is None:
            u = uniform(self.keys[rep], STREAM_SHARED_ORDER, np.arange(self.num_queries))
            # reserved negative counters: one offset per group
            offsets = uniform(self.keys[rep], STREAM_SHARED_ORDER, -1 - np.arange(self.group_sizes.size))
            position = np.empty(self.num_queries)
            for g, size in enumerate(self.group_sizes):
                members = np.flatnonzero(self.group_codes == g)
                rank = np.empty(size)
                rank[np.argsort(u[members], kind="stable")] = np.arange(size)
                position[members] = (rank + offsets[g]) / size
            perm = np.argsort(position, kind="stable").astype(np.int64)
            self._shared[rep] = perm
        return perm


def next_survivors(survivors: np.ndarray, eta: float = 2.0, late_eta: float | None = None,
                   late_survivors: int = 0) -> np.ndarray:
    """Survivors after a round of `survivors`: ceil(S / eta), with `late_eta` once S <= `late_survivors`;
    always at least one fewer (so the search ends) and at least one."""
    survivors = np.asarray(survivors, dtype=np.int64)
    ratio = np.where(survivors <= late_survivors, late_eta if late_eta is not None else eta, eta)
    return np.maximum(1, np.minimum(survivors - 1, np.ceil(survivors / ratio).astype(np.int64)))


def plan_round(survivors: np.ndarray, budget_left: np.ndarray, pool_left: np.ndarray, eta: float = 2.0,
               late_eta: float | None = None, late_survivors: int = 0) -> np.ndarray:
    """Queries per survivor for this round, per repetition: halving with equal budget per remaining round,
    re-planned every round (floor remainders carry forward), and aware of the pool: when the last rounds
    would need more queries than the pool has left, the surplus goes to the earlier rounds instead of
    being lost.

    For each repetition: the remaining rounds have S_0 = survivors, S_{j+1} = ceil(S_j / eta) survivors;
    a per-round budget beta gives t_j = floor(beta / S_j) new queries per survivor, capped so the
    cumulative t never exceeds the pool left; beta is the largest value whose plan spends at most the
    budget left (bisection). Returns t_0 (0 when nothing can be spent).
    """
    survivors = np.asarray(survivors, dtype=np.int64)
    budget_left = np.asarray(budget_left, dtype=np.int64)
    pool_left = np.asarray(pool_left, dtype=np.int64)
    active = survivors >= 2
    plan = [np.maximum(survivors, 1)]
    while np.any(plan[-1] > 1):
        plan.append(next_survivors(plan[-1], eta, late_eta, late_survivors))
    sizes = np.stack(plan)                          # (J, R): survivors of each remaining round
    in_play = sizes >= 2                            # rounds that still compare >= 2 models

    def spend(beta):
        total = np.zeros(survivors.shape, dtype=np.float64)
        used = np.zeros(survivors.shape, dtype=np.float64)
        first = None
        for j in range(sizes.shape[0]):
            t = np.floor(beta / sizes[j])
            t = np.where(in_play[j], np.minimum(t, pool_left - used), 0.0)
            t = np.maximum(t, 0.0)
            if first is None:
                first = t
            used += t
            total += t * sizes[j]
        return total, first

    lo = np.zeros(survivors.shape)
    hi = budget_left.astype(np.float64) + 1.0
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        total, _ = spend(mid)
        ok = total <= budget_left
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    _, first = spend(lo)
    # a plan too thin to give this round a query (more rounds than the budget covers) still asks one query
    # per survivor while the budget allows; the later rounds then shrink (spec 6: t_r = 0 -> 1)
    first = np.where((first < 1) & (pool_left >= 1), 1, first)
    first = np.minimum(first, budget_left // np.maximum(survivors, 1))
    return np.where(active, first, 0).astype(np.int64)


class RecommendedSearch(BanditAlgorithm):
    """Correlated Sequential Halving, re-planned every round (see the module docstring)."""

    name: ClassVar[str] = "recommended"
    correlated: ClassVar[bool] = True
    #: the replay engine passes `query_groups=matrix.tasks` to methods that say so
    uses_query_groups: ClassVar[bool] = True

    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, query_groups=None, stratify: bool = True,
                 eta: float = 2.0, late_eta: float | None = None, late_survivors: int = 0,
                 first_round_share: float | None = None, first_round_keep: float | None = None,
                 cut_z: float | None = None, tie_slack: float = 0.0):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        if eta <= 1:
            raise ValueError(f"eta (the elimination ratio) must exceed 1, got {eta}")
        if first_round_share is not None and not 0 < first_round_share < 1:
            raise ValueError(f"first_round_share must lie in (0, 1), got {first_round_share}")
        if first_round_keep is not None and not 0 < first_round_keep < 1:
            raise ValueError(f"first_round_keep must lie in (0, 1), got {first_round_keep}")
        if cut_z is not None and cut_z <= 0:
            raise ValueError(f"cut_z must be positive, got {cut_z}")
        self.eta = float(eta)
        if late_eta is not None and late_eta <= 1:
            raise ValueError(f"late_eta must exceed 1, got {late_eta}")
        self.late_eta = late_eta
        self.late_survivors = int(late_survivors)
        self.first_round_share = first_round_share
        self.first_round_keep = first_round_keep
        self.cut_z = cut_z
        if tie_slack < 0:
            raise ValueError(f"tie_slack must be >= 0, got {tie_slack}")
        self.tie_slack = float(tie_slack)
        self.stratified = bool(stratify and query_groups is not None)
        if self.stratified:
            self.order = StratifiedQueryOrder(self.seeds, self.num_queries, query_groups)
        self.round = 0
        self.alive = np.ones((self.reps, self.num_arms), dtype=bool)
        self.queries_used = np.zeros(self.reps, dtype=np.int64)      # shared positions consumed, per repetition
        self.finished = np.zeros(self.reps, dtype=bool)
        self.round_queries = np.zeros(self.reps, dtype=np.int64)
        self._prepare_round()

    # --------------------------------------------------------------------------------------- protocol
    @property
    def done(self) -> bool:
        return bool(self.finished.all())

    def ask(self) -> Pulls | None:
        if self._pending is not None:
            return self._pending
        if self.done:
            return None
        live = self.alive & ~self.failed & (self.round_queries > 0)[:, None] & ~self.finished[:, None]
        rep, arm = np.nonzero(live)
        return self._issue(make_pulls(rep, arm, self.queries_used[rep], self.round_queries[rep], True, self.order))

    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        asked = np.zeros(self.reps, dtype=bool)
        asked[pulls.rep] = True
        self.queries_used += np.where(asked, self.round_queries, 0)
        self.alive &= ~self.failed
        self._eliminate(asked)
        self.round += 1
        self._prepare_round()

    def recommend(self) -> np.ndarray:
        if not self.done:
            raise RuntimeError(f"{self.name}: recommend() before the search finished")
        keys = self._keys()
        orphaned = ~np.isfinite(keys).any(axis=1)
        if orphaned.any():   # every survivor failed: the best arm that did not fail
            keys[orphaned] = np.where(self.failed[orphaned], -np.inf, self.means[orphaned])
        return np.argmax(keys, axis=1)

    # ---------------------------------------------------------------------------------------- rounds
    def _keys(self) -> np.ndarray:
        keys = self.successes + 0.5 * self.jitter()
        keys[~(self.alive & ~self.failed)] = -np.inf
        return keys

    def _prepare_round(self) -> None:
        """Queries per survivor for the next round; repetitions that cannot go on are finished here."""
        survivors = (self.alive & ~self.failed).sum(axis=1)
        budget_left = self.budget - self.budget_used
        pool_left = self.num_queries - self.queries_used
        if self.round == 0 and self.first_round_share is not None:
            t = np.full(self.reps, max(1, int(round(self.first_round_share * self.budget_per_model))))
            t = np.minimum(t, np.minimum(pool_left, budget_left // np.maximum(survivors, 1)))
        else:
            t = plan_round(survivors, budget_left, pool_left, self.eta, self.late_eta, self.late_survivors)
        stop = ~self.finished & ((survivors <= 1) | (t <= 0))
        if stop.any():
            self._finish(stop)
        self.round_queries = np.where(self.finished, 0, t)

    def _finish(self, reps: np.ndarray) -> None:
        keys = self._keys()
        best = np.argmax(keys, axis=1)
        for r in np.flatnonzero(reps):
            if np.isfinite(keys[r, best[r]]):
                self.alive[r] = False
                self.alive[r, best[r]] = True
        self.finished |= reps

    def _eliminate(self, asked: np.ndarray) -> None:
        keys = self._keys()
        survivors = (self.alive & ~self.failed).sum(axis=1)
        if self.round == 0 and self.first_round_keep is not None:
            keep = np.ceil(survivors * self.first_round_keep).astype(np.int64)
        else:
            keep = next_survivors(survivors, self.eta, self.late_eta, self.late_survivors)
        keep = np.maximum(keep, 1)
        order = np.argsort(-keys, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(self.num_arms)[None, :].repeat(self.reps, axis=0), axis=1)
        kept = rank < keep[:, None]
        if self.tie_slack > 0:   # arms tied on count with the last kept arm stay too, when they are few
            last = np.take_along_axis(order, (keep - 1)[:, None], axis=1)
            boundary = np.take_along_axis(self.successes, last, axis=1)
            tied = (self.successes == boundary) & self.alive & ~self.failed & ~kept
            few = tied.sum(axis=1) <= self.tie_slack * keep
            kept |= tied & few[:, None]
        if self.cut_z is not None:
            n = np.maximum(self.queries_used, 1)[:, None].astype(float)
            p = self.successes / n
            leader = np.where(self.alive, self.successes, -1).max(axis=1, keepdims=True)
            p_lead = leader / n
            sd = np.sqrt(n * (p * (1 - p) + p_lead * (1 - p_lead)) + 1.0)
            kept &= (leader - self.successes) <= self.cut_z * sd
        update = asked & ~self.finished
        self.alive[update] &= kept[update]
