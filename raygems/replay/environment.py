"""Answering an algorithm's pulls from a recorded correctness matrix.

Two modes, identical in distribution:
* exact: every pull is resolved to its query ids (`Pulls.query_ids`) and looked up in the matrix. This is
  what the live search does, so an exact replay and a live search over a replay backend choose the same arm.
* fast (default for statistics): correlated pulls are exact (one shared permutation per repetition: cheap);
  independent pulls skip the per-arm permutations and draw each answer as sequential sampling without
  replacement from the arm's pool: P(correct) = (correct left) / (queries left), with a hashed uniform per
  (repetition, arm, position). Spec 11.1: the same distribution as reading a random permutation.
Both are deterministic per repetition, whatever the number of repetitions. The fast mode's reward draw is
defined once, in `answers.py`.

Fast mode also offers the replay engine a faster route than ask/tell: `advance` runs an index policy or TTTS
to a budget in one compiled call (`kernels.py`, `ttts_loop.py`) with the same choices and the same answers.
The algorithm only hands over its state (`kernel_state()`); it never sees the environment.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls
from raygems.bandits.index_policies import IndexPolicy
from raygems.bandits.ttts import TopTwoThompsonSampling
from raygems.compiled import HAVE_NUMBA
from raygems.replay.answers import answer_pulls
from raygems.replay.kernels import advance_index_policy
from raygems.replay.ttts_loop import advance_ttts


class Environment(ABC):
    """What answers an algorithm's pulls in a replay. The engine drives an algorithm through `evaluate` (ask/tell);
    an environment may also `advance` an algorithm itself by a faster route that makes the same choices.
    `evaluations` counts the (arm, query) answers it has given."""

    evaluations: int

    @abstractmethod
    def evaluate(self, pulls: Pulls) -> np.ndarray:
        """Number of correct answers per entry of `pulls`."""

    def advance(self, algo: BanditAlgorithm, budget: int) -> bool:
        """Advance `algo` towards `budget` evaluations per repetition without ask/tell; False (nothing done)
        when there is no faster route, as here."""
        return False


class MatrixEnvironment(Environment):
    """Answers from a correctness matrix (K models x Q queries) for the repetitions keyed by `seeds`."""

    def __init__(self, values: np.ndarray, seeds: np.ndarray, exact: bool = False):
        self.values = np.asarray(values, dtype=np.uint8)
        self.seeds = np.asarray(seeds, dtype=np.uint64)
        self.exact = exact
        self.num_arms, self.num_queries = self.values.shape
        self.correct_total = self.values.sum(axis=1).astype(np.int64)            # G[i]
        self.correct_seen = np.zeros((self.seeds.size, self.num_arms), dtype=np.int64)  # fast mode only
        self.evaluations = 0

    def evaluate(self, pulls: Pulls) -> np.ndarray:
        """Number of correct answers per entry of `pulls`."""
        self.evaluations += pulls.total
        if len(pulls) == 0:
            return np.zeros(0, dtype=np.int64)
        if pulls.shared:
            return self._shared(pulls)
        if self.exact:
            return self._exact_independent(pulls)
        return self._fast_independent(pulls)

    def _shared(self, pulls: Pulls) -> np.ndarray:
        out = np.empty(len(pulls), dtype=np.int64)
        for rep in np.unique(pulls.rep):
            rows = np.flatnonzero(pulls.rep == rep)
            start, count = int(pulls.start[rows[0]]), int(pulls.count[rows[0]])
            if np.any(pulls.start[rows] != start) or np.any(pulls.count[rows] != count):
                raise ValueError("correlated pulls of one repetition must share their query block")
            ids = pulls.order.ids(int(rep), -1, start, count, shared=True)
            out[rows] = self.values[np.ix_(pulls.arm[rows], ids)].sum(axis=1)
        return out

    def _exact_independent(self, pulls: Pulls) -> np.ndarray:
        out = np.empty(len(pulls), dtype=np.int64)
        for j in range(len(pulls)):
            out[j] = self.values[pulls.arm[j], pulls.query_ids(j)].sum()
        return out

    def _fast_independent(self, pulls: Pulls) -> np.ndarray:
        if np.any(pulls.start + pulls.count > self.num_queries):
            raise ValueError("a pull asks for more queries than the pool holds")
        return answer_pulls(self.seeds, pulls.rep, pulls.arm, pulls.start, pulls.count, self.correct_total,
                            self.correct_seen, self.num_queries)

    # ---------------------------------------------------------------------------------- compiled loops
    def advance(self, algo: BanditAlgorithm, budget: int) -> bool:
        """Advance `algo` to `budget` evaluations per repetition (or until it has nothing left to ask) in one
        compiled call, making exactly the choices of the ask/tell loop with this environment. False, having done
        nothing, where no loop applies: numba missing, exact mode, a pending request, other repetitions than this
        environment's, or an algorithm (or configuration) without a loop."""
        loop = _compiled_loop(algo)
        if loop is None or self.exact or algo.pending is not None or not self._serves(algo):
            return False
        budget = min(int(budget), algo.budget)
        if not algo.initialized:                # the first request (every arm once, if any) goes by ask/tell
            if algo.done:
                return True
            algo.tell(self.evaluate(algo.ask()))
        if int(algo.budget_used.min()) >= budget:
            return True
        state = algo.kernel_state()
        if state is None:
            return False
        before = int(algo.budget_used.sum())
        loop(state, budget, self.correct_total, self.correct_seen)
        self.evaluations += int(algo.budget_used.sum()) - before
        algo.after_compiled_steps()
        return True

    def _serves(self, algo: BanditAlgorithm) -> bool:
        """Whether `algo` runs the very repetitions this environment answers."""
        return self.correct_seen.shape == algo.pulls.shape and np.array_equal(self.seeds, algo.seeds)


def _compiled_loop(algo: BanditAlgorithm):
    """The compiled replay loop for `algo`'s kind of algorithm, or None."""
    if not HAVE_NUMBA:
        return None
    if isinstance(algo, IndexPolicy):
        return advance_index_policy
    if isinstance(algo, TopTwoThompsonSampling):
        return advance_ttts
    return None
