"""The sweep's output files and what a rerun may skip.

* `results.parquet`: one row per cell (tree, method, schedule, options, seed, reps, budget) with the
  summary statistics and the `code_version` of the algorithms that produced it; reference rows (random,
  best-base, best-available) have budget 0.
* `per_rep.parquet`: one row per cell and repetition: the arm chosen, its rank and true accuracy
  (what the plot's error bands and paired comparisons between methods are computed from).

A cell is skipped on a rerun when its key is already in results.parquet; the key includes the tree's
definition (`tree_spec`) and the number of repetitions, so redefining a tree or changing `reps` runs the
cells again. Both files are rewritten atomically (write to a temporary file, then rename), after every
finished trial, so an interrupted sweep keeps what it finished.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from raygems.files import DiskFull, remove_stale_temporaries, write_parquet
from raygems.sweep.trainable import CELL_KEYS, SUMMARY_METRICS

RESULTS_FILE = "results.parquet"
#: How a sweep continues after a full disk: the same command skips the cells already saved.
RUN_AGAIN = "run the same sweep again (it skips the cells already saved)"
PER_REP_FILE = "per_rep.parquet"
#: Column order of results.parquet: the issue's columns first, then the rest of the identity and statistics.
RESULT_COLUMNS = ("method", "budget", "schedule", "tree", "mean_rank", "std_rank", "mean_accuracy", "p_top3",
                  "budget_fraction", "seconds", "label", "options", "seed", "reps", "num_models", "se_rank",
                  "median_rank", "se_accuracy", "p_top1", "tree_spec", "code_version")
PER_REP_COLUMNS = (*CELL_KEYS, "rep", "arm", "rank", "accuracy")
INT_COLUMNS = ("budget", "seed", "reps", "num_models")

assert set(CELL_KEYS) <= set(RESULT_COLUMNS) and set(SUMMARY_METRICS) <= set(RESULT_COLUMNS)


def empty_results() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in INT_COLUMNS else
                                      "float64" if c in SUMMARY_METRICS else "object") for c in RESULT_COLUMNS})


def load_results(out_dir: str | Path) -> pd.DataFrame:
    path = Path(out_dir) / RESULTS_FILE
    if not path.exists():
        return empty_results()
    frame = pd.read_parquet(path)
    if "code_version" not in frame.columns:     # files written before the column existed
        frame["code_version"] = "unknown"
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a sweep's results file: it lacks column(s) {missing}")
    return frame


def load_per_rep(out_dir: str | Path) -> pd.DataFrame:
    path = Path(out_dir) / PER_REP_FILE
    if not path.exists():
        return pd.DataFrame(columns=list(PER_REP_COLUMNS))
    return pd.read_parquet(path)


def cell_key(row) -> tuple:
    """The identity of a cell, from a result row (a mapping or a namedtuple-like row)."""
    get = row.get if hasattr(row, "get") else lambda k: getattr(row, k)
    return tuple(int(get(k)) if k in ("seed", "reps", "budget") else str(get(k)) for k in CELL_KEYS)


def done_keys(results: pd.DataFrame) -> set[tuple]:
    return {cell_key(row) for row in results.to_dict("records")}


def merge(old: pd.DataFrame, new: pd.DataFrame, columns) -> pd.DataFrame:
    """Rows of `new` replace rows of `old` with the same cell key; the result is sorted by cell key."""
    if new.empty:
        return old
    if old.empty:
        merged = new
    else:
        new_keys = {cell_key(r) for r in new[list(CELL_KEYS)].drop_duplicates().to_dict("records")}
        keep = [cell_key(r) not in new_keys for r in old[list(CELL_KEYS)].to_dict("records")]
        merged = pd.concat([old[keep], new], ignore_index=True)
    merged = merged[list(columns)]
    order = [c for c in CELL_KEYS] + (["rep"] if "rep" in merged.columns else [])
    return merged.sort_values(order, kind="stable").reset_index(drop=True)


def save(out_dir: str | Path, results: pd.DataFrame, per_rep: pd.DataFrame) -> None:
    """Merge new rows into the files under `out_dir` (rows with the same cell key are replaced).

    The per-repetition rows are written first: `results.parquet` decides what a resumed sweep skips, so a
    crash between the two writes reruns the cells instead of leaving them without their repetitions."""
    out_dir = Path(out_dir)
    try:
        _save(out_dir, results, per_rep)
    except DiskFull as full:
        raise DiskFull(full.folder, again=RUN_AGAIN) from None


def _save(out_dir: Path, results: pd.DataFrame, per_rep: pd.DataFrame) -> None:
    for name in (PER_REP_FILE, RESULTS_FILE):      # what a killed sweep's writes left behind
        remove_stale_temporaries(out_dir, of=name)
    if not per_rep.empty:
        reps = merge(load_per_rep(out_dir), per_rep, PER_REP_COLUMNS)
        for column in ("seed", "reps", "budget"):
            reps[column] = reps[column].astype("int32")
        for column in ("rep", "arm", "rank"):
            reps[column] = reps[column].astype("int32")
        reps["accuracy"] = reps["accuracy"].astype("float32")
        write_parquet(out_dir / PER_REP_FILE, reps)
    merged = merge(load_results(out_dir), results, RESULT_COLUMNS)
    for column in INT_COLUMNS:
        merged[column] = merged[column].astype("int64")
    write_parquet(out_dir / RESULTS_FILE, merged)
