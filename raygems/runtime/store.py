"""The result store: every (model revision, query, prompt variant) evaluated, as append-only parquet.

Layout of a store directory:

    DIR/results/part-<time>-<id>.parquet     one file per write (atomic: written to a temp name, then renamed)
    DIR/failures/part-<time>-<id>.parquet    checkpoints that could not be downloaded, loaded or run

Nothing is ever rewritten in place, so a crash (of an actor or of the driver) loses at most the write in
flight, and never what was recorded (`raygems.files`: a full disk raises `DiskFull`, never a torn
part). A key seen twice (two writers raced) keeps its first row. Open the results in pandas with
`ResultStore(DIR).results()` or `raygems.results.read_results(DIR)`.

The schema (`KEY`, `RESULT_COLUMNS`), which rows are served (rows of an older scorer are kept on disk but not
served: `results()` and the driver's lookups skip them, so the search evaluates those pairs again) and the one
definition of a model's accuracy live in `raygems.results`.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raygems.files import atomic_write, write_parquet
from raygems.results import (FAILURE_COLUMNS, KEY, PROMPT_VARIANTS, RESULT_COLUMNS, SCORE_COLUMNS, arrow_schema,
                             read_part, read_parts, served)


def new_part_name() -> str:
    """A part's file name: sorted by when it was written, unique across processes (`part-<ns>-<random>.parquet`)."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


@dataclass(frozen=True)
class Failure:
    model_id: str
    revision: str
    stage: str      # "fetch" | "load" | "generate"
    reason: str


class ResultStore:
    """Append-only parquet store keyed by (model_id, revision, query_id, variant)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.results_dir = self.root / "results"
        self.failures_dir = self.root / "failures"
        self._lock = threading.Lock()
        self._cache: pd.DataFrame | None = None
        self._cache_files: frozenset[str] = frozenset()

    # -------------------------------------------------------------------------------------------- writing
    def put(self, rows: Iterable[dict] | pd.DataFrame) -> int:
        """Append result rows; returns how many were written. Rows need every column of RESULT_COLUMNS
        except `recorded_at` (filled in) and `scoring_version` (the task's current one when absent)."""
        frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
        if frame.empty:
            return 0
        self.write_results(frame)
        return len(frame)

    def put_rows(self, rows: list[dict]) -> Path:
        """Append result rows (dicts with every column of RESULT_COLUMNS but `recorded_at`) as one part, built
        with pyarrow directly (no pandas: this is every model actor's write per batch); returns the part's path."""
        import pyarrow as pa

        if not rows:
            raise ValueError("no result rows to write")
        keys = {(row["model_id"], row["revision"], row["query_id"], row["variant"]) for row in rows}
        if len(keys) != len(rows):
            raise ValueError("a write holds the same (model_id, revision, query_id, variant) twice")
        now = time.time()
        columns = {name: [row[name] if name != "recorded_at" else now for row in rows] for name in RESULT_COLUMNS}
        table = pa.table(columns, schema=arrow_schema())
        return self._write_table(table)

    def write_results(self, frame: pd.DataFrame) -> Path:
        """Append the rows of `frame` as one part (atomically); returns the part's path."""
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns and c not in ("recorded_at", "scoring_version")]
        if missing:
            raise ValueError(f"result rows lack column(s) {missing}")
        if "scoring_version" not in frame.columns:   # scored now, by the task's current scorer
            from raygems.tasks.registry import scoring_version

            frame = frame.assign(scoring_version=frame["task"].map(lambda task: scoring_version(str(task))))
        if frame.duplicated(list(KEY)).any():
            raise ValueError("a write holds the same (model_id, revision, query_id, variant) twice")
        frame = frame.assign(recorded_at=time.time())[list(RESULT_COLUMNS)].astype(RESULT_COLUMNS)
        return self._write(self.results_dir, frame)

    def put_failure(self, failure: Failure) -> None:
        frame = pd.DataFrame([{**failure.__dict__, "recorded_at": time.time()}]).astype(FAILURE_COLUMNS)
        self._write(self.failures_dir, frame)

    def _write_table(self, table) -> Path:
        """An arrow table of results as a new part (atomically)."""
        import pyarrow.parquet as pq

        return atomic_write(self.results_dir / new_part_name(), lambda tmp: pq.write_table(table, tmp))

    def _write(self, folder: Path, frame: pd.DataFrame) -> Path:
        return write_parquet(folder / new_part_name(), frame)

    # -------------------------------------------------------------------------------------------- reading
    def _parts(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def results(self) -> pd.DataFrame:
        """Every recorded row that is served (first write wins for a repeated key; rows scored by another
        version of their task's scorer left out)."""
        with self._lock:
            parts = self._parts(self.results_dir)
            names = frozenset(p.name for p in parts)
            if self._cache is not None and names == self._cache_files:
                return self._cache
            new = [p for p in parts if p.name not in self._cache_files] if self._cache is not None else parts
            frames = ([self._cache] if self._cache is not None else []) + [served(read_part(p)) for p in new]
            frame = (served(pd.concat(frames, ignore_index=True)) if frames
                     else pd.DataFrame({c: pd.Series(dtype=t) for c, t in RESULT_COLUMNS.items()}))
            self._cache, self._cache_files = frame, names
            return frame

    def part_names(self) -> list[str]:
        """The names of the result parts written so far."""
        return [p.name for p in self._parts(self.results_dir)]

    def rewards(self, arms: Mapping[tuple[str, str], int], query_index: Mapping[str, int],
                parts: Iterable[str] | None = None) -> Iterator[tuple[int, int, int, int]]:
        """(arm, query index, variant index, reward) of every served row of the given models on the given
        queries: `arms` maps (model_id, revision) to an arm, `query_index` query ids to positions. Reads only the
        key and reward columns of the named `parts` (default: all), each once (what the driver loads when a
        search starts)."""
        variant_index = {name: k for k, name in enumerate(PROMPT_VARIANTS)}
        paths = self._parts(self.results_dir) if parts is None else [self.results_dir / name for name in parts]
        for part in paths:
            frame = served(read_part(part, list(SCORE_COLUMNS)))
            for model, revision, query, variant, reward in zip(frame["model_id"], frame["revision"],
                                                              frame["query_id"], frame["variant"], frame["reward"]):
                arm = arms.get((model, revision))
                j = query_index.get(query)
                if arm is not None and j is not None and variant in variant_index:
                    yield arm, j, variant_index[variant], int(reward)

    def failures(self) -> pd.DataFrame:
        parts = self._parts(self.failures_dir)
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FAILURE_COLUMNS.items()})
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return frame.drop_duplicates(["model_id", "revision"], keep="first").reset_index(drop=True)

    def failure_of(self, model_id: str, revision: str) -> Failure | None:
        frame = self.failures()
        hit = frame[(frame["model_id"] == model_id) & (frame["revision"] == revision)]
        if hit.empty:
            return None
        row = hit.iloc[0]
        return Failure(row.model_id, row.revision, row.stage, row.reason)

    def compact(self) -> Path | None:
        """Merge all result parts into one (atomically: the merged file is visible before old parts go). Rows of
        an older scorer are kept (they are kept on disk, only not served), and so is the row of the same key
        scored again by the current scorer: duplicates go per (key, scoring version)."""
        parts = self._parts(self.results_dir)
        if len(parts) <= 1:
            return parts[0] if parts else None
        every = read_parts(parts).drop_duplicates([*KEY, "scoring_version"], keep="first")
        table = _to_arrow(every)
        path = self._write_table(table)
        for part in parts:
            part.unlink()
        with self._lock:
            self._cache, self._cache_files = None, frozenset()
        return path


def settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _to_arrow(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame[list(RESULT_COLUMNS)], schema=arrow_schema(), preserve_index=False)
