"""Fixtures of the sweep tests: a small real matrix file with its models table, written the way users
give them (helpers such as `write_config` live in sweep_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from raygems.populations import generate_tree


@pytest.fixture(scope="session")
def matrix_files(tmp_path_factory) -> dict[str, Path]:
    """A long-parquet correctness matrix and its models table (csv), from a small synthetic tree."""
    folder = tmp_path_factory.mktemp("matrix")
    tree = generate_tree("mistral-7b", num_finetunes=14, num_adapters=4, queries_per_task=20)
    matrix_path = tree.matrix.to_parquet(folder / "matrix.parquet")
    models_path = folder / "models.csv"
    tree.models[["model_id", "downloads", "is_base"]].to_csv(models_path, index=False)
    return {"matrix": matrix_path, "models": models_path}
