"""Shared helpers for the runtime tests: a small recorded tree to search live through the replay backend."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from raygems.populations import generate_tree


def write_matrix(folder: Path, finetunes: int = 30, adapters: int = 6, per_task: int = 30, seed: int = 70):
    """A small synthetic tree as a long-parquet matrix plus a models table; returns (tree, matrix, models)."""
    tree = generate_tree("mistral-7b", num_finetunes=finetunes, num_adapters=adapters, queries_per_task=per_task,
                         seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    matrix = tree.matrix.to_parquet(folder / "matrix.parquet")
    models = folder / "models.parquet"
    tree.models[["model_id", "downloads", "is_base"]].to_parquet(models, index=False)
    return tree, matrix, models


def raw_result_keys(out: Path) -> pd.DataFrame:
    """Every row ever written (all parts, no de-duplication): a pair paid twice shows up twice here."""
    parts = sorted((out / "store" / "results").glob("part-*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return frame[["model_id", "revision", "query_id", "variant"]]
