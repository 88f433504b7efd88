"""A learned prior over models (ModelLens-style): rank candidates for a task from metadata and past
evaluation records, before any of them is downloaded.

* `records`: the long record format (`model_id, task, score` + metadata) and its I/O;
* `leaderboard`, `result_store`: converters from the Open LLM Leaderboard snapshots and raygems' results;
* `ModelPrior` (`model_prior`): fit / save / load / rank / prune / beliefs;
* `evaluation`: the paper's splits, metrics and baselines.

torch is imported lazily (inside `fit`, `predict`, `load`), so importing this package stays cheap.
"""
from __future__ import annotations

from raygems.prior.leaderboard import records_from_leaderboard_v1, records_from_leaderboard_v2
from raygems.prior.model_prior import GroupCalibration, ModelPrior, PriorConfig
from raygems.prior.records import RECORD_COLUMNS, model_table, read_records, validate_records, write_records
from raygems.prior.result_store import (RAYGEMS_METRIC, candidates_from_tree_table, records_from_result_store)

__all__ = [
    "GroupCalibration",
    "ModelPrior",
    "PriorConfig",
    "RAYGEMS_METRIC",
    "RECORD_COLUMNS",
    "candidates_from_tree_table",
    "model_table",
    "read_records",
    "records_from_leaderboard_v1",
    "records_from_leaderboard_v2",
    "records_from_result_store",
    "validate_records",
    "write_records",
]
