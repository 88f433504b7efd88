"""The popular base: the reference a search's choice is compared with (the paper's "Best Base").

One rule, used by the live search's summary and leaderboard (`raygems.runtime.search`), by correctness matrices
and the population statistics (`CorrectnessMatrix.popular_base`) and by the `best-base` reference method
(`raygems.bandits.reference.BestBase`):

    the most-downloaded model flagged `is_base` (an official release); when no model is flagged, the
    most-downloaded model of all; between equally downloaded models, the first listed.

`best-base` replays R repetitions at once and draws exact ties at random per repetition instead (so a tie
between official releases is no one's choice); it takes its candidates from `official_or_all`.

Numpy only, so that every layer (the algorithms included) can import it.
"""
from __future__ import annotations

import numpy as np


def official_or_all(is_base, num_models: int) -> np.ndarray:
    """The models the popular base is chosen among: those flagged `is_base` (None: none flagged), or every
    model when none is."""
    flagged = np.zeros(num_models, dtype=bool) if is_base is None else np.asarray(is_base, dtype=bool)
    if flagged.shape != (num_models,):
        raise ValueError(f"is_base must have one entry per model ({num_models}), got shape {flagged.shape}")
    return flagged if flagged.any() else np.ones(num_models, dtype=bool)


def popular_base(downloads, is_base=None) -> int:
    """Index of the popular base (module docstring) among models with these `downloads` and `is_base` flags."""
    downloads = np.asarray(downloads, dtype=np.float64)
    if downloads.ndim != 1 or downloads.size == 0:
        raise ValueError(f"downloads must list at least one model, got shape {downloads.shape}")
    candidates = official_or_all(is_base, downloads.size)
    return int(np.argmax(np.where(candidates, downloads, -np.inf)))
