"""The answers a plan's simulated search sees: they decide which models survive each round (and, for adaptive
methods such as UCB or TTTS, how many queries each model gets), so a plan needs some.

* `MatrixRewards`: a recorded correctness matrix (`--matrix`): the plan follows exactly the path the search
  will take.
* `drawn_rewards`: answers drawn for given per-model accuracies (a tree nobody has evaluated yet): the default
  accuracies are skewed like the paper's trees (best ~0.78, most models more than 10 points below it). For
  the elimination methods (recommended, sequential-halving, ours, ...) the number of survivors per round does not
  depend on the answers, only which models they are.
"""
from __future__ import annotations

import numpy as np


class MatrixRewards:
    """0/1 answers per (model, query)."""

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.uint8)

    def correct(self, arm: int, queries) -> int:
        return int(self.values[arm, np.asarray(queries, dtype=np.int64)].sum())


def default_accuracies(num_arms: int, seed: int = 0) -> np.ndarray:
    """Accuracies skewed like the paper's trees: 0.78 minus a Gamma(1.5, 0.1) gap (mean gap 0.15)."""
    rng = np.random.default_rng([seed, 20_151])
    return np.clip(0.78 - rng.gamma(1.5, 0.1, size=num_arms), 0.02, 0.98)


def drawn_rewards(accuracies, num_queries: int, seed: int = 0) -> MatrixRewards:
    """Independent answers with the given accuracy per model (deterministic for a seed)."""
    accuracies = np.asarray(accuracies, dtype=float)
    rng = np.random.default_rng([seed, 20_152])
    return MatrixRewards(rng.random((accuracies.size, num_queries)) < accuracies[:, None])
