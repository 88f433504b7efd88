"""MBPP (Mostly Basic Python Problems), test split: task_id 11-510 (500 problems).

Local: ``mbpp/mbpp.jsonl`` (google-research's full release, task_id 1-974; the test split is
11-510 as its README specifies). Hub: ``google-research-datasets/mbpp``,
``full/test-00000-of-00001.parquet`` (the same 500 rows). The prompt shows the problem and its three
asserts (so the model knows the function's name and signature) and asks for a fenced Python block.

Scoring runs the extracted code followed by the reference test code (``test_setup_code`` and the
asserts) in the sandbox (``raygems.tasks.sandbox``): 1 when the program exits with status 0 within
the limits after running every assert. Code execution is opt-in (``allow_code_execution=True`` or
``RAYGEMS_ALLOW_CODE_EXECUTION=1``); without it ``score`` warns once and returns 0.
"""
from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path

from raygems.tasks.base import as_query, make_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, BenchmarkTask
from raygems.tasks.registry import register_task
from raygems.tasks.sandbox import (CodeExecutionDisabled, SandboxLimits, SandboxResult,
                                   code_execution_enabled, run_program)
from raygems.tasks.scoring import extract_code
from raygems.tasks.sources import Downloader, read_parquet_rows

TEST_TASK_IDS = range(11, 511)
# 8 s of wall (and CPU) time: MBPP's slowest reference solution (task 123) needs 2-7 s on a loaded
# 2-core machine, and an adversarial program is still stopped within 10 s.
DEFAULT_LIMITS = SandboxLimits(timeout_s=8.0, memory_mb=1024)
_warned_disabled = False


def mbpp_prompt(text: str, tests: list[str]) -> str:
    asserts = "\n".join(test.strip() for test in tests)
    return (
        "Write a Python function for the following task.\n\n"
        f"Task: {text.strip()}\n\n"
        f"Your code should pass these tests:\n{asserts}\n\n"
        "Answer with the complete function in a single ```python fenced code block."
    )


def mbpp_test_program(code: str, reference: str, sentinel: str) -> str:
    """The program the sandbox runs: the model's code, the reference test code, then a line that
    prints ``sentinel`` (a fresh random token): a program only passes when it gets that far, so code
    that exits early with status 0 (``sys.exit(0)`` in a main block, ``os._exit(0)``) does not skip
    the asserts."""
    return f"{code.rstrip()}\n\n\n{reference}\n\nprint({sentinel!r})\n"


def _warn_disabled_once() -> None:
    global _warned_disabled
    if not _warned_disabled:
        _warned_disabled = True
        warnings.warn(f"MBPP completions score 0: {CodeExecutionDisabled()}", RuntimeWarning, stacklevel=3)


@register_task("mbpp")
class MBPP(BenchmarkTask):
    name = "mbpp"
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
        with open(folder / "mbpp.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return [row for row in rows if int(row["task_id"]) in TEST_TASK_IDS]

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        rows = read_parquet_rows(paths[0])
        return [row for row in rows if int(row["task_id"]) in TEST_TASK_IDS]

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

    def run(self, query: Mapping, completion: str) -> SandboxResult | None:
        """The sandbox's report on a completion (None when no code could be extracted).
        Raises CodeExecutionDisabled when code execution is not enabled."""
        if not code_execution_enabled(self.allow_code_execution):
            raise CodeExecutionDisabled()
        code = extract_code(completion)
        if not code.strip():
            return None
        sentinel = f"raygems-tests-done-{secrets.token_hex(16)}"
        program = mbpp_test_program(code, as_query(query)["reference"], sentinel)
        # not "__main__": a completion's `if __name__ == "__main__":` block (input(), unittest.main(), ...) is
        # skipped, as when a harness imports the solution; the tests below it still run at module level
        result = run_program(program, allow=True, limits=self.limits, run_name="solution")
        if result.passed and not result.stdout.rstrip().endswith(sentinel):
            result.passed, result.reason = False, "exited-early"
        return result

    def score(self, query: Mapping, completion: str) -> int:
        try:
            result = self.run(query, completion)
        except CodeExecutionDisabled:
            _warn_disabled_once()
            return 0
        return int(result is not None and result.passed)
