"""Converters from the Open LLM Leaderboard final snapshots (v1 2024-07-07, v2 2025-03-21) to records.

Caveats handled here (see shared/data/leaderboard/README.md):
* v1's `merged`, `moe` and `flagged` columns are inverted (True means NOT merged / MoE / flagged): they are
  flipped, and flagged rows (contaminated or misreported evaluations) are dropped unless asked to keep them.
* v1's `params_b` is rounded to whole billions and 0 means unknown: a size written in the model name
  ("1.5B", "350m") replaces it when the two agree to within the rounding, or when the column says 0.
* v2's `metadata_base_model` is always filled but noisy: "Removed" and a model naming itself become unknown.
* Scores go on a 0-1 scale (v1 publishes percentages; v2's raw `*_value` columns already are 0-1).
* Repeated evaluations of one model (different precisions or commits) are averaged into one record.

Task names follow raygems' task registry where the dataset is the same (arc_challenge, winogrande, mmlu,
gsm8k); the `metric` column names the leaderboard's protocol (metric and number of shots), so raygems' own
zero-shot records of the same dataset stay a separate evaluation group.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.prior.records import aggregate_duplicates, validate_records

#: v1 column -> (task, metric)
V1_TASKS: dict[str, tuple[str, str]] = {
    "arc": ("arc_challenge", "acc_norm_25shot"),
    "hellaswag": ("hellaswag", "acc_norm_10shot"),
    "mmlu": ("mmlu", "acc_5shot"),
    "truthfulqa": ("truthfulqa", "mc2_0shot"),
    "winogrande": ("winogrande", "acc_5shot"),
    "gsm8k": ("gsm8k", "exact_match_5shot"),
}

#: v2 column stem (evaluations_<stem>_value) -> (task, metric)
V2_TASKS: dict[str, tuple[str, str]] = {
    "ifeval": ("ifeval", "strict_acc_0shot"),
    "bbh": ("bbh", "acc_norm_3shot"),
    "math": ("math_lvl5", "exact_match_4shot"),
    "gpqa": ("gpqa", "acc_norm_0shot"),
    "musr": ("musr", "acc_norm_0shot"),
    "mmlu_pro": ("mmlu_pro", "acc_5shot"),
}

_UNKNOWN_STRINGS = {"", "?", "unknown", "nan", "none", "removed"}
_SIZE_IN_NAME = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z0-9])", re.IGNORECASE)
_MOE_IN_NAME = re.compile(r"\d+x\d+(?:\.\d+)?[bm]", re.IGNORECASE)


def params_from_name(model_id: str) -> float | None:
    """The parameter count (billions) written in a model name ("Qwen2.5-1.5B", "opt-350m"), or None.

    Mixture-of-experts names ("8x7B") are not multiplied out: None, so the published count is kept.
    """
    name = str(model_id).rsplit("/", 1)[-1]
    if _MOE_IN_NAME.search(name):
        return None
    sizes = [float(value) * (1.0 if unit.lower() == "b" else 1e-3) for value, unit in _SIZE_IN_NAME.findall(name)]
    sizes = [s for s in sizes if 0.01 <= s <= 2000]
    return sizes[-1] if sizes else None


#: The columns of the v1 snapshot raygems reads.
V1_COLUMNS = ("model", *V1_TASKS, "architecture", "params_b", "type", "precision", "hub_license", "hub_hearts",
              "date", "merged", "moe", "flagged")


def read_leaderboard_v1(path: str | Path, *, keep_flagged: bool = False) -> pd.DataFrame:
    """The rows of the v1 final snapshot `huggingface_v1_2024-07-07.csv` with its inverted flags fixed (`merged`,
    `moe`, `flagged` mean what they say) and, unless `keep_flagged`, the flagged rows dropped; scores as published
    (percentages), one row per evaluation. The one reader of the snapshot: the prior's records and the
    leaderboard population family (`raygems.populations.leaderboard`) start from it."""
    table = _read_csv(path, required=list(V1_COLUMNS))
    table = table.assign(
        merged=~table["merged"].astype(bool),     # inverted in the snapshot
        moe=~table["moe"].astype(bool),
        flagged=~table["flagged"].astype(bool),
    )
    return table if keep_flagged else table[~table["flagged"]]


def records_from_leaderboard_v1(path: str | Path, *, keep_flagged: bool = False) -> pd.DataFrame:
    """Records (one per model and task) from the v1 final snapshot `huggingface_v1_2024-07-07.csv`."""
    table = read_leaderboard_v1(path, keep_flagged=keep_flagged)
    params = [_v1_params(model, rounded) for model, rounded in zip(table["model"], table["params_b"])]
    models = pd.DataFrame({
        "model_id": table["model"].astype(str),
        "architecture": table["architecture"].map(_known_or_none),
        "params_b": params,
        "type": table["type"],
        "license": table["hub_license"].map(_known_or_none),
        "likes": pd.to_numeric(table["hub_hearts"], errors="coerce"),
        "date": table["date"],
        "base_model": None,
        "description": None,
        "merged": table["merged"].to_numpy(),
        "moe": table["moe"].to_numpy(),
    })
    return _melt(models, table, {column: spec for column, spec in V1_TASKS.items()}, scale=0.01,
                 source="open_llm_leaderboard_v1")


def records_from_leaderboard_v2(path: str | Path, *, keep_flagged: bool = False) -> pd.DataFrame:
    """Records (one per model and task) from the v2 final snapshot `huggingface_v2_2025-03-21.csv`."""
    value_columns = {f"evaluations_{stem}_value": spec for stem, spec in V2_TASKS.items()}
    table = _read_csv(path, required=["model_name", *value_columns, "model_architecture", "model_type",
                                      "metadata_params_billions", "metadata_hub_license", "metadata_hub_hearts",
                                      "metadata_upload_date", "metadata_submission_date", "metadata_base_model",
                                      "features_is_merged", "features_is_moe", "features_is_flagged"])
    if not keep_flagged:
        table = table[~table["features_is_flagged"].astype(bool)]
    names = table["model_name"].astype(str)
    base = table["metadata_base_model"].map(_known_or_none)
    base = base.where(base.astype(str).str.lower() != names.str.lower(), None)   # self-references
    params = pd.to_numeric(table["metadata_params_billions"], errors="coerce")
    date = table["metadata_upload_date"].where(table["metadata_upload_date"].notna(), table["metadata_submission_date"])
    models = pd.DataFrame({
        "model_id": names,
        "architecture": table["model_architecture"].map(_known_or_none),
        "params_b": params.where(params > 0),
        "type": table["model_type"],
        "license": table["metadata_hub_license"].map(_known_or_none),
        "likes": pd.to_numeric(table["metadata_hub_hearts"], errors="coerce"),
        "date": date,
        "base_model": base.astype(object),
        "description": None,
        "merged": table["features_is_merged"].astype(bool).to_numpy(),
        "moe": table["features_is_moe"].astype(bool).to_numpy(),
    })
    return _melt(models, table, value_columns, scale=1.0, source="open_llm_leaderboard_v2")


def _melt(models: pd.DataFrame, table: pd.DataFrame, columns: dict[str, tuple[str, str]], *, scale: float,
          source: str) -> pd.DataFrame:
    frames = []
    for column, (task, metric) in columns.items():
        frame = models.copy()
        frame.insert(1, "task", task)
        frame.insert(2, "score", pd.to_numeric(table[column], errors="coerce").to_numpy() * scale)
        frame.insert(3, "metric", metric)
        frame.insert(4, "source", source)
        frames.append(frame[frame["score"].notna()])
    records = validate_records(pd.concat(frames, ignore_index=True), where=source)
    return aggregate_duplicates(records)


def _read_csv(path: str | Path, *, required: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"leaderboard snapshot {path} does not exist")
    table = pd.read_csv(path)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not the expected leaderboard snapshot, missing column(s) {missing}")
    return table.reset_index(drop=True)


def _known_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return None if text.lower() in _UNKNOWN_STRINGS else text


def _v1_params(model_id: str, rounded: object) -> float | None:
    """v1 rounds to whole billions (0 = unknown); prefer the name's size when consistent with the column."""
    rounded = float(rounded) if rounded is not None and not pd.isna(rounded) else 0.0
    from_name = params_from_name(model_id)
    if rounded <= 0:
        return from_name
    if from_name is not None and abs(from_name - rounded) <= 0.5 + 0.05 * rounded:
        return from_name
    return rounded
