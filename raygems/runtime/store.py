"""The result store: every (model revision, query, prompt variant) evaluated, as append-only parquet.

Layout of a store directory:

    DIR/results/part-<time>-<id>.parquet     one file per write (atomic: written to a temp name, then renamed)
    DIR/failures/part-<time>-<id>.parquet    checkpoints that could not be downloaded, loaded or run

Nothing is ever rewritten in place, so a crash (of an actor or of the driver) loses at most the write in
flight, and never what was recorded. A key seen twice (two writers raced) keeps its first row. Open the
results in pandas with `ResultStore(DIR).results()` or simply `pd.read_parquet(DIR / "results")`.

Every row records the `scoring_version` of its task's scorer. Rows scored by another version than the task's
current one (e.g. MBPP verdicts of the raygems 0.1 sandbox, which wrong programs could pass, or rows written
before the column existed, read as version "1") are kept on disk but not served: `results()` and the driver's
lookups skip them, so the search evaluates those pairs again.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from raygems.tasks.prompting import PROMPT_VARIANTS as VARIANT_NAMES  # ("system", "plain")

KEY = ("model_id", "revision", "query_id", "variant")
RESULT_COLUMNS = {
    "model_id": "string", "revision": "string", "query_id": "string", "variant": "string", "task": "string",
    "reward": "int8", "generation": "string", "prompt_tokens": "int32", "completion_tokens": "int32",
    "latency_s": "float64", "backend": "string", "backend_settings": "string", "pool_hash": "string",
    "scoring_version": "string", "recorded_at": "float64",
}
#: What a row written before `scoring_version` existed counts as.
LEGACY_SCORING_VERSION = "1"
FAILURE_COLUMNS = {"model_id": "string", "revision": "string", "stage": "string", "reason": "string",
                   "recorded_at": "float64"}


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
        # reward index for the driver: (model_id, revision) -> {(query_id, variant): (task, reward)}
        self._rewards: dict[tuple[str, str], dict[tuple[str, str], tuple[str, int]]] = {}
        self._indexed_files: set[str] = set()

    # -------------------------------------------------------------------------------------------- writing
    def put(self, rows: Iterable[dict] | pd.DataFrame) -> int:
        """Append result rows; returns how many were written. Rows need every column of RESULT_COLUMNS
        except `recorded_at` (filled in) and `scoring_version` (the task's current one when absent)."""
        frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
        if frame.empty:
            return 0
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns and c not in ("recorded_at", "scoring_version")]
        if missing:
            raise ValueError(f"result rows lack column(s) {missing}")
        if "scoring_version" not in frame.columns:   # scored now, by the task's current scorer
            from raygems.tasks.registry import scoring_version

            frame["scoring_version"] = frame["task"].map(lambda task: scoring_version(str(task)))
        frame["recorded_at"] = time.time()
        if frame.duplicated(list(KEY)).any():
            raise ValueError("a write holds the same (model_id, revision, query_id, variant) twice")
        frame = frame[list(RESULT_COLUMNS)].astype(RESULT_COLUMNS)
        self._write(self.results_dir, frame)
        return len(frame)

    def put_failure(self, failure: Failure) -> None:
        frame = pd.DataFrame([{**failure.__dict__, "recorded_at": time.time()}]).astype(FAILURE_COLUMNS)
        self._write(self.failures_dir, frame)

    def _write(self, folder: Path, frame: pd.DataFrame) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:  # make the bytes durable before the rename makes them visible
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        return folder / name

    # -------------------------------------------------------------------------------------------- reading
    def _parts(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def results(self) -> pd.DataFrame:
        """Every recorded row (first write wins for a repeated key)."""
        with self._lock:
            parts = self._parts(self.results_dir)
            names = frozenset(p.name for p in parts)
            if self._cache is not None and names == self._cache_files:
                return self._cache
            new = [p for p in parts if p.name not in self._cache_files] if self._cache is not None else parts
            frames = ([self._cache] if self._cache is not None else []) + [_current(_read_part(p)) for p in new]
            frame = (pd.concat(frames, ignore_index=True) if frames
                     else pd.DataFrame({c: pd.Series(dtype=t) for c, t in RESULT_COLUMNS.items()}))
            frame = frame.drop_duplicates(list(KEY), keep="first").reset_index(drop=True)
            self._cache, self._cache_files = frame, names
            return frame

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

    def known_rewards(self, model_id: str, revision: str, query_ids: Iterable[str]) -> pd.DataFrame:
        """Recorded (query_id, variant, task, reward) of one model for the given queries.

        Served from an in-memory index that reads each new part once (only the key, task and reward columns),
        so the driver's per-round lookups stay cheap however large the store grows.
        """
        self._refresh_index()
        known = self._rewards.get((model_id, revision), {})
        rows = []
        for query_id in dict.fromkeys(query_ids):
            for variant in VARIANT_NAMES:
                entry = known.get((query_id, variant))
                if entry is not None:
                    rows.append((query_id, variant, entry[0], entry[1]))
        return pd.DataFrame(rows, columns=["query_id", "variant", "task", "reward"])

    def _refresh_index(self) -> None:
        with self._lock:
            for part in self._parts(self.results_dir):
                if part.name in self._indexed_files:
                    continue
                frame = _current(_read_part(part, ["model_id", "revision", "query_id", "variant", "task", "reward",
                                                   "scoring_version"]))
                for m, r, q, v, t, w, _ in frame.itertuples(index=False, name=None):
                    self._rewards.setdefault((m, r), {}).setdefault((q, v), (t, int(w)))   # first write wins
                self._indexed_files.add(part.name)

    def compact(self) -> Path | None:
        """Merge all result parts into one (atomically: the merged file is visible before old parts go)."""
        parts = self._parts(self.results_dir)
        if len(parts) <= 1:
            return parts[0] if parts else None
        merged = self.results()
        path = self._write(self.results_dir, merged.astype(RESULT_COLUMNS))
        for part in parts:
            part.unlink()
        with self._lock:
            self._cache, self._cache_files = None, frozenset()
        return path


def settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _read_part(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One result part; a part written before `scoring_version` existed gets the legacy version."""
    import pyarrow.parquet as pq

    available = set(pq.read_schema(path).names)
    wanted = [c for c in (columns or RESULT_COLUMNS) if c in available]
    frame = pd.read_parquet(path, columns=wanted)
    if "scoring_version" not in frame.columns:
        frame["scoring_version"] = LEGACY_SCORING_VERSION
    return frame


def _current(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows scored by their task's current scorer (see the module docstring)."""
    from raygems.tasks.registry import scoring_version

    current = {task: scoring_version(task) for task in frame["task"].unique()}
    keep = frame["scoring_version"].astype(str).to_numpy() == frame["task"].map(current).astype(str).to_numpy()
    return frame if keep.all() else frame[keep].reset_index(drop=True)

