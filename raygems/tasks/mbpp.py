"""MBPP (Mostly Basic Python Problems), test split: task_id 11-510 (500 problems).

Local: ``mbpp/mbpp.jsonl`` (google-research's full release, task_id 1-974; the test split is
11-510 as its README specifies). Hub: ``google-research-datasets/mbpp``,
``full/test-00000-of-00001.parquet`` (the same 500 rows). The prompt shows the problem and its three
asserts (so the model knows the function's name and signature) and asks for a fenced Python block.

Scoring (``raygems.tasks.asserts``): the reference test code is split on the host into the calls
into the program (the test's inputs) and the asserts around them (the expected values). The sandbox
(``raygems.tasks.sandbox``) runs the extracted code, the setup code and the calls, and sends back
their values as plain builtin values; the host evaluates the asserts on them. 1 when every assert
holds. The expected values never enter the sandbox, so a program cannot read, skip or fake them.
Code execution is opt-in (``allow_code_execution=True`` or ``RAYGEMS_ALLOW_CODE_EXECUTION=1``);
without it ``score`` raises ``CodeExecutionDisabled`` rather than scoring 0.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from raygems.tasks.asserts import CheckedRun, SplitTests, check_program, split_asserts
from raygems.tasks.base import as_query, make_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, LOCATION, BenchmarkTask
from raygems.tasks.registry import register_task
from raygems.tasks.sandbox import CodeExecutionDisabled, SandboxLimits, code_execution_enabled
from raygems.tasks.scoring import extract_code
from raygems.tasks.sources import Downloader, Maybe, read_jsonl, read_parquet_rows

TEST_TASK_IDS = range(11, 511)
# The fields every row must have, locally and on the hub (raygems.tasks.sources.check_fields).
FIELDS = {"task_id": int, "text": str, "code": str, "test_list": [str], "test_setup_code": Maybe(str)}
# 8 s of wall (and CPU) time: MBPP's slowest reference solution (task 123) needs 2-7 s on a loaded
# 2-core machine, and an adversarial program is still stopped within 10 s.
# 90 MiB for the whole process tree (cgroup; the 500 reference solutions peak at 10.4 MB), so that no answer
# holds 100 MB of the host whatever it forks or writes; each process may still map 1 GiB of address space.
DEFAULT_LIMITS = SandboxLimits(timeout_s=8.0, memory_mb=90, process_memory_mb=1024, disk_mb=32)


def mbpp_prompt(text: str, tests: list[str]) -> str:
    asserts = "\n".join(test.strip() for test in tests)
    return (
        "Write a Python function for the following task.\n\n"
        f"Task: {text.strip()}\n\n"
        f"Your code should pass these tests:\n{asserts}\n\n"
        "Answer with the complete function in a single ```python fenced code block."
    )


def mbpp_tests(query: Mapping) -> SplitTests:
    """The query's test code split into the sandbox's calls and the host's asserts. The reference
    solution (``meta["solution"]``) names the program's functions. Raises UnsupportedTest for a test
    the host cannot decide (none of MBPP's 500 test problems)."""
    query = as_query(query)
    solution = (query.get("meta") or {}).get("solution")
    if not isinstance(solution, str) or not solution.strip():
        raise ValueError(f"query {query.get('query_id')!r} has no meta['solution'] (the reference solution "
                         "names the functions the tests call)")
    return split_asserts(query["reference"], solution)


@register_task("mbpp")
class MBPP(BenchmarkTask):
    name = "mbpp"
    description = ("Mostly basic Python programming problems: write a function that "
                   "passes the given unit tests.")
    skill_family = "code"
    guess_rate = 0.0
    executes_code = True
    scoring_version = "2"   # 2: pass/fail decided outside the program (raygems 0.1 verdicts can be gamed)
    max_new_tokens = 512
    stop = (FALLBACK_TURN_STOP,)
    local_folder = "mbpp"
    local_files = ("mbpp.jsonl",)
    hub_repo = "google-research-datasets/mbpp"
    hub_files = ("full/test-00000-of-00001.parquet",)

    def __init__(self, data_dir: str | os.PathLike | None = None, *, downloader: Downloader | None = None,
                 revision: str | None = None, allow_code_execution: bool | None = None,
                 limits: SandboxLimits = DEFAULT_LIMITS) -> None:
        super().__init__(data_dir, downloader=downloader, revision=revision)
        if not isinstance(limits, SandboxLimits):
            raise TypeError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
        self.allow_code_execution = allow_code_execution
        self.limits = limits

    def items_from_local(self, folder: Path) -> list[dict]:
        rows = read_jsonl(folder / "mbpp.jsonl", FIELDS)
        return [{**row, LOCATION: where} for where, row in rows if int(row["task_id"]) in TEST_TASK_IDS]

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        rows = read_parquet_rows(paths[0], FIELDS)
        return [{**row, LOCATION: f"{paths[0]}, row {i}"} for i, row in enumerate(rows)
                if int(row["task_id"]) in TEST_TASK_IDS]

    def to_query(self, item: dict) -> dict:
        tests = [str(t) for t in item["test_list"]]
        setup = str(item.get("test_setup_code") or "")
        reference = "\n".join(([setup] if setup.strip() else []) + tests)
        return make_query(
            self.name, str(int(item["task_id"])), source_id=int(item["task_id"]),
            prompt=mbpp_prompt(item["text"], tests), reference=reference,
            max_new_tokens=self.max_new_tokens, stop=self.stop,
            meta={"test_list": tests, "test_setup_code": setup, "solution": item["code"]},
        )

    def run(self, query: Mapping, completion: str) -> CheckedRun | None:
        """The verdict on a completion, with the sandbox's report (None when no code could be
        extracted). Raises CodeExecutionDisabled when code execution is not enabled."""
        if not code_execution_enabled(self.allow_code_execution):
            raise CodeExecutionDisabled()
        tests = mbpp_tests(query)
        code = extract_code(completion)
        if not code.strip():
            return None
        # run as "solution", not "__main__": a completion's `if __name__ == "__main__":` block (input(),
        # unittest.main(), ...) is skipped, as when a harness imports the solution
        return check_program(code, tests, self.limits, run_name="solution")

    def score(self, query: Mapping, completion: str) -> int:
        """1 when every test assert holds. Raises CodeExecutionDisabled when code execution is not
        enabled: a silent 0 would look like a wrong answer."""
        result = self.run(query, completion)
        return int(result is not None and result.passed)
