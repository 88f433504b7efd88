"""The ask/tell interface shared by every algorithm, and the state they all carry.

An algorithm is a pure state machine: no I/O, no clocks, all randomness from its repetition keys.

    algo = make_algorithm("ours", num_arms=K, num_queries=Q, budget_per_model=N, seeds=keys)
    while not algo.done:
        pulls = algo.ask()                   # which arms answer which query ids next, per repetition
        successes = evaluate(pulls)          # a replay: lookups in a correctness matrix; live: model actors
        algo.tell(successes)
    chosen = algo.recommend()                # one arm per repetition

Every array of the state has a leading repetition axis R: a replay advances R = 100 repetitions in
lockstep, and the live search drives the very same object with R = 1.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from raygems.bandits.randomness import STREAM_TIEBREAK, QueryOrder, uniform


class AllArmsFailed(RuntimeError):
    """Every arm of a repetition failed (`BanditAlgorithm.tell(..., failed=...)`): nothing is left to recommend."""


@dataclass(frozen=True)
class Pulls:
    """One request of an algorithm: entry j asks arm `arm[j]` of repetition `rep[j]` to answer `count[j]`
    new queries, taken from position `start[j]` of the query order.

    Under correlated sampling (`shared=True`) all entries of one repetition share the same positions of the
    repetition's shared permutation, so survivors of a round receive identical query ids.
    """

    rep: np.ndarray
    arm: np.ndarray
    start: np.ndarray
    count: np.ndarray
    shared: bool
    order: QueryOrder

    def __len__(self) -> int:
        return int(self.rep.shape[0])

    @property
    def total(self) -> int:
        """Number of (arm, query) evaluations requested."""
        return int(self.count.sum())

    def query_ids(self, j: int) -> np.ndarray:
        """The query ids (column indices of the pool) that entry j asks for."""
        return self.order.ids(int(self.rep[j]), int(self.arm[j]), int(self.start[j]), int(self.count[j]),
                              self.shared)

    def by_arm(self, rep: int = 0) -> dict[int, np.ndarray]:
        """{arm: query ids} for one repetition (what the live search broadcasts)."""
        return {int(self.arm[j]): self.query_ids(j) for j in np.flatnonzero(self.rep == rep)}


def make_pulls(rep, arm, start, count, shared: bool, order: QueryOrder) -> Pulls:
    """Build a Pulls, dropping entries that ask for nothing."""
    rep, arm, start, count = (np.asarray(x, dtype=np.int64).ravel() for x in (rep, arm, start, count))
    keep = count > 0
    return Pulls(rep[keep], arm[keep], start[keep], count[keep], shared, order)


class BanditAlgorithm(ABC):
    """State and bookkeeping common to all algorithms.

    Parameters
    ----------
    num_arms: K, the number of candidate models.
    num_queries: Q, the size of the query pool (each arm can answer each query once).
    budget_per_model: N; the total budget is B = N * K evaluations per repetition.
    seeds: one uint64 key per repetition (`randomness.repetition_keys(seed, R)`).
    """

    #: True when the survivors of a round answer the same queries (one shared query order per repetition);
    #: an option of the elimination methods may change it per instance. What else a method is (its name,
    #: whether it is anytime, what it accepts) is its `MethodSpec` (registry.py).
    correlated: ClassVar[bool] = False

    def __init__(self, num_arms: int, num_queries: int, budget_per_model: int, seeds: np.ndarray):
        if num_arms < 2:
            raise ValueError(f"need at least 2 models (arms), got {num_arms}")
        if num_queries < 1:
            raise ValueError(f"need at least 1 query, got {num_queries}")
        if budget_per_model < 1:
            raise ValueError(f"budget per model N must be at least 1, got {budget_per_model}")
        if budget_per_model > num_queries:
            raise ValueError(
                f"budget per model N={budget_per_model} exceeds the pool of {num_queries} queries per model: "
                f"the pool cannot serve it")
        self.seeds = np.asarray(seeds, dtype=np.uint64).ravel()
        if self.seeds.size < 1:
            raise ValueError("need at least one repetition seed")
        self.num_arms = int(num_arms)
        self.num_queries = int(num_queries)
        self.budget_per_model = int(budget_per_model)
        self.budget = self.budget_per_model * self.num_arms
        reps = self.seeds.size
        self.order = QueryOrder(self.seeds, self.num_queries)
        self.pulls = np.zeros((reps, self.num_arms), dtype=np.int64)       # n[r, i]
        self.successes = np.zeros((reps, self.num_arms), dtype=np.int64)   # S[r, i]
        self.failed = np.zeros((reps, self.num_arms), dtype=bool)          # arms that could not be evaluated
        self.budget_used = np.zeros(reps, dtype=np.int64)
        self.decisions = 0  # counter for tie-break jitter: one fresh draw per decision
        self._pending: Pulls | None = None
        self._any_failed = False       # Python-level flags keep per-step checks cheap
        self._budget_low = 0           # min over repetitions of budget_used
        self._budget_high = 0          # max over repetitions of budget_used

    # ----------------------------------------------------------------------------------------- protocol
    @property
    def reps(self) -> int:
        return int(self.seeds.size)

    @property
    def pending(self) -> Pulls | None:
        """The request asked for and not yet told, if any."""
        return self._pending

    @property
    @abstractmethod
    def done(self) -> bool:
        """True when no more pulls will be asked for."""

    @abstractmethod
    def ask(self) -> Pulls | None:
        """The next request, or None when done. Asking twice without telling returns the same request."""

    @abstractmethod
    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        """Advance the algorithm after `pulls` were answered."""

    @abstractmethod
    def recommend(self) -> np.ndarray:
        """The chosen arm per repetition (int array of shape (R,))."""

    def tell(self, successes: np.ndarray, failed: np.ndarray | None = None) -> None:
        """Report the answers to the last `ask()`.

        successes: per entry of the pulls, the number of correct answers among its `count` queries.
        failed: optional (R, K) bool mask (or a list of arm indices when R == 1) of arms that could not be
            evaluated (download, load or generation failed). They are eliminated and never recommended; their
            entries in `successes` are ignored and their pulls are not charged to the budget.
        """
        pulls = self._pending
        if pulls is None:
            raise RuntimeError("tell() without a pending ask()")
        successes = np.asarray(successes, dtype=np.int64).ravel()
        count = pulls.count
        if successes.shape != count.shape:
            raise ValueError(f"expected {len(pulls)} success counts (one per pull entry), got {successes.shape[0]}")
        if np.any((successes < 0) | (successes > count)):
            raise ValueError("success counts must lie between 0 and the entry's count")
        # "rep strictly increasing" is np.array_equal(rep, np.unique(rep)) without the sort
        one_per_rep = len(pulls) <= self.reps and _strictly_increasing(pulls.rep)
        if not one_per_rep:
            self._check_unique(pulls)
        if failed is not None:
            self.mark_failed(failed)
        answered = successes
        rep, flat = pulls.rep, pulls.rep * self.num_arms + pulls.arm
        if self._any_failed:
            ok = ~self.failed.ravel()[flat]
            rep, flat, count, successes = rep[ok], flat[ok], count[ok], successes[ok]
        # (rep, arm) pairs are unique within one request, so fancy-index += on the flat views is exact
        self.pulls.ravel()[flat] += count
        self.successes.ravel()[flat] += successes
        if one_per_rep:
            self.budget_used[rep] += count
        else:
            self.budget_used += np.bincount(rep, weights=count, minlength=self.reps).astype(np.int64)
        self._budget_low, self._budget_high = int(self.budget_used.min()), int(self.budget_used.max())
        self._pending = None
        self._update(pulls, answered)

    def after_compiled_steps(self) -> None:
        """Resynchronise what `tell()` keeps up to date after a compiled replay loop advanced the state arrays
        in place (raygems.replay; algorithms with such a loop hand it their state and extend this)."""
        self._budget_low, self._budget_high = int(self.budget_used.min()), int(self.budget_used.max())

    def _check_unique(self, pulls: Pulls) -> None:
        flat = pulls.rep * self.num_arms + pulls.arm
        if _strictly_increasing(flat):  # the usual layout (np.nonzero order): unique without sorting
            return
        if np.unique(flat).size != flat.size:
            raise ValueError("a request names the same (repetition, arm) twice")

    def mark_failed(self, failed) -> None:
        """Arms that cannot be evaluated: an (R, K) boolean mask, or (with one repetition) a (K,) mask or a list
        of arm indices."""
        failed = np.asarray(failed)
        if failed.dtype == bool and failed.shape == self.failed.shape:
            self.failed |= failed
        elif failed.dtype == bool and self.reps == 1 and failed.shape == (self.num_arms,):
            self.failed[0] |= failed
        else:  # arm indices, for R == 1
            if self.reps != 1:
                raise ValueError("failed arm indices are only accepted with one repetition; pass an (R, K) mask")
            if failed.size and (not np.issubdtype(failed.dtype, np.integer) or failed.min() < 0
                                or failed.max() >= self.num_arms):
                raise ValueError(f"failed arms must be indices in [0, {self.num_arms}) or a boolean mask, got {failed}")
            self.failed[0, failed.astype(np.int64)] = True
        self._any_failed = bool(self.failed.any())
        if self.failed.all(axis=1).any():
            raise AllArmsFailed("every arm failed: nothing left to recommend")

    # ------------------------------------------------------------------------------------------ helpers
    def _issue(self, pulls: Pulls | None) -> Pulls | None:
        self._pending = pulls
        return pulls

    def _pull_every_arm_once(self) -> Pulls:
        """The initial request of the index policies and of TTTS with `init_each_arm`: one query per working arm."""
        rep, arm = np.nonzero(~self.failed)
        return self._issue(make_pulls(rep, arm, np.zeros_like(rep), np.ones_like(rep), False, self.order))

    @property
    def means(self) -> np.ndarray:
        """Empirical accuracy per (repetition, arm); 0 for arms never pulled."""
        return self.successes / np.maximum(self.pulls, 1)

    def eliminated(self) -> np.ndarray:
        """(R, K) mask of the arms this algorithm will not ask for again (the live search frees their files
        first); none for methods that never eliminate."""
        return np.zeros((self.reps, self.num_arms), dtype=bool)

    def jitter(self) -> np.ndarray:
        """Fresh uniform jitter per (repetition, arm) for one decision (ties broken uniformly at random)."""
        self.decisions += 1
        return uniform(self.seeds, STREAM_TIEBREAK, self.decisions, np.arange(self.num_arms))

    def state_dict(self) -> dict[str, Any]:
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()
                 if not k.startswith("_") and k != "order"}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v.copy() if isinstance(v, np.ndarray) else v)
        self._pending = None
        self._any_failed = bool(self.failed.any())
        self._budget_low, self._budget_high = int(self.budget_used.min()), int(self.budget_used.max())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(K={self.num_arms}, Q={self.num_queries}, N={self.budget_per_model}, "
                f"R={self.reps})")


def _strictly_increasing(values: np.ndarray) -> bool:
    return values.size < 2 or bool(np.all(values[1:] > values[:-1]))


def top_m(keys: np.ndarray, m: int) -> np.ndarray:
    """Boolean (R, K) mask of the m largest entries per row (keys must already include tie-break jitter)."""
    reps, k = keys.shape
    mask = np.zeros((reps, k), dtype=bool)
    if m >= k:
        mask[:] = True
        return mask
    idx = np.argpartition(-keys, m - 1, axis=1)[:, :m]
    np.put_along_axis(mask, idx, True, axis=1)
    return mask

