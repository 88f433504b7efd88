"""Answering an algorithm's pulls from a recorded correctness matrix.

Two modes, identical in distribution:
* exact: every pull is resolved to its query ids (`Pulls.query_ids`) and looked up in the matrix. This is
  what the live search does, so an exact replay and a live search over a replay backend choose the same arm.
* fast (default for statistics): correlated pulls are exact (one shared permutation per repetition: cheap);
  independent pulls skip the per-arm permutations and draw each answer as sequential sampling without
  replacement from the arm's pool: P(correct) = (correct left) / (queries left), with a hashed uniform per
  (repetition, arm, position). Spec 11.1: the same distribution as reading a random permutation.
Both are deterministic per repetition, whatever the number of repetitions. With numba installed, requests
of several answers per entry are drawn by a compiled loop (`kernels.fast_independent_answers`) that makes
the same draws with the same arithmetic as the numpy loop below, so the answers are identical.
"""
from __future__ import annotations

import numpy as np

from raygems.bandits import kernels
from raygems.bandits.base import Pulls
from raygems.bandits.randomness import STREAM_FAST_REWARD, uniform


class MatrixEnvironment:
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
        rep, arm, start, count = pulls.rep, pulls.arm, pulls.start, pulls.count
        if np.any(start + count > self.num_queries):
            raise ValueError("a pull asks for more queries than the pool holds")
        flat = rep * self.num_arms + arm
        seen_flat = self.correct_seen.ravel()
        seen = seen_flat[flat]
        keys = self.seeds[rep]
        if count.max() == 1:  # one answer per entry (index policies, TTTS): a single vectorised draw
            p = (self.correct_total[arm] - seen) / (self.num_queries - start)
            hit = (uniform(keys, STREAM_FAST_REWARD, arm, start, outer=False) < p).astype(np.int64)
            seen_flat[flat] = seen + hit
            return hit
        if kernels.HAVE_NUMBA:
            return kernels.fast_independent_answers(self.seeds, rep, arm, start, count, self.correct_total,
                                                    self.correct_seen, self.num_queries)
        successes = np.zeros(len(pulls), dtype=np.int64)
        for j in range(int(count.max())):
            active = count > j
            position = start + j
            left = np.maximum(self.num_queries - position, 1)
            p = (self.correct_total[arm] - seen) / left
            u = uniform(keys, STREAM_FAST_REWARD, arm, position, outer=False)
            hit = (u < p) & active
            successes += hit
            seen += hit
        seen_flat[flat] = seen
        return successes
