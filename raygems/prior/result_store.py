"""Records from raygems' own result stores: every search adds training records for the prior.

A result store is read by `raygems.results.read_results` (a store root, its run directory, parquet files or a
DataFrame, with the store's columns `model_id, revision, query_id, task, variant, reward, ...`; rows of an older
scorer are not used), and a model's score on a task is its accuracy as `raygems.results` defines it (its better
prompt variant's), matching how a search reports a model. Metadata comes from the tree table
(`ModelRecord.to_row()` rows): `kind` becomes `type`, `created_at` becomes `date`; `architecture`, `params_b`,
`license` and `description` are used where the table has such columns, and the model card (README.md in `path`)
stands in for a missing description.

Scores from a handful of queries are noisy, and the better of two variants is biased upward by the
maximum; `min_queries` drops models answered too few times to be worth learning from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raygems.prior.records import validate_records
from raygems.results import accuracy_table, one_revision_per_model, read_results, tree_revisions

#: The metric name of raygems' own records: zero-shot prompts, greedy decoding, exact 0/1 scoring.
RAYGEMS_METRIC = "zero_shot_greedy"
RAYGEMS_SOURCE = "raygems"

_DESCRIPTION_CHARS = 2000


def records_from_result_store(store_dir_or_df: str | Path | pd.DataFrame,
                              models_table: str | Path | pd.DataFrame | None = None, *,
                              min_queries: int = 1) -> pd.DataFrame:
    """One record per (model, task): the model's accuracy on the task (`raygems.results`: its better prompt
    variant's), from the served rows of a store (anything `raygems.results.read_results` reads).

    If a model was evaluated at several revisions, the tree's revision counts when `models_table` gives one,
    else the revision with the most answers. `models_table` (a tree table or its parquet path) supplies metadata;
    without it the records carry only ids and scores.
    """
    if min_queries < 1:
        raise ValueError(f"min_queries must be at least 1, got {min_queries}")
    rows = read_results(store_dir_or_df, columns=())
    if rows.empty:
        raise ValueError("result store: no results")
    tree = None if models_table is None else _table(models_table)
    scores = accuracy_table(one_revision_per_model(rows, tree_revisions(tree)), min_queries=min_queries)
    records = scores.rename(columns={"accuracy": "score", "variant": "best_variant"})[
        ["model_id", "task", "score", "revision", "best_variant", "n_queries"]].copy()
    records["metric"] = RAYGEMS_METRIC
    records["source"] = RAYGEMS_SOURCE
    if tree is not None:
        records = records.merge(_metadata_from_tree_table(tree), on="model_id", how="left")
    records = records.sort_values(["task", "model_id"], kind="stable")
    return validate_records(records, where="result store")


def candidates_from_tree_table(tree: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Candidates for `ModelPrior.rank`: a tree table's models with their metadata in the records' columns."""
    return _metadata_from_tree_table(tree)


def _table(tree: str | Path | pd.DataFrame) -> pd.DataFrame:
    return tree if isinstance(tree, pd.DataFrame) else pd.read_parquet(Path(tree))


def _metadata_from_tree_table(tree: str | Path | pd.DataFrame) -> pd.DataFrame:
    table = _table(tree)
    if "model_id" not in table.columns:
        raise ValueError(f"tree table: no 'model_id' column; have {list(table.columns)}")
    table = table.drop_duplicates("model_id", keep="last").reset_index(drop=True)

    def column(name: str, default: object = None) -> pd.Series:
        return table[name] if name in table.columns else pd.Series([default] * len(table), index=table.index)

    type_source = column("type")
    if "kind" in table.columns:
        type_source = type_source.where(type_source.notna(), table["kind"])
    date = column("date")
    date = date.where(date.notna(), column("created_at"))
    description = column("description")
    if "path" in table.columns:
        cards = table["path"].map(_model_card_text)
        description = description.where(description.notna(), cards)
    return pd.DataFrame({
        "model_id": table["model_id"].astype(str),
        "architecture": column("architecture"),
        "params_b": pd.to_numeric(column("params_b"), errors="coerce"),
        "type": type_source,
        "license": column("license"),
        "likes": pd.to_numeric(column("likes"), errors="coerce"),
        "date": date,
        "base_model": column("base_model"),
        "description": description,
    })


def _model_card_text(path: object) -> str | None:
    """The prose of a local model card (README.md without its YAML front matter), or None."""
    if path is None or (isinstance(path, float) and np.isnan(path)):
        return None
    card = Path(str(path)) / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4:] if end >= 0 else ""
    text = " ".join(text.split())
    return text[:_DESCRIPTION_CHARS] or None
