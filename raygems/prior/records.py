"""Evaluation records in one long format: one row per (model, task, metric) with the model's metadata.

The prior learns from these rows, whatever produced them (the Open LLM Leaderboard snapshots, raygems'
own result stores, a CSV someone wrote by hand):

    model_id, task, score                       required; score on the task's own 0-1 scale
    metric, source                              optional: the evaluation protocol and where the row came from
    architecture, params_b, type, license,      optional model metadata (missing = unknown)
    likes, date, base_model, description

`type` uses the normalised vocabulary in `MODEL_TYPES`; `date` is the model's upload date (ISO, UTC) where
known, its evaluation date otherwise.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("model_id", "task", "score")
METADATA_COLUMNS = ("architecture", "params_b", "type", "license", "likes", "date", "base_model", "description")
CONTEXT_COLUMNS = ("metric", "source")
RECORD_COLUMNS = REQUIRED_COLUMNS + CONTEXT_COLUMNS + METADATA_COLUMNS

#: The metric name used where a record does not say which metric its score is.
DEFAULT_METRIC = "accuracy"

#: Normalised model types (the leaderboards' categories, plus raygems tree kinds mapped onto them).
MODEL_TYPES = ("pretrained", "continuously_pretrained", "finetuned", "chat", "merge", "multimodal", "other")

_TYPE_KEYWORDS = (  # checked in this order against a lower-cased, space-free string
    ("continuouslypretrained", "continuously_pretrained"),
    ("continuously_pretrained", "continuously_pretrained"),
    ("pretrained", "pretrained"),
    ("merge", "merge"),
    ("chat", "chat"),
    ("instruct", "chat"),
    ("fine-tuned", "finetuned"),
    ("finetuned", "finetuned"),
    ("finetune", "finetuned"),
    ("adapter", "finetuned"),
    ("quantized", "finetuned"),
    ("multimodal", "multimodal"),
    ("base", "pretrained"),
)


def normalize_model_type(value: object) -> str | None:
    """Map a leaderboard category ("🔶 fine-tuned on ...", "chatmodels") or a raygems kind to MODEL_TYPES."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).lower().replace(" ", "")
    if not text or text in {"?", "nan", "none"}:
        return None
    for keyword, normalised in _TYPE_KEYWORDS:
        if keyword in text:
            return normalised
    return "other"


def validate_records(records: pd.DataFrame, *, where: str = "records") -> pd.DataFrame:
    """Check the required columns and types; add missing optional columns; return a clean copy.

    Rows with a missing model id, task or score are rejected (not silently dropped): a record without
    a score is not a record.
    """
    if not isinstance(records, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"{where}: missing required column(s) {missing}; have {list(records.columns)}")
    out = records.copy()
    for column in RECORD_COLUMNS:
        if column not in out.columns:
            out[column] = pd.Series([None] * len(out), index=out.index, dtype=_dtype(column))
    for column in ("model_id", "task"):
        bad = out[column].isna() | (out[column].astype(str).str.strip() == "")
        if bad.any():
            raise ValueError(f"{where}: {int(bad.sum())} row(s) have an empty {column!r} (first at row {out.index[bad][0]})")
        out[column] = out[column].astype(str)
    score = pd.to_numeric(out["score"], errors="coerce")
    bad = score.isna() | ~np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        first = out.index[bad][0]
        raise ValueError(f"{where}: {int(bad.sum())} row(s) have a missing or non-numeric score "
                         f"(first: row {first}, value {_show(records.loc[first, 'score'])})")
    outside = (score < 0.0) | (score > 1.0)
    if outside.any():
        first = out.index[outside][0]
        raise ValueError(f"{where}: {int(outside.sum())} row(s) have a score outside [0, 1] "
                         f"(first: row {first}, value {_show(records.loc[first, 'score'])}); scores are on the task's "
                         "0-1 scale (an accuracy of 87% is 0.87)")
    out["score"] = score.astype(float)
    out["metric"] = out["metric"].where(out["metric"].notna(), DEFAULT_METRIC).astype(str)
    out["params_b"] = pd.to_numeric(out["params_b"], errors="coerce").astype(float)
    out.loc[out["params_b"] <= 0, "params_b"] = np.nan
    out["likes"] = pd.to_numeric(out["likes"], errors="coerce").astype(float)
    out["type"] = out["type"].map(normalize_model_type)
    out["date"] = _normalise_dates(out["date"])
    return out[list(RECORD_COLUMNS) + [c for c in out.columns if c not in RECORD_COLUMNS]].reset_index(drop=True)


def read_records(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read one or more record files (.csv or .parquet) in the long format and concatenate them."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"records file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in {".csv", ".tsv"}:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise ValueError(f"records file {path}: unknown format {suffix!r} (use .csv or .parquet)")
        frames.append(validate_records(frame, where=str(path)))
    if not frames:
        raise ValueError("no records files given")
    return pd.concat(frames, ignore_index=True)


def write_records(records: pd.DataFrame, path: str | Path) -> Path:
    """Write records as .parquet or .csv (by suffix)."""
    path = Path(path)
    records = validate_records(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        records.to_parquet(path, index=False)
    elif path.suffix.lower() == ".csv":
        records.to_csv(path, index=False)
    else:
        raise ValueError(f"records file {path}: unknown format {path.suffix!r} (use .csv or .parquet)")
    return path


def model_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per model with its metadata: the latest non-missing value of each column across its records."""
    records = validate_records(records)
    columns = ["model_id", *METADATA_COLUMNS]
    ordered = records[columns].sort_values("date", na_position="first", kind="stable")
    return ordered.groupby("model_id", sort=True).last().reset_index()


def aggregate_duplicates(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (model_id, task, metric): the mean score of repeated evaluations (re-runs, precisions)."""
    records = validate_records(records)
    keys = ["model_id", "task", "metric"]
    scores = records.groupby(keys, sort=False)["score"].mean().rename("score")
    firsts = records.drop(columns=["score"]).groupby(keys, sort=False).last()
    return firsts.join(scores).reset_index()[records.columns]


def _show(value: object) -> str:
    """A cell's value for an error message: 1e+30, 'abc' (numpy scalars as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _dtype(column: str) -> str:
    return "float64" if column in {"score", "params_b", "likes"} else "object"


def _normalise_dates(values: pd.Series) -> pd.Series:
    """ISO strings (YYYY-MM-DD...) -> 'YYYY-MM-DD' strings; unparseable -> None."""
    parsed = parse_dates(values)
    text = parsed.dt.strftime("%Y-%m-%d")
    return pd.Series([t if ok else None for t, ok in zip(text, parsed.notna())], index=values.index, dtype=object)


def parse_dates(values: pd.Series) -> pd.Series:
    """Timestamps (UTC) of ISO-like strings; NaT where unparseable. Fast path for uniform ISO 8601."""
    try:
        return pd.to_datetime(values, errors="raise", utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
