"""The ``Task`` interface and the query record every task produces.

A query record is a plain dict, JSON- and parquet-friendly:

=================  ==========================================================================
``query_id``       stable string, ``<task>/<id>`` (e.g. ``gsm8k/0042``, ``mbpp/11``)
``task``           the task's registry name
``source_id``      the dataset's own id as a string (MBPP task_id, ARC id, Winogrande qID, ...)
``messages``       ``[{"role": "user", "content": ...}]``: the zero-shot prompt, no system turn
``reference``      what a correct answer must match: option letter, option number, final number,
                   or MBPP's test code
``max_new_tokens`` the task's generation limit (50 or 512)
``stop``           the task's stop strings (list)
``meta``           task-specific extras (option texts and labels, MMLU subject, MBPP's reference
                   solution, ...): a dict, JSON-encoded in query-pool tables
=================  ==========================================================================
"""
from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

QUERY_KEYS = ("query_id", "task", "source_id", "messages", "reference", "max_new_tokens", "stop", "meta")
_JSON_FIELDS = ("messages", "stop", "meta")
EXTRA_COLUMN = "extra"  # query-pool column holding a record's non-standard keys as JSON


def make_query(task: str, local_id: str, *, source_id: Any, prompt: str, reference: str,
               max_new_tokens: int, stop: tuple[str, ...], meta: dict | None = None) -> dict:
    """One query record (see the module docstring)."""
    return {
        "query_id": f"{task}/{local_id}",
        "task": task,
        "source_id": str(source_id),
        "messages": [{"role": "user", "content": prompt}],
        "reference": str(reference),
        "max_new_tokens": int(max_new_tokens),
        "stop": list(stop),
        "meta": dict(meta or {}),
    }


def as_query(record: Mapping) -> dict:
    """A query record in memory form: ``messages``, ``stop`` and ``meta`` decoded where they arrive as
    JSON strings (rows of a query-pool table), numpy arrays turned into lists, and a pool row's
    ``extra`` column (JSON of the record's other keys) merged back in."""
    query = dict(record)
    extra = query.pop(EXTRA_COLUMN, None)
    if isinstance(extra, (str, bytes)):
        extra = json.loads(extra)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            query.setdefault(key, value)
    for key in _JSON_FIELDS:
        value = query.get(key)
        if isinstance(value, (str, bytes)):
            query[key] = json.loads(value)
        elif value is not None and hasattr(value, "tolist"):
            query[key] = value.tolist()
    return query


class Task(ABC):
    """A benchmark: its queries and how to score a completion of one.

    Subclasses set ``name``, ``max_new_tokens`` and ``stop`` and implement ``load`` and ``score``.
    Constructors only store their arguments; data is read by ``load``.
    """

    name: str = ""
    max_new_tokens: int = 50
    stop: tuple[str, ...] = ()
    #: Scoring runs model-written code (in the sandbox, only where the user allowed it: raygems.tasks.sandbox).
    executes_code: bool = False
    #: Recorded with every result; bump it when a change to `score` makes earlier verdicts untrustworthy: results
    #: scored by another version are not served from a result store (they are evaluated again).
    scoring_version: str = "1"
    #: What raygems knows about the benchmark besides how to run it (`raygems.tasks.info`): what it asks, the
    #: skill a model card must document for it, and the chance of a correct answer by guessing; None: unknown.
    description: str | None = None
    skill_family: str | None = None
    guess_rate: float | None = None

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        """`get_task(name, data_dir)` builds a task as `cls(data_dir=data_dir, **options)`: a task that reads no
        files (or takes no options) needs no constructor of its own."""
        self.data_dir = data_dir

    @abstractmethod
    def load(self) -> list[dict]:
        """Every item of the test split as a query record."""

    @abstractmethod
    def score(self, query: Mapping, completion: str) -> int:
        """1 when ``completion`` answers ``query`` correctly, else 0. Never raises on model output."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
