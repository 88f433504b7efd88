"""The recommended search method (`recommended`): correlated Sequential Halving that spends the whole budget,
halving while many models remain and eliminating gently among the last few.

Why this method (numbers in docs/statistics.md): on every population family raygems models (the paper's
summary statistics, a dense near-best band, semi-real leaderboard trees, the real RouterBench matrix),
correlated sampling with Karnin's halving beats the paper's aggressive schedule, and three changes to it
each measurably help:

1. **The whole budget, re-planned every round.** Before each round the remaining budget is split equally
   over the remaining rounds (Karnin's rule on what is left), so the floors' remainders carry forward
   instead of being lost (SH spends 87-97% of B), and the plan knows the query pool: when the last rounds
   would need more queries than the pool has left (N = 100 on a 2,500-query pool), the surplus goes to
   the earlier rounds instead of being lost.
2. **Halve early, eliminate gently late.** While more than `late_survivors` (32) models remain, half are
   eliminated per round (`eta` = 2): most models of a tree are far below the best and a few shared
   queries expose them, and every round costs a live search one load of every survivor. Among the last
   32 (the near-best band of a real tree), each round keeps 1/`late_eta` = 77% of the survivors, so
   near-ties are not decided by a coin flip of a few queries.
3. **Correlated sampling**: every survivor of a round answers the same new queries, and survivors are
   ranked by their cumulative count over the identical query set (a paired comparison).

Options tested and not kept as defaults (docs/statistics.md, "Design decisions"): task-stratified query
blocks (`stratify=True`, opt-in: no measurable gain), a larger or smaller elimination ratio throughout,
confidence-bound cuts, keeping arms tied at the cut-off, an aggressive first round, and the popular base
kept as an anchor until the final round.

Works through ask/tell with any number of repetitions R (the live search uses R = 1); all randomness comes
from the repetition keys (query order: `randomness.QueryOrder`; ties: jitter keyed by the repetition and the
round), so repetition r is the same alone or among 100. Never exceeds the budget and never asks an (arm, query) pair
twice; survivors of a round receive identical query ids.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls, make_pulls
from raygems.bandits.randomness import STREAM_SHARED_ORDER, STREAM_TIEBREAK, QueryOrder, uniform


class StratifiedQueryOrder(QueryOrder):
    """A shared query order whose every prefix holds each group (task) in proportion to its size.

    Within a group the queries come in random order; the groups are interleaved systematically: the i-th
    query of group g (of size n_g) sits at key (i + v_g) / n_g with a random offset v_g per group, and the
    order is the sort by key. A block of t consecutive positions therefore holds t * n_g / Q queries of
    group g, give or take one, instead of a hypergeometric number. Fixed by the repetition key.
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
            # reserved negative counters of the same stream: one offset per group
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


def next_survivors(survivors, eta: float = 2.0, late_eta: float | None = None, late_survivors: int = 0) -> np.ndarray:
    """Survivors after a round of `survivors`: ceil(S / eta), or ceil(S / late_eta) once S <= late_survivors;
    always at least one fewer than S (so the search ends) and at least one."""
    survivors = np.asarray(survivors, dtype=np.int64)
    ratio = np.where(survivors <= late_survivors, late_eta if late_eta is not None else eta, eta)
    return np.maximum(1, np.minimum(survivors - 1, np.ceil(survivors / ratio).astype(np.int64)))


LATE_BUDGETS = ("halving", "per_round")


def plan_round(survivors, budget_left, pool_left, eta: float = 2.0, late_eta: float | None = None,
               late_survivors: int = 0, late_budget: str = "per_round") -> np.ndarray:
    """New queries per survivor for this round, per repetition (vectorised over repetitions).

    The remaining rounds have S_0 = survivors, S_{j+1} = next_survivors(S_j) survivors; a per-round budget
    beta gives t_j = floor(beta * w_j / S_j) new queries per survivor, where w_j = 1 for halving rounds and,
    with late_budget="halving", w_j = H / L for the L rounds of the gentle late stage, H being the number of
    halving rounds the stage replaces (a variant measured worse, kept for the design study; the default
    "per_round" gives every round w_j = 1), capped so that the cumulative t never
    exceeds the pool left; beta is the largest value whose plan spends at most the budget left (bisection).
    Without a pool cap this is Karnin's t = floor(B_left / (S * rounds_left)) (with carry-over); with one,
    budget the last rounds cannot use moves to the earlier rounds. A plan too thin to give this round a
    query (more rounds than the budget covers) still asks one per survivor while the budget allows, and the
    later rounds shrink (spec 6). Returns 0 for repetitions with fewer than 2 survivors.
    """
    survivors = np.asarray(survivors, dtype=np.int64)
    budget_left = np.asarray(budget_left, dtype=np.int64)
    pool_left = np.asarray(pool_left, dtype=np.int64)
    sizes = [np.maximum(survivors, 1)]
    while np.any(sizes[-1] > 1):
        sizes.append(next_survivors(sizes[-1], eta, late_eta, late_survivors))
    sizes = np.stack(sizes)                              # (rounds, R): survivors of each remaining round
    in_play = sizes >= 2
    weight = np.ones(sizes.shape)
    if late_budget not in LATE_BUDGETS:
        raise ValueError(f"late_budget must be one of {LATE_BUDGETS}, got {late_budget!r}")
    if late_eta is not None and late_budget == "halving":
        # the gentle late stage spends what the halving rounds it replaces would have spent: its first size
        # S_L would take ceil(log_eta S_L) halving rounds; its L rounds share that many rounds' budget
        late = in_play & (sizes <= late_survivors)
        rounds = late.sum(axis=0)
        first_late = np.where(late, sizes, 0).max(axis=0)
        halvings = np.ceil(np.log(np.maximum(first_late, 2)) / np.log(eta) - 1e-9)
        weight = np.where(late, (halvings / np.maximum(rounds, 1))[None, :], 1.0)

    def spend(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = np.zeros(survivors.shape)
        used = np.zeros(survivors.shape)
        first = np.zeros(survivors.shape)
        for j in range(sizes.shape[0]):
            t = np.where(in_play[j], np.minimum(np.floor(beta * weight[j] / sizes[j]), pool_left - used), 0.0)
            t = np.maximum(t, 0.0)
            if j == 0:
                first = t
            used += t
            total += t * sizes[j]
        return total, first

    lo = np.zeros(survivors.shape)
    hi = budget_left.astype(np.float64) + 1.0
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        fits = spend(mid)[0] <= budget_left
        lo = np.where(fits, mid, lo)
        hi = np.where(fits, hi, mid)
    first = spend(lo)[1]
    first = np.where((first < 1) & (pool_left >= 1), 1, first)
    first = np.minimum(first, budget_left // np.maximum(survivors, 1))
    return np.where(survivors >= 2, first, 0).astype(np.int64)


class RecommendedSearch(BanditAlgorithm):
    """Correlated Sequential Halving, re-planned every round (see the module docstring).

    Options
    -------
    eta: elimination ratio while more than `late_survivors` models remain (2: keep half).
    late_eta: elimination ratio among the last `late_survivors` (1.3: keep 77%); None = `eta` throughout.
    late_survivors: where the gentle late stage begins (32). Every remaining round gets an equal share of
        the remaining budget, so the late stage's extra rounds draw budget towards the end (measured better
        than giving it only the budget of the halving rounds it replaces: docs/statistics.md).
    stratify: draw each round's shared queries in proportion to the query groups (tasks); needs
        `query_groups` (the replay engine passes the matrix's task labels). Off by default.
    query_groups: one label per query (e.g. its task), used when `stratify` is on.
    """

    correlated: ClassVar[bool] = True

    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, eta: float = 2.0,
                 late_eta: float | None = 1.3, late_survivors: int = 32, stratify: bool = False,
                 query_groups=None):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        if eta <= 1:
            raise ValueError(f"eta (the elimination ratio) must exceed 1, got {eta}")
        if late_eta is not None and late_eta <= 1:
            raise ValueError(f"late_eta must exceed 1, got {late_eta}")
        if late_survivors < 0:
            raise ValueError(f"late_survivors must be >= 0, got {late_survivors}")
        if stratify and query_groups is None:
            raise ValueError("stratify=True needs query_groups (one label per query, e.g. its task)")
        self.eta = float(eta)
        self.late_eta = None if late_eta is None else float(late_eta)
        self.late_survivors = int(late_survivors)
        self.stratified = bool(stratify)
        if self.stratified:
            self.order = StratifiedQueryOrder(self.seeds, self.num_queries, query_groups)
        self.round = 0
        self.alive = np.ones((self.reps, self.num_arms), dtype=bool)
        self.queries_used = np.zeros(self.reps, dtype=np.int64)     # shared positions consumed, per repetition
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
        update = asked & ~self.finished
        kept = self.survivors_mask(self._keys(0))
        self.alive[update] &= kept[update]
        self.round += 1
        self._prepare_round()

    def eliminated(self) -> np.ndarray:
        return ~self.alive

    def recommend(self) -> np.ndarray:
        if not self.done:
            raise RuntimeError(f"{type(self).__name__}: recommend() before the search finished")
        keys = self._keys(1)
        orphaned = ~np.isfinite(keys).any(axis=1)
        if orphaned.any():   # every survivor failed: the best arm that did not fail
            keys[orphaned] = np.where(self.failed[orphaned], -np.inf, self.means[orphaned])
        return np.argmax(keys, axis=1)

    # ---------------------------------------------------------------------------------------- rounds
    def _keys(self, purpose: int = 0) -> np.ndarray:
        """Cumulative count (every survivor has seen the same queries) + tie-break jitter; -inf if out.

        The jitter is keyed by (round, purpose), not by a running count of decisions: repetitions finish at
        different rounds, and repetition r must draw the same numbers alone as among many.
        """
        jitter = uniform(self.seeds, STREAM_TIEBREAK, 2 * self.round + purpose, np.arange(self.num_arms))
        keys = self.successes + 0.5 * jitter
        keys[~(self.alive & ~self.failed)] = -np.inf
        return keys

    def plan(self, survivors: np.ndarray, budget_left: np.ndarray, pool_left: np.ndarray) -> np.ndarray:
        """New queries per survivor for the coming round, per repetition."""
        return plan_round(survivors, budget_left, pool_left, self.eta, self.late_eta, self.late_survivors)

    def survivors_mask(self, keys: np.ndarray) -> np.ndarray:
        """(R, K) mask of the arms that go on after a round, given their ranking keys."""
        survivors = np.isfinite(keys).sum(axis=1)
        keep = next_survivors(survivors, self.eta, self.late_eta, self.late_survivors)
        order = np.argsort(-keys, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(self.num_arms), order.shape), axis=1)
        return rank < keep[:, None]

    def _prepare_round(self) -> None:
        """Queries per survivor for the next round; repetitions that cannot go on are finished here."""
        survivors = (self.alive & ~self.failed).sum(axis=1)
        t = self.plan(survivors, self.budget - self.budget_used, self.num_queries - self.queries_used)
        stop = ~self.finished & ((survivors <= 1) | (t <= 0))
        if stop.any():
            best = np.argmax(self._keys(1), axis=1)
            for r in np.flatnonzero(stop):
                if (self.alive[r] & ~self.failed[r]).any():
                    self.alive[r] = False
                    self.alive[r, best[r]] = True
            self.finished |= stop
        self.round_queries = np.where(self.finished, 0, t)
