"""A small synthetic tree written as a recorded correctness matrix (long parquet) and a models table: what the
replay backend, `raygems search --matrix` and `raygems plan --matrix` read. Shared by the runtime and plan tests."""
from __future__ import annotations

from pathlib import Path

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
