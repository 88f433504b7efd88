"""GSM8K (grade-school math word problems), test split: 1,319 problems with a numeric answer.

Local: ``gsm8k/test.jsonl`` (OpenAI's grade-school-math release; the answer is a worked solution
ending in ``#### N``). Hub: ``openai/gsm8k``, ``main/test-00000-of-00001.parquet`` (same rows and
order). The reference is N without thousands separators; query ids are ``gsm8k/<row>``.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from raygems.tasks.base import as_query, make_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, LOCATION, BenchmarkTask
from raygems.tasks.registry import register_task
from raygems.tasks.scoring import score_number
from raygems.tasks.sources import read_jsonl, read_parquet_rows

# The fields every row must have, locally and on the hub (raygems.tasks.sources.check_fields).
FIELDS = {"question": str, "answer": str}


def gsm8k_prompt(question: str) -> str:
    return (
        "Solve the following math problem. Think step by step, then give the final answer as a "
        'number on the last line in the form "#### N".\n\n'
        f"Problem: {question.strip()}"
    )


def final_number(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, without thousands separators."""
    if "####" not in solution:
        raise ValueError(f"GSM8K solution without '####': {solution[-80:]!r}")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


@register_task("gsm8k")
class GSM8K(BenchmarkTask):
    name = "gsm8k"
    description = ("Grade-school math word problems solved with multi-step arithmetic "
                   "reasoning; exact numeric answer.")
    skill_family = "math"
    guess_rate = 0.0
    max_new_tokens = 512
    stop = (FALLBACK_TURN_STOP,)
    local_folder = "gsm8k"
    local_files = ("test.jsonl",)
    hub_repo = "openai/gsm8k"
    hub_files = ("main/test-00000-of-00001.parquet",)

    def items_from_local(self, folder: Path) -> list[dict]:
        rows = read_jsonl(folder / "test.jsonl", FIELDS)
        return [{"row": i, "question": r["question"], "solution": r["answer"], LOCATION: where}
                for i, (where, r) in enumerate(rows)]

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        return [{"row": i, "question": r["question"], "solution": r["answer"], LOCATION: f"{paths[0]}, row {i}"}
                for i, r in enumerate(read_parquet_rows(paths[0], FIELDS))]

    def to_query(self, item: dict) -> dict:
        return make_query(
            self.name, f"{item['row']:04d}", source_id=item["row"],
            prompt=gsm8k_prompt(item["question"]), reference=final_number(item["solution"]),
            max_new_tokens=self.max_new_tokens, stop=self.stop,
            meta={"solution": item["solution"]},
        )

    def score(self, query: Mapping, completion: str) -> int:
        return score_number(completion, as_query(query)["reference"])
