"""Reference rows that spend no evaluation budget: Random Selection and Best Base."""
from __future__ import annotations

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls
from raygems.bandits.randomness import STREAM_CHOICE, STREAM_TIEBREAK, uniform
from raygems.popularity import official_or_all


class _NoPulls(BanditAlgorithm):
    @property
    def done(self) -> bool:
        return True

    def ask(self) -> Pulls | None:
        return None

    def _update(self, pulls, successes) -> None:  # pragma: no cover - never asked
        raise RuntimeError(f"{type(self).__name__} asks for no evaluations")


class RandomSelection(_NoPulls):
    """A model chosen uniformly at random (mean rank about (K + 1) / 2)."""

    def recommend(self) -> np.ndarray:
        u = uniform(self.seeds, STREAM_CHOICE, 0)
        return np.minimum((u * self.num_arms).astype(np.int64), self.num_arms - 1)


class BestBase(_NoPulls):
    """The popular base (`raygems.popularity`): the most-downloaded model flagged `is_base` (the most-downloaded
    model overall when none is flagged); exact ties drawn at random per repetition. Needs a models table.

    Options: downloads (K,), is_base (K,) bool.
    """

    def __init__(self, num_arms, num_queries, budget_per_model, seeds, *, downloads=None, is_base=None):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        if downloads is None:
            raise ValueError("best-base needs a models table with a 'downloads' column (--models PATH)")
        downloads = np.asarray(downloads, dtype=np.float64)
        if downloads.shape != (num_arms,):
            raise ValueError(f"downloads must have one entry per model ({num_arms}), got shape {downloads.shape}")
        self.downloads, self.is_base = downloads, official_or_all(is_base, num_arms)

    def recommend(self) -> np.ndarray:
        jitter = uniform(self.seeds, STREAM_TIEBREAK, 0, np.arange(self.num_arms))
        keys = np.where(self.is_base, self.downloads, -np.inf) + 0.5 * jitter
        return np.argmax(keys, axis=1)
