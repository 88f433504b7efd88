"""RouterBench's five tasks as one: ARC-Challenge, Winogrande, MMLU, MBPP and GSM8K (the paper's
2,500-query pool is 500 of each; see ``raygems.tasks.pool``).

Each query keeps its own task's name in ``task`` and its own ``max_new_tokens`` and ``stop``;
``score`` hands a query to its own task. ``max_new_tokens``/``stop`` of the composite are the largest
limit and the common stop strings; per-query values are the ones to generate with.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from raygems.tasks.base import Task, as_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP
from raygems.tasks.registry import get_task, register_task

ROUTERBENCH_TASKS = ("arc_challenge", "winogrande", "mmlu", "mbpp", "gsm8k")
#: Queries drawn from each task for the paper's pool (its 2,500 queries: 500 of each RouterBench task).
PAPER_PER_TASK = 500


@register_task("routerbench")
class RouterBench(Task):
    name = "routerbench"
    max_new_tokens = 512
    stop = (FALLBACK_TURN_STOP,)

    def __init__(self, data_dir: str | os.PathLike | None = None, *, downloader=None,
                 revision: str | None = None, allow_code_execution: bool | None = None) -> None:
        self.data_dir = data_dir
        self.downloader = downloader
        self.revision = revision
        self.allow_code_execution = allow_code_execution
        self._subtasks: dict[str, Task] = {}

    def subtask(self, name: str) -> Task:
        """The member task ``name`` (one of ``ROUTERBENCH_TASKS``)."""
        if name not in ROUTERBENCH_TASKS:
            raise ValueError(f"{name!r} is not a RouterBench task; expected one of {ROUTERBENCH_TASKS}")
        if name not in self._subtasks:
            options = {"downloader": self.downloader, "revision": self.revision}
            if name == "mbpp":
                options["allow_code_execution"] = self.allow_code_execution
            self._subtasks[name] = get_task(name, self.data_dir, **options)
        return self._subtasks[name]

    def load(self) -> list[dict]:
        return [query for name in ROUTERBENCH_TASKS for query in self.subtask(name).load()]

    def score(self, query: Mapping, completion: str) -> int:
        query = as_query(query)
        return self.subtask(query["task"]).score(query, completion)
