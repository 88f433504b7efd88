"""Per-query results: the result store's schema, its one reader, and what a model's accuracy is.

**Schema.** A result row is one answer of one model revision to one query in one prompt variant: columns
`RESULT_COLUMNS`, key `KEY`. The live search writes them (`raygems.runtime.store.ResultStore`); the leaderboard,
the hidden-gem report (`raygems.analysis.gems`) and the prior's records (`raygems.prior.result_store`) read them.

**Served rows.** Every row records the `scoring_version` of its task's scorer. Rows scored by another version than
the task's current one (e.g. MBPP verdicts of the raygems 0.1 sandbox, which wrong programs could pass, or rows
written before the column existed, which count as version "1") stay on disk but are not served: no reader uses
them, so a search evaluates those pairs again and no report counts them. A key written twice (two writers raced)
keeps its first row. `read_results` applies both rules to whatever it reads.

**Accuracy** (the paper, Appendix C: each model is evaluated with and without its own system prompt and, "given a
task, [we] took the version with the best accuracy for it"):

* on one task, a model's accuracy is that of its *better prompt variant* on the task: the variant with the higher
  accuracy; on a tie the one with more answers, then the name first in alphabetical order ("plain" before
  "system": a system prompt that does not help is not credited);
* on several tasks (RouterBench_s, the leaderboard, the gem report's "overall"), each task keeps its own better
  variant: accuracy = (correct answers of each task's better variant, added up) / (their answers, added up).

`better_variant` is that rule on count arrays; the leaderboard's reward book (`raygems.runtime.rewards`) applies it
to its running sums, `accuracy_table` to result rows.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.errors import SetupError, UsageError, one_line
from raygems.registry import as_names
from raygems.run_directory import RunDirectory
from raygems.tasks.prompting import PROMPT_VARIANTS

__all__ = ["FAILURE_COLUMNS", "KEY", "LEGACY_SCORING_VERSION", "PROMPT_VARIANTS", "REQUIRED_COLUMNS",
           "RESULT_COLUMNS", "SCORE_COLUMNS", "VARIANT_ORDER", "accuracy_table", "arrow_schema",
           "best_variant_counts", "better_variant", "is_run_directory", "no_results_yet", "one_revision_per_model",
           "read_part", "read_parts", "read_results", "result_files", "served", "tree_revisions"]

#: The key of a result row: a model revision's answer to a query in one prompt variant.
KEY = ("model_id", "revision", "query_id", "variant")
#: Every column of a result row, with its dtype.
RESULT_COLUMNS = {
    "model_id": "string", "revision": "string", "query_id": "string", "variant": "string", "task": "string",
    "reward": "int8", "generation": "string", "prompt_tokens": "int32", "completion_tokens": "int32",
    "latency_s": "float64", "backend": "string", "backend_settings": "string", "pool_hash": "string",
    "scoring_version": "string", "recorded_at": "float64",
}
#: What rows must hold to be read at all (the other columns may be missing: they read as missing values, and the
#: token counts, which an integer column cannot leave missing, as 0).
REQUIRED_COLUMNS = ("model_id", "revision", "query_id", "variant", "task", "reward")
#: What scoring needs: the required columns and the scorer's version.
SCORE_COLUMNS = REQUIRED_COLUMNS + ("scoring_version",)
#: What a row written before `scoring_version` existed counts as.
LEGACY_SCORING_VERSION = "1"
#: Positions of PROMPT_VARIANTS in alphabetical order of their names: the order `better_variant` takes them in.
VARIANT_ORDER = tuple(sorted(range(len(PROMPT_VARIANTS)), key=lambda k: PROMPT_VARIANTS[k]))
#: A checkpoint that could not be fetched, loaded or run (the store's failures/ parts).
FAILURE_COLUMNS = {"model_id": "string", "revision": "string", "stage": "string", "reason": "string",
                   "recorded_at": "float64"}


# ------------------------------------------------------------------------------------------------ reading
def read_results(source: str | Path | pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The served rows (module docstring) of `source`: a DataFrame, a search's run directory (its --out), a
    store root (results/ and failures/), a folder of parquet files, or one parquet file. `columns`: which
    columns to read from files besides `SCORE_COLUMNS` (default: every column of `RESULT_COLUMNS`; `()` reads
    only what scoring needs, from files that may lack the other columns)."""
    if isinstance(source, pd.DataFrame):
        _check_columns(source.columns, "result rows")
        rows = source if "scoring_version" in source else source.assign(scoring_version=LEGACY_SCORING_VERSION)
        return served(rows)
    if columns is not None:
        columns = list(as_names(columns))
    unknown = sorted(set(columns or ()) - set(RESULT_COLUMNS))
    if unknown:
        raise ValueError(f"unknown result column(s) {unknown}: choose from {list(RESULT_COLUMNS)}")
    wanted = list(dict.fromkeys([*SCORE_COLUMNS, *columns])) if columns is not None else list(RESULT_COLUMNS)
    frames = [served(read_part(path, wanted)) for path in result_files(source)]
    if not frames:       # a store (or a search) nothing was written to yet
        return pd.DataFrame({c: pd.Series(dtype=RESULT_COLUMNS[c]) for c in wanted})
    return served(pd.concat(frames, ignore_index=True))


def is_run_directory(path: str | Path) -> bool:
    """Whether `path` is a search's run directory (its --out: search.json, and store/ once it has answers)."""
    run = RunDirectory(path)
    return run.root.is_dir() and (run.search.is_file() or run.store.is_dir())


def result_files(source: str | Path) -> list[Path]:
    """The parquet parts `read_results` reads from `source`: a search's run directory (its store's parts only: the
    run's other files, pool.parquet or tree.parquet, are not results), a store root (results/ and failures/), a
    folder of parquet files, or one parquet file. Empty for a store, or a search, that has recorded nothing yet
    (`no_results_yet` says so). FileNotFoundError or UsageError name a source that is none of these."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"result store {str(path)!r} does not exist")
    if is_run_directory(path):
        return _store_parts(RunDirectory(path).store)   # (absent when the search stopped before its first answers)
    if path.is_dir() and ((path / "results").is_dir() or (path / "failures").is_dir()):   # a store root
        return _store_parts(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
        if not files:
            raise UsageError(f"{path} holds no results: no .parquet files, and it is neither a search's run "
                             f"directory nor a result store")
        if not any(_holds_result_rows(f) for f in files):      # e.g. a sweep's output (results.parquet, per_rep...)
            names = ", ".join(f.name for f in files[:3]) + (", ..." if len(files) > 3 else "")
            raise UsageError(f"{path} holds no result rows: its parquet files ({names}) lack the columns "
                             f"{list(REQUIRED_COLUMNS)}; give a search's run directory (its --out) or its store")
        return files
    if path.suffix.lower() != ".parquet":
        raise UsageError(f"{path} is not a .parquet file of result rows (nor a search's run directory or a "
                         f"result store)")
    _check_result_file(path)
    return [path]


def _holds_result_rows(path: Path) -> bool:
    try:
        _check_result_file(path)
    except UsageError:
        return False
    return True


def _store_parts(store: Path) -> list[Path]:
    """The result parts of a store root (none when nothing was written to it yet)."""
    return sorted((store / "results").glob("part-*.parquet")) if (store / "results").is_dir() else []


def _check_result_file(path: Path) -> None:
    """UsageError naming `path`, a file given as results, when it is not parquet or lacks the result columns."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError, TypeError) as exc:   # arrow's errors derive from these (as in read_part)
        raise UsageError(f"{path} is not a parquet file of result rows ({one_line(exc)})") from None
    missing = _missing_columns(names)
    if missing:
        raise UsageError(f"{path} is not a parquet file of result rows: it lacks the column(s) {missing}")


def no_results_yet(source: str | Path) -> str:
    """The one line that says `source` (for which `result_files` is empty) has no results to read yet."""
    path = Path(source)
    if is_run_directory(path):
        return (f"{path}: the search in this run directory has recorded no results yet (nothing in "
                f"{path / 'store' / 'results'}); it stopped before its first answers, or is still starting")
    return f"{path}: the result store holds no results yet (nothing in {path / 'results'})"


def read_part(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One parquet file of result rows, all of them (served or not), in the dtypes of `RESULT_COLUMNS`; a file
    written before `scoring_version` existed gets the legacy version. SetupError names a file that is not one."""
    import pyarrow.parquet as pq

    wanted = list(columns or RESULT_COLUMNS)
    try:
        available = set(pq.read_schema(path).names)
        _check_columns(available, str(path))
        frame = pq.read_table(path, columns=[c for c in wanted if c in available]).to_pandas()
        if "scoring_version" not in frame.columns:
            frame["scoring_version"] = LEGACY_SCORING_VERSION
        for column in wanted:     # an optional column this part lacks: missing values
            if column not in frame.columns:
                frame[column] = _absent_value(RESULT_COLUMNS[column])
        return frame.astype({c: t for c, t in RESULT_COLUMNS.items() if c in frame.columns})
    except (OSError, ValueError, TypeError) as exc:   # arrow's errors derive from these
        raise SetupError(f"{path} is not a result part raygems can read ({one_line(exc)}); move it out of the "
                         f"store and run again") from None


#: Threads reading parts at once (`read_parts`): arrow reads a file without holding the GIL, so a few threads read
#: many small parts faster (5,000 parts: 3.4-3.7 s with one, 2.6 s with four, on the 2-core AMD EPYC machine; a
#: 10,000-model search leaves ~29,000 parts to compact).
PART_READERS = 4


def read_parts(paths: list[Path]) -> pd.DataFrame:
    """Every row of many parts (served or not), in order, as one arrow table made into one frame;
    parts without `scoring_version` get the legacy version, and an optional column a part lacks reads as missing
    values (as in `read_part`). The first part, in order, that is not one is named (SetupError)."""
    import pyarrow as pa
    from concurrent.futures import ThreadPoolExecutor

    schema = arrow_schema()
    if len(paths) < 2 * PART_READERS:
        tables = [_read_part_table(path, schema) for path in paths]
    else:
        with ThreadPoolExecutor(PART_READERS) as readers:
            tables = list(readers.map(lambda path: _read_part_table(path, schema), paths))
    return pa.concat_tables(tables).to_pandas().astype(RESULT_COLUMNS)


def _read_part_table(path: Path, schema):
    """One part as an arrow table of `schema` (read_parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as part:       # (half the time of pq.read_table for a small part)
            table = part.read()
        _check_columns(set(table.column_names), str(path))
    except (OSError, ValueError) as exc:
        raise SetupError(f"{path} is not a result part raygems can read ({one_line(exc)})") from None
    if "scoring_version" not in table.column_names:
        table = table.append_column("scoring_version", pa.array([LEGACY_SCORING_VERSION] * len(table), pa.string()))
    for column in schema:
        if column.name not in table.column_names:
            absent = pa.scalar(_absent_value(RESULT_COLUMNS[column.name]), column.type)
            table = table.append_column(column.name, pa.repeat(absent, len(table)))
    table = table.select(list(RESULT_COLUMNS)).replace_schema_metadata()   # (pandas' metadata of one part)
    return table if table.schema.equals(schema) else table.cast(schema)


def _absent_value(dtype: str) -> int | None:
    """What an optional column a part lacks reads as (REQUIRED_COLUMNS)."""
    return 0 if dtype.startswith("int") else None


_ARROW_TYPES = {"string": "string", "int8": "int8", "int32": "int32", "float64": "float64"}


def arrow_schema():
    """RESULT_COLUMNS as a pyarrow schema (what pandas writes for the same dtypes)."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, _ARROW_TYPES[dtype])()) for name, dtype in RESULT_COLUMNS.items()])


def served(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows a reader may use (module docstring): scored by their task's current scorer, first write of a key."""
    from raygems.tasks.registry import scoring_version

    current = {task: scoring_version(str(task)) for task in rows["task"].unique()}
    keep = rows["scoring_version"].astype(str).to_numpy() == rows["task"].map(current).astype(str).to_numpy()
    if not keep.all():
        rows = rows[keep]
    duplicated = rows.duplicated(list(KEY), keep="first")
    if duplicated.any():
        rows = rows[~duplicated]
    return rows.reset_index(drop=True)


def _missing_columns(available: Iterable[str]) -> list[str]:
    available = set(available)
    return [c for c in REQUIRED_COLUMNS if c not in available]


def _check_columns(available: Iterable[str], where: str) -> None:
    missing = _missing_columns(available)
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; have {sorted(set(available))}")


# ----------------------------------------------------------------------------------------------- accuracy
def better_variant(correct: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """Index of each task's better prompt variant (module docstring): `correct` and `answered` are counts of shape
    (..., variants), the variants in alphabetical order of their names (so that the first of tied variants is the
    one the rule names). A variant without answers is never the better one of a task that has answers."""
    correct, answered = np.asarray(correct), np.asarray(answered)
    accuracy = np.divide(correct, answered, out=np.full(correct.shape, -1.0), where=answered > 0)
    best = np.zeros(correct.shape[:-1], dtype=np.int64)
    best_accuracy, best_answered = accuracy[..., 0], answered[..., 0]
    for v in range(1, correct.shape[-1]):
        better = (accuracy[..., v] > best_accuracy) | ((accuracy[..., v] == best_accuracy)
                                                        & (answered[..., v] > best_answered))
        best = np.where(better, v, best)
        best_accuracy = np.where(better, accuracy[..., v], best_accuracy)
        best_answered = np.where(better, answered[..., v], best_answered)
    return best


def best_variant_counts(correct: np.ndarray, answered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct answers, answers) of each task's better prompt variant (`better_variant`'s arrays and order)."""
    correct, answered = np.asarray(correct), np.asarray(answered)
    best = better_variant(correct, answered)[..., None]
    return np.take_along_axis(correct, best, -1)[..., 0], np.take_along_axis(answered, best, -1)[..., 0]


def accuracy_table(rows: pd.DataFrame, aggregate: str | None = None, min_queries: int = 1) -> pd.DataFrame:
    """Per (model_id, revision, task), in the order they first appear in `rows`: the better prompt variant's
    `accuracy`, its `correct` and `n_queries` (answers), and the `variant`. `rows`: result rows (missing rewards
    are skipped). With `aggregate`, each model also gets a row for the task of that name: its accuracy over all its
    tasks, each with its own better variant (`variant` is that variant when every task has the same, else
    "mixed"). Scores from fewer than `min_queries` answers are left out (a task's: its better variant is chosen
    among the variants with enough answers)."""
    if min_queries < 1:
        raise ValueError(f"min_queries must be at least 1, got {min_queries}")
    rows = rows[["model_id", "revision", "task", "variant", "reward"]].copy()
    rows["reward"] = pd.to_numeric(rows["reward"], errors="coerce")
    rows = rows[rows["reward"].notna()]
    rows["revision"] = rows["revision"].fillna("main").astype(str)
    rows["variant"] = rows["variant"].fillna("default").astype(str)
    rows["task"] = rows["task"].astype(str)
    counts = (rows.groupby(["model_id", "revision", "task", "variant"], sort=False)["reward"]
              .agg(correct="sum", answered="count"))
    first_seen = pd.MultiIndex.from_frame(rows[["model_id", "revision", "task"]].drop_duplicates())
    correct = counts["correct"].unstack("variant", fill_value=0).sort_index(axis=1).reindex(first_seen)
    answered = counts["answered"].unstack("variant", fill_value=0).reindex_like(correct).fillna(0)
    variants = np.asarray(correct.columns, dtype=object)
    correct_v, answered_v = correct.to_numpy(dtype=np.int64), answered.to_numpy(dtype=np.int64)

    def best_of(enough: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counted = np.where(enough, answered_v, 0)
        best = better_variant(np.where(enough, correct_v, 0), counted)[:, None]
        return (np.take_along_axis(correct_v, best, 1)[:, 0], np.take_along_axis(counted, best, 1)[:, 0],
                variants[best[:, 0]])

    task_correct, task_answered, task_variant = best_of(answered_v >= min_queries)
    per_task = correct.index.to_frame(index=False).assign(correct=task_correct, n_queries=task_answered,
                                                          variant=task_variant)
    per_task = per_task[per_task["n_queries"] > 0]
    frames = [per_task]
    if aggregate is not None:
        all_correct, all_answered, all_variant = best_of(answered_v > 0)
        everything = correct.index.to_frame(index=False).assign(correct=all_correct, n_queries=all_answered,
                                                                variant=all_variant)
        whole = everything.groupby(["model_id", "revision"], sort=False).agg(
            correct=("correct", "sum"), n_queries=("n_queries", "sum"),
            variant=("variant", lambda v: v.iloc[0] if v.nunique() == 1 else "mixed")).reset_index()
        frames.append(whole[whole["n_queries"] >= min_queries].assign(task=aggregate))
    table = pd.concat(frames, ignore_index=True)
    table["accuracy"] = table["correct"] / table["n_queries"]
    return table[["model_id", "revision", "task", "accuracy", "correct", "n_queries", "variant"]]


def tree_revisions(tree: pd.DataFrame | None) -> dict[str, str] | None:
    """The revision per model a tree table names (None without a tree, or a tree without revisions): what
    `one_revision_per_model` prefers."""
    return None if tree is None or "revision" not in tree else dict(zip(tree["model_id"], tree["revision"]))


def one_revision_per_model(rows: pd.DataFrame, revisions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The rows of one revision per model: `revisions[model_id]` (the tree's) when it has rows, else the revision
    with the most rows (the first in alphabetical order on a tie)."""
    rows = rows.assign(revision=rows["revision"].fillna("main").astype(str))
    counts = rows.groupby(["model_id", "revision"]).size()
    wanted: dict[str, str] = {}
    revisions = revisions or {}
    for model_id, per_revision in counts.groupby(level=0):
        per_revision = per_revision.droplevel(0)
        preferred = revisions.get(model_id)
        wanted[model_id] = preferred if preferred in per_revision.index else str(per_revision.idxmax())
    return rows[rows["revision"] == rows["model_id"].map(wanted)]
