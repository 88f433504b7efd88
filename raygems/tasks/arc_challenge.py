"""ARC-Challenge (AI2 Reasoning Challenge, challenge set), test split: 1,172 grade-school science
questions with 3-5 options.

Local: ``arc_challenge/ARC-Challenge-Test.jsonl`` (AI2's ARC-V1-Feb2018 release). Hub:
``allenai/ai2_arc``, ``ARC-Challenge/test-00000-of-00001.parquet``. 22 questions label their options
1-4 instead of A-D; they are shown and scored as letters like the rest (``meta["source_labels"]`` keeps
the original labels).
"""
from __future__ import annotations

from pathlib import Path

from raygems.tasks.base import make_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, LOCATION
from raygems.tasks.multiple_choice import LETTERS, MultipleChoiceTask, lettered_question_prompt
from raygems.tasks.registry import register_task
from raygems.tasks.sources import read_jsonl, read_parquet_rows

INTRO = "Answer the following multiple-choice science question."

# The fields each source's rows must have (raygems.tasks.sources.check_fields).
LABEL = (str, int)
LOCAL_FIELDS = {"id": (str, int), "question": {"stem": str, "choices": [{"text": str, "label": LABEL}]},
                "answerKey": LABEL}
HUB_FIELDS = {"id": (str, int), "question": str, "answerKey": LABEL,
              "choices": {"text": [str], "label": [LABEL]}}


@register_task("arc_challenge")
class ArcChallenge(MultipleChoiceTask):
    name = "arc_challenge"
    description = ("Grade-school science questions, multiple choice, the hard subset of "
                   "the AI2 Reasoning Challenge.")
    skill_family = "arc"
    guess_rate = 0.25
    stop = (FALLBACK_TURN_STOP,)
    local_folder = "arc_challenge"
    local_files = ("ARC-Challenge-Test.jsonl",)
    hub_repo = "allenai/ai2_arc"
    hub_files = ("ARC-Challenge/test-00000-of-00001.parquet",)

    def items_from_local(self, folder: Path) -> list[dict]:
        items = []
        for where, row in read_jsonl(folder / "ARC-Challenge-Test.jsonl", LOCAL_FIELDS):
            question = row["question"]
            items.append({
                "id": row["id"],
                "question": question["stem"],
                "choices": [c["text"] for c in question["choices"]],
                "labels": [c["label"] for c in question["choices"]],
                "answer": row["answerKey"],
                LOCATION: where,
            })
        return items

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        return [
            {"id": row["id"], "question": row["question"], "choices": list(row["choices"]["text"]),
             "labels": list(row["choices"]["label"]), "answer": row["answerKey"], LOCATION: f"{paths[0]}, row {i}"}
            for i, row in enumerate(read_parquet_rows(paths[0], HUB_FIELDS))
        ]

    def to_query(self, item: dict) -> dict:
        source_labels = [str(label) for label in item["labels"]]
        if str(item["answer"]) not in source_labels:
            raise ValueError(f"ARC item {item['id']}: answer {item['answer']!r} not among {source_labels}")
        labels = list(LETTERS[: len(source_labels)])
        reference = labels[source_labels.index(str(item["answer"]))]
        return make_query(
            self.name, item["id"], source_id=item["id"],
            prompt=lettered_question_prompt(item["question"], item["choices"], INTRO),
            reference=reference, max_new_tokens=self.max_new_tokens, stop=self.stop,
            meta={"choices": list(item["choices"]), "labels": labels, "source_labels": source_labels},
        )
