"""MMLU (Hendrycks et al.), test split: 14,042 four-option questions in 57 subjects.

Local: ``mmlu/test/<subject>_test.csv`` (the original release: no header; question, A, B, C, D,
answer letter). Hub: ``cais/mmlu``, ``all/test-00000-of-00001.parquet`` (question, subject, choices,
answer index). Query ids are ``mmlu/<subject>/<row>`` (row within the subject's file, from 0): MMLU
has no ids of its own, and the hub's ``all`` table keeps each subject's rows in file order.
"""
from __future__ import annotations

import csv
from pathlib import Path

from raygems.tasks.base import make_query
from raygems.errors import UsageError
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, LOCATION
from raygems.tasks.multiple_choice import LETTERS, MultipleChoiceTask, lettered_question_prompt
from raygems.tasks.registry import register_task
from raygems.tasks.sources import read_parquet_rows

SUFFIX = "_test.csv"
# The fields the hub's rows must have (raygems.tasks.sources.check_fields).
HUB_FIELDS = {"subject": str, "question": str, "choices": [str], "answer": int}


@register_task("mmlu")
class MMLU(MultipleChoiceTask):
    name = "mmlu"
    description = ("Multiple-choice knowledge questions across 57 academic subjects from "
                   "elementary to professional level.")
    skill_family = "knowledge"
    guess_rate = 0.25
    stop = (FALLBACK_TURN_STOP,)
    local_folder = "mmlu"
    local_files = ("test/*_test.csv",)
    hub_repo = "cais/mmlu"
    hub_files = ("all/test-00000-of-00001.parquet",)

    def items_from_local(self, folder: Path) -> list[dict]:
        items = []
        for path in sorted((folder / "test").glob(f"*{SUFFIX}")):
            subject = path.name[: -len(SUFFIX)]
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                try:
                    for row_number, row in enumerate(reader):
                        where = f"{path}, line {reader.line_num}"
                        if len(row) != 6:
                            raise UsageError(f"{where}: expected 6 columns (question, A, B, C, D, answer), "
                                             f"got {len(row)}")
                        items.append({"subject": subject, "row": row_number, "question": row[0],
                                      "choices": row[1:5], "answer": row[5].strip(), LOCATION: where})
                except UnicodeDecodeError as exc:
                    raise UsageError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
                except csv.Error as exc:
                    raise UsageError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
        return items

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        items, rows_seen = [], {}
        for i, row in enumerate(read_parquet_rows(paths[0], HUB_FIELDS)):
            subject = row["subject"]
            number = rows_seen.get(subject, 0)
            rows_seen[subject] = number + 1
            where = f"{paths[0]}, row {i}"
            if not 0 <= row["answer"] < len(row["choices"]):
                raise UsageError(f"{where}: answer index {row['answer']} is not one of the "
                                 f"{len(row['choices'])} choices")
            items.append({"subject": subject, "row": number, "question": row["question"],
                          "choices": list(row["choices"]), "answer": LETTERS[int(row["answer"])],
                          LOCATION: where})
        return items

    def to_query(self, item: dict) -> dict:
        labels = list(LETTERS[: len(item["choices"])])
        if item["answer"] not in labels:
            raise ValueError(f"MMLU {item['subject']} row {item['row']}: bad answer {item['answer']!r}")
        subject = item["subject"].replace("_", " ")
        local_id = f"{item['subject']}/{item['row']:03d}"
        return make_query(
            self.name, local_id, source_id=local_id,
            prompt=lettered_question_prompt(
                item["question"], item["choices"],
                f"Answer the following multiple-choice question about {subject}."),
            reference=item["answer"], max_new_tokens=self.max_new_tokens, stop=self.stop,
            meta={"choices": list(item["choices"]), "labels": labels, "subject": item["subject"]},
        )
