"""Records from raygems' own result stores: every search adds training records for the prior.

A result store is parquet (one file, a folder of part files, or a `raygems.runtime.store` root whose
`results/` folder holds them) with one row per answered query:
`model_id, revision, query_id, task, variant, reward, ...` (`variant` is the prompt variant, "system" or
"plain"). A model's score on a task is the mean reward of its better prompt variant, matching how a search
reports a model. Metadata comes from the tree table (`ModelRecord.to_row()` rows): `kind` becomes `type`,
`created_at` becomes `date`; `architecture`, `params_b`, `license` and `description` are used where the
table has such columns, and the model card (README.md in `path`) stands in for a missing description.

Scores from a handful of queries are noisy, and the better of two variants is biased upward by the
maximum; `min_queries` drops models answered too few times to be worth learning from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raygems.prior.records import validate_records

#: The metric name of raygems' own records: zero-shot prompts, greedy decoding, exact 0/1 scoring.
RAYGEMS_METRIC = "zero_shot_greedy"
RAYGEMS_SOURCE = "raygems"

STORE_COLUMNS = ("model_id", "revision", "query_id", "task", "variant", "reward")
_STORE_KEY = ("model_id", "revision", "query_id", "variant")
_DESCRIPTION_CHARS = 2000


def read_result_store(store: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The result rows of a store given as a DataFrame, a parquet file or a folder of parquet files."""
    if isinstance(store, pd.DataFrame):
        rows = store
    else:
        path = Path(store)
        if not path.exists():
            raise FileNotFoundError(f"result store {path} does not exist")
        if path.is_dir():
            # A store root (results/ and failures/ beside each other) or a folder of result parts.
            folder = path / "results" if (path / "results").is_dir() else path
            parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
            if not parts:
                raise ValueError(f"result store {path} holds no .parquet files")
            rows = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        else:
            rows = pd.read_parquet(path)
    missing = [c for c in STORE_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"result store: missing column(s) {missing}; have {list(rows.columns)}")
    # The store is append-only: the first write of a (model, revision, query, variant) wins.
    return rows.drop_duplicates(list(_STORE_KEY), keep="first")


def records_from_result_store(store_dir_or_df: str | Path | pd.DataFrame,
                              models_table: str | Path | pd.DataFrame | None = None, *,
                              min_queries: int = 1) -> pd.DataFrame:
    """One record per (model, task): mean reward of the model's better prompt variant on that task.

    If a model was evaluated at several revisions, the revision with the most answered queries counts.
    `models_table` (a tree table or its parquet path) supplies metadata; without it the records carry
    only ids and scores.
    """
    if min_queries < 1:
        raise ValueError(f"min_queries must be at least 1, got {min_queries}")
    rows = read_result_store(store_dir_or_df)
    rows = rows[list(STORE_COLUMNS)].copy()
    rows["reward"] = pd.to_numeric(rows["reward"], errors="coerce")
    rows = rows[rows["reward"].notna()]
    rows["revision"] = rows["revision"].fillna("main").astype(str)
    rows["variant"] = rows["variant"].fillna("default").astype(str)
    per_variant = (rows.groupby(["model_id", "revision", "task", "variant"], sort=False)["reward"]
                   .agg(score="mean", n_queries="count").reset_index())
    per_variant = per_variant[per_variant["n_queries"] >= min_queries]
    # The better variant per (model, revision, task); more queries break ties.
    per_variant = per_variant.sort_values(["score", "n_queries"], ascending=False, kind="stable")
    best = per_variant.drop_duplicates(["model_id", "revision", "task"]).rename(columns={"variant": "best_variant"})
    # The most-evaluated revision per (model, task).
    best = best.sort_values("n_queries", ascending=False, kind="stable").drop_duplicates(["model_id", "task"])
    records = best[["model_id", "task", "score", "revision", "best_variant", "n_queries"]].copy()
    records["metric"] = RAYGEMS_METRIC
    records["source"] = RAYGEMS_SOURCE
    if models_table is not None:
        records = records.merge(_metadata_from_tree_table(models_table), on="model_id", how="left")
    records = records.sort_values(["task", "model_id"], kind="stable")
    return validate_records(records, where="result store")


def candidates_from_tree_table(tree: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Candidates for `ModelPrior.rank`: a tree table's models with their metadata in the records' columns."""
    return _metadata_from_tree_table(tree)


def _metadata_from_tree_table(tree: str | Path | pd.DataFrame) -> pd.DataFrame:
    table = tree if isinstance(tree, pd.DataFrame) else pd.read_parquet(Path(tree))
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
