"""What the driver knows of each arm's answers, in memory: which (query, prompt variant) pairs are recorded, their
rewards, and each arm's running total with the better prompt variant per task.

The result store is the record; this book is the driver's index of it, filled once from the store when a search
starts (`ResultStore.rewards`) and then from what the model actors return with each batch (the actor has written the
same rows to the store before returning). Every lookup the driver makes per round is a dictionary lookup, so a
round costs O(queries asked) whatever the size of the store or the tree.

Accuracy is `raygems.results`'s: each task's better prompt variant counts (the book records both variants of every
query, so the better variant is the one with more correct answers).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from raygems.results import PROMPT_VARIANTS, VARIANT_ORDER, best_variant_counts

_UNKNOWN = -1
_ORDER = list(VARIANT_ORDER)


class RewardBook:
    """Known rewards of `num_arms` arms on a pool of queries (`query_ids`, each of task `tasks[j]`)."""

    def __init__(self, query_ids: Sequence[str], tasks: Sequence[str], num_arms: int):
        self.query_index = {str(q): j for j, q in enumerate(query_ids)}
        task_names = list(dict.fromkeys(str(t) for t in tasks))
        self.task_of = np.asarray([task_names.index(str(t)) for t in tasks], dtype=np.int64)
        self.num_tasks = len(task_names)
        # arm -> {query index: [reward of variant 0, reward of variant 1]} (-1: not recorded)
        self._known: list[dict[int, list[int]]] = [{} for _ in range(num_arms)]
        # queries already counted in an arm's total (told to the algorithm), the per-(task, variant) sums of their
        # rewards and the per-task number of them
        self._counted: list[set[int]] = [set() for _ in range(num_arms)]
        self._sums = np.zeros((num_arms, self.num_tasks, len(PROMPT_VARIANTS)), dtype=np.int64)
        self._answered = np.zeros((num_arms, self.num_tasks), dtype=np.int64)
        self._totals = np.zeros(num_arms, dtype=np.int64)     # best_variant_total of each arm, as last counted

    # ------------------------------------------------------------------------------------------- recording
    def record(self, arm: int, query: int, variant: int, reward: int) -> None:
        """One recorded answer; the first record of a (query, variant) wins (as in the store)."""
        pair = self._known[arm].setdefault(query, [_UNKNOWN, _UNKNOWN])
        if pair[variant] == _UNKNOWN:
            pair[variant] = int(reward)

    def record_pairs(self, arm: int, queries: Iterable[int], pairs: Iterable[Sequence[int]]) -> None:
        """Answers of one batch: for each query, its rewards in PROMPT_VARIANTS order."""
        for query, pair in zip(queries, pairs):
            for variant, reward in enumerate(pair):
                self.record(arm, int(query), variant, int(reward))

    # --------------------------------------------------------------------------------------------- queries
    def missing(self, arm: int, queries: Iterable[int]) -> list[int]:
        """The queries of `queries` whose answers (both variants) `arm` has not recorded, in order."""
        known = self._known[arm]
        out = []
        for query in queries:
            pair = known.get(query)
            if pair is None or _UNKNOWN in pair:
                out.append(int(query))
        return out

    def count(self, arm: int, queries: Iterable[int]) -> int:
        """Add `queries` (all recorded) to the arm's total; returns how many more it answered correctly with its
        better prompt variant per task (what the algorithm is told)."""
        before = int(self._totals[arm])
        known, counted, sums, answered = self._known[arm], self._counted[arm], self._sums[arm], self._answered[arm]
        for query in queries:
            query = int(query)
            if query in counted:
                continue
            pair = known.get(query)
            if pair is None or _UNKNOWN in pair:
                raise KeyError(f"arm {arm} has no recorded answer to query #{query}")
            counted.add(query)
            task = self.task_of[query]
            sums[task, 0] += pair[0]
            sums[task, 1] += pair[1]
            answered[task] += 1
        self._totals[arm] = self.best_variant_total(arm)
        return int(self._totals[arm]) - before

    def best_variant_total(self, arm: int) -> int:
        """Correct answers among the counted queries, with the better prompt variant per task."""
        return int(_best_variant_counts(self._sums[arm], self._answered[arm])[0].sum())

    def accuracy(self, arm: int) -> tuple[int, float]:
        """(queries recorded, accuracy with the better prompt variant per task) of `arm` on every query of the
        pool it has answered."""
        sums = np.zeros((self.num_tasks, len(PROMPT_VARIANTS)), dtype=np.int64)
        answered = np.zeros(self.num_tasks, dtype=np.int64)
        for query, pair in self._known[arm].items():
            if _UNKNOWN in pair:
                continue
            task = self.task_of[query]
            sums[task, 0] += pair[0]
            sums[task, 1] += pair[1]
            answered[task] += 1
        correct, n = (int(total.sum()) for total in _best_variant_counts(sums, answered))
        return n, (correct / n if n else float("nan"))


def _best_variant_counts(sums: np.ndarray, answered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct, answers) of each task's better variant: `sums` (tasks, variants in PROMPT_VARIANTS order) of
    queries with both variants recorded, `answered` (tasks,) their number."""
    return best_variant_counts(sums[:, _ORDER], np.broadcast_to(answered[:, None], sums.shape))
