"""Query pools: the fixed, seeded sample of queries a search or an evaluation runs on.

``build_query_pool(["routerbench"], per_task=500, seed=0)`` is the paper's 2,500-query pool: 500
queries drawn at random from each of RouterBench's five tasks (Appendix C: "queries within each task
are selected via random sampling"). Sampling is stratified by task (the same number from each task,
whatever its size) and, optionally, within a task by a ``meta`` field (``stratify_by="subject"``
spreads MMLU's share over its 57 subjects in proportion).

The pool's ``content_hash`` is a SHA-256 over the query ids in sorted order and every query's
content (prompt messages, reference, limits, extras): two pools with the same hash ask the same
questions the same way, so their results can be compared or merged. It does not depend on the seed
or on where the data was read from, only on what was drawn.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.errors import UsageError
from raygems.registry import as_names
from raygems.tasks.base import EXTRA_COLUMN, as_query
from raygems.tasks.registry import get_task
from raygems.tasks.routerbench import PAPER_PER_TASK

POOL_COLUMNS = ("query_id", "task", "source_id", "messages", "reference", "max_new_tokens", "stop", EXTRA_COLUMN)
_STANDARD_KEYS = set(POOL_COLUMNS) - {EXTRA_COLUMN}
_METADATA_KEY = b"raygems.query_pool"
FORMAT_VERSION = 1


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def content_hash(queries: pd.DataFrame) -> str:
    """SHA-256 over the pool's queries sorted by id, each as canonical JSON of all its columns."""
    digest = hashlib.sha256()
    ordered = queries.sort_values("query_id", kind="stable")
    for row in ordered.itertuples(index=False):
        record = row._asdict()
        content = [record["query_id"], record["task"], record["source_id"], json.loads(record["messages"]),
                   record["reference"], int(record["max_new_tokens"]), json.loads(record["stop"]),
                   json.loads(record[EXTRA_COLUMN])]
        digest.update(_canonical(content).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _row(query: dict, default_max_new_tokens: int, default_stop: Sequence[str]) -> dict:
    extra = {key: value for key, value in query.items() if key not in _STANDARD_KEYS}
    return {
        "query_id": str(query["query_id"]),
        "task": str(query["task"]),
        "source_id": str(query["source_id"]),
        "messages": _canonical(list(query["messages"])),
        "reference": str(query["reference"]),
        "max_new_tokens": int(query.get("max_new_tokens", default_max_new_tokens)),
        "stop": _canonical(list(query.get("stop", default_stop))),
        EXTRA_COLUMN: _canonical(extra),
    }


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over strata in proportion to their sizes (largest remainders; ties by name)."""
    population = sum(sizes.values())
    exact = {key: total * size / population for key, size in sizes.items()}
    counts = {key: int(np.floor(value)) for key, value in exact.items()}
    leftover = total - sum(counts.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[:leftover]:
        counts[key] += 1
    return counts


def sample_queries(queries: list[dict], per_task: int | None, seed: int, task: str,
                   stratify_by: str | None = None) -> list[dict]:
    """``per_task`` queries of one task drawn without replacement (all of them when ``per_task`` is
    None or at least their number), kept in the dataset's order. The draw depends only on ``seed``,
    the task name and the queries' ids, not on the order the tasks are listed in."""
    if per_task is None or per_task >= len(queries):
        return list(queries)
    ordered = sorted(queries, key=lambda q: q["query_id"])  # independent of the loader's order
    rng = np.random.default_rng([seed, _stable_int(task)])
    if stratify_by is None:
        chosen = set(rng.choice(len(ordered), size=per_task, replace=False).tolist())
    else:
        strata: dict[str, list[int]] = {}
        for index, query in enumerate(ordered):
            meta = query.get("meta") or {}
            if stratify_by not in meta:
                raise ValueError(f"cannot stratify {task} by {stratify_by!r}: "
                                 f"its queries have no meta[{stratify_by!r}]")
            strata.setdefault(str(meta[stratify_by]), []).append(index)
        counts = _allocate({key: len(members) for key, members in strata.items()}, per_task)
        chosen = set()
        for key in sorted(strata):
            members = strata[key]
            chosen.update(members[i] for i in rng.choice(len(members), size=counts[key], replace=False).tolist())
    picked = {ordered[i]["query_id"] for i in chosen}
    return [q for q in queries if q["query_id"] in picked]


@dataclass
class QueryPool:
    """A table of queries (one row per query, ``POOL_COLUMNS``; ``messages``, ``stop`` and ``extra``
    as JSON strings) with how it was drawn."""

    queries: pd.DataFrame
    tasks: tuple[str, ...] = ()
    per_task: int | None = None
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in POOL_COLUMNS if c not in self.queries.columns]
        if missing:
            raise ValueError(f"query pool table lacks columns {missing}")
        if self.queries["query_id"].duplicated().any():
            dupes = self.queries.loc[self.queries["query_id"].duplicated(), "query_id"].head(5).tolist()
            raise ValueError(f"query pool has duplicate query ids, e.g. {dupes}")
        self.queries = self.queries.reset_index(drop=True)
        self._task_by_id = dict(zip(self.queries["query_id"], self.queries["task"]))
        self._row_by_id = {query_id: i for i, query_id in enumerate(self.queries["query_id"])}
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.queries)
        return self._hash

    @property
    def query_ids(self) -> list[str]:
        return self.queries["query_id"].tolist()

    def task_of(self, query_id: str) -> str:
        """The task a query belongs to."""
        try:
            return self._task_by_id[query_id]
        except KeyError:
            raise KeyError(f"query {query_id!r} is not in this pool") from None

    def query(self, query_id: str) -> dict:
        """One query as a record (messages, stop and extras decoded), ready for ``task.score``."""
        self.task_of(query_id)
        return as_query(self.queries.iloc[self._row_by_id[query_id]].to_dict())

    def records(self) -> list[dict]:
        """Every query as a record, in pool order."""
        return [as_query(row) for row in self.queries.to_dict(orient="records")]

    def counts(self) -> dict[str, int]:
        """Queries per task."""
        return self.queries["task"].value_counts(sort=False).to_dict()

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write the pool (queries + how it was drawn + its content hash) to a parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from raygems.files import atomic_write

        table = pa.Table.from_pandas(self.queries, preserve_index=False)
        info = {"format_version": FORMAT_VERSION, "tasks": list(self.tasks), "per_task": self.per_task,
                "seed": self.seed, "sources": self.sources, "content_hash": self.content_hash,
                "num_queries": len(self)}
        metadata = {**(table.schema.metadata or {}), _METADATA_KEY: _canonical(info).encode()}
        table = table.replace_schema_metadata(metadata)
        return atomic_write(Path(path), lambda temporary: pq.write_table(table, temporary))

    @classmethod
    def from_parquet(cls, path: str | os.PathLike, verify: bool = True) -> QueryPool:
        """Read a pool written by ``to_parquet``; with ``verify``, raise ValueError when its content no
        longer matches the hash stored in it (the file was edited)."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        if _METADATA_KEY not in metadata:
            raise ValueError(f"{path} is not a raygems query pool (no {_METADATA_KEY.decode()} metadata)")
        info = json.loads(metadata[_METADATA_KEY])
        frame = table.to_pandas()
        for column in ("query_id", "task", "source_id", "messages", "reference", "stop", EXTRA_COLUMN):
            frame[column] = frame[column].astype(object)
        frame["max_new_tokens"] = frame["max_new_tokens"].astype("int64")
        pool = cls(frame[list(POOL_COLUMNS)], tasks=tuple(info.get("tasks", ())), per_task=info.get("per_task"),
                   seed=int(info.get("seed", 0)), sources=dict(info.get("sources", {})))
        if verify and pool.content_hash != info.get("content_hash"):
            raise ValueError(f"{path}: content hash {pool.content_hash} does not match the stored "
                             f"{info.get('content_hash')} (the file was modified)")
        return pool


def build_query_pool(task_names: str | Sequence[str], per_task: int | None = PAPER_PER_TASK, seed: int = 0,
                     data_dir: str | os.PathLike | None = None, *, stratify_by: str | None = None,
                     **task_options) -> QueryPool:
    """Draw ``per_task`` queries from each task (``None``: all of them).

    A composite task (``routerbench``) contributes ``per_task`` queries from each of its member tasks.
    ``data_dir`` and ``task_options`` go to ``get_task``.
    """
    names = list(as_names(task_names))
    if not names:
        raise ValueError("task_names must name at least one task")
    if per_task is not None and (not isinstance(per_task, (int, np.integer)) or per_task < 1):
        raise ValueError(f"per_task must be a positive integer or None, got {per_task!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the pool's seed must be a non-negative integer, got {seed!r}")
    if stratify_by is not None and (not isinstance(stratify_by, str) or not stratify_by.strip()):
        raise UsageError(f"stratify_by must name a meta field (e.g. 'subject'), got {stratify_by!r}")
    sources: dict[str, str] = {}
    loaded: list[tuple[str, list[dict], object]] = []   # (task group, its queries, the task that made them)
    for name in names:
        task = get_task(name, data_dir, **task_options)
        groups: dict[str, list[dict]] = {}
        for query in task.load():
            groups.setdefault(str(query["task"]), []).append(query)
        for group, queries in groups.items():
            if group in sources:
                raise ValueError(f"task {group!r} is listed more than once in {names}")
            member = task.subtask(group) if hasattr(task, "subtask") else task
            sources[group] = str(getattr(member, "source", group))
            loaded.append((group, queries, member))
    stratified = {group for group, queries, _ in loaded if group in _stratifiable(queries, stratify_by)}
    if stratify_by is not None and not stratified:
        fields = {group: stratification_fields(queries) for group, queries, _ in loaded}
        usable = "; ".join(f"{group}: {', '.join(f) if f else 'none'}" for group, f in fields.items())
        raise UsageError(f"cannot stratify by {stratify_by!r}: no query of {', '.join(names)} has "
                         f"meta[{stratify_by!r}] (fields each task can be stratified by: {usable})")
    rows: list[dict] = []
    for group, queries, member in loaded:
        strata = stratify_by if group in stratified else None
        chosen = sample_queries(queries, per_task, seed, group, strata)
        rows.extend(_row(q, member.max_new_tokens, member.stop) for q in chosen)
    frame = pd.DataFrame(rows, columns=list(POOL_COLUMNS))
    return QueryPool(frame, tasks=tuple(names), per_task=None if per_task is None else int(per_task),
                     seed=int(seed), sources=sources)


def stratification_fields(queries: list[dict]) -> list[str]:
    """The ``meta`` fields a task's queries can be stratified by: those every query has, with a plain
    value (text or number), that split the queries into at least two groups, each of two or more queries
    on average (MMLU: subject)."""
    if not queries:
        return []
    common = None
    for query in queries:
        meta = query.get("meta") or {}
        keys = {k for k, v in meta.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        common = keys if common is None else common & keys
        if not common:
            return []
    fields = []
    for key in sorted(common):
        distinct = len({str(query["meta"][key]) for query in queries})
        if 2 <= distinct <= len(queries) / 2:
            fields.append(key)
    return fields


def _stratifiable(queries: list[dict], stratify_by: str | None) -> set[str]:
    """The task names among ``queries`` whose records carry ``meta[stratify_by]`` (others are drawn
    without strata: e.g. ``stratify_by="subject"`` applies to MMLU within RouterBench)."""
    if stratify_by is None or not queries:
        return set()
    meta = queries[0].get("meta") or {}
    return {str(queries[0]["task"])} if stratify_by in meta else set()
