"""What every population family returns (`FamilyTree`), the statistics they are calibrated to
(`population_summary`), and where the shared data they read lives (`default_shared_dir`). Kept apart from the
families so that each family's module (`raygems.populations.families`, `raygems.populations.leaderboard`) imports
it without importing the others.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.replay.matrix import CorrectnessMatrix


@dataclass
class FamilyTree:
    """A generated (or loaded) population: its correctness matrix with models table, and how it was made."""

    family: str
    name: str
    config: Any
    matrix: CorrectnessMatrix
    queries: pd.DataFrame | None = None      # item parameters (synthetic families)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> pd.DataFrame | None:
        return self.matrix.models

    def summary(self) -> dict[str, Any]:
        return population_summary(self.matrix)


def population_summary(matrix: CorrectnessMatrix) -> dict[str, Any]:
    """The statistics the families are calibrated to, measured on a matrix."""
    acc = matrix.accuracies
    ranks = matrix.ranks()
    best = float(acc.max())
    out: dict[str, Any] = {
        "K": matrix.num_models, "Q": matrix.num_queries, "best": best, "mean": float(acc.mean()),
        "within_1_point": int(np.sum(acc >= best - 0.01)), "within_2_points": int(np.sum(acc >= best - 0.02)),
        "within_5_points": int(np.sum(acc >= best - 0.05)),
        "share_10_points_below_best": float(np.mean(acc < best - 0.10)),
        "exact_copies": int(matrix.num_models - np.unique(matrix.values, axis=0).shape[0]),
    }
    popular = matrix.popular_base()
    if popular is not None:
        out["popular_base"] = matrix.model_ids[popular]
        out["popular_base_accuracy"] = float(acc[popular])
        out["popular_base_rank"] = int(ranks[popular])
    return out


def default_shared_dir() -> Path:
    """`$RAYGEMS_SHARED_DIR`, else `../shared` beside the repository."""
    env = os.environ.get("RAYGEMS_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"
