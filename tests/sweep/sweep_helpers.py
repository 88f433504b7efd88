"""Helpers of the sweep tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

from pathlib import Path

import yaml

#: A synthetic tree small enough for a Tune sweep in seconds: 28 models x 150 queries.
SMALL_TREE = {"num_finetunes": 20, "num_adapters": 8, "queries_per_task": 30}


def write_config(folder: Path, **fields) -> Path:
    """Write a sweep YAML into `folder` (fields given override a small valid default)."""
    raw = {
        "name": "tiny",
        "reps": 5,
        "seeds": [0],
        "budgets": [3, 6],
        "methods": ["uniform"],
        "trees": [{"name": "Tiny", "preset": "qwen-3b", "overrides": dict(SMALL_TREE)}],
    }
    raw.update(fields)
    path = folder / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
