"""WinoGrande (v1.1), development split (the labelled evaluation split): 1,267 fill-in-the-blank
sentences with two options.

Local: ``winogrande/dev.jsonl`` + ``winogrande/dev-labels.lst`` (the original release; the labels file
is the answer key). Hub: ``allenai/winogrande``, ``winogrande_xl/validation-00000-of-00001.parquet``
(same rows, same order, no qID). The options are shown as 1 and 2 and the answer is the number.
Query ids are ``winogrande/<row>`` so that both sources agree; ``source_id`` is the qID where the
source has one (local) and the row number otherwise (hub).
"""
from __future__ import annotations

from pathlib import Path

from raygems.errors import UsageError
from raygems.tasks.base import make_query
from raygems.tasks.benchmark import FALLBACK_TURN_STOP, LOCATION
from raygems.tasks.multiple_choice import MultipleChoiceTask
from raygems.tasks.registry import register_task
from raygems.tasks.sources import read_jsonl, read_parquet_rows, text_lines

LABELS = ("1", "2")
# The fields each source's rows must have (raygems.tasks.sources.check_fields).
LOCAL_FIELDS = {"qID": (str, int), "sentence": str, "option1": str, "option2": str}
HUB_FIELDS = {"sentence": str, "option1": str, "option2": str, "answer": (str, int)}


def winogrande_prompt(sentence: str, option1: str, option2: str) -> str:
    return (
        "Choose the option that correctly fills the blank (_) in the sentence.\n\n"
        f"Sentence: {sentence.strip()}\n\n"
        f"1. {option1}\n"
        f"2. {option2}\n\n"
        'Answer with the number of the correct option (1 or 2) in the form "Answer: N".'
    )


@register_task("winogrande")
class Winogrande(MultipleChoiceTask):
    name = "winogrande"
    description = ("Pronoun resolution requiring commonsense reasoning, two-option fill "
                   "in the blank.")
    skill_family = "commonsense"
    guess_rate = 0.5
    stop = (FALLBACK_TURN_STOP,)
    local_folder = "winogrande"
    local_files = ("dev.jsonl", "dev-labels.lst")
    hub_repo = "allenai/winogrande"
    hub_files = ("winogrande_xl/validation-00000-of-00001.parquet",)

    def items_from_local(self, folder: Path) -> list[dict]:
        rows = read_jsonl(folder / "dev.jsonl", LOCAL_FIELDS)
        labels_path = folder / "dev-labels.lst"
        labels = []
        for number, line in text_lines(labels_path):
            for label in line.split():
                if label not in LABELS:
                    raise UsageError(f"{labels_path}, line {number}: label {label!r} is not 1 or 2")
                labels.append(label)
        if len(labels) != len(rows):
            raise UsageError(f"{folder}: {len(rows)} sentences in dev.jsonl but {len(labels)} labels in "
                             "dev-labels.lst")
        return [
            {"row": i, "source_id": str(row["qID"]), "sentence": row["sentence"],
             "options": [row["option1"], row["option2"]], "answer": label, LOCATION: where}
            for i, ((where, row), label) in enumerate(zip(rows, labels))
        ]

    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        return [
            {"row": i, "source_id": str(i), "sentence": row["sentence"],
             "options": [row["option1"], row["option2"]], "answer": str(row["answer"]),
             LOCATION: f"{paths[0]}, row {i}"}
            for i, row in enumerate(read_parquet_rows(paths[0], HUB_FIELDS))
        ]

    def to_query(self, item: dict) -> dict:
        if item["answer"] not in LABELS:
            raise ValueError(f"Winogrande row {item['row']}: answer {item['answer']!r} is not 1 or 2")
        return make_query(
            self.name, f"{item['row']:04d}", source_id=item["source_id"],
            prompt=winogrande_prompt(item["sentence"], *item["options"]),
            reference=item["answer"], max_new_tokens=self.max_new_tokens, stop=self.stop,
            meta={"choices": list(item["options"]), "labels": list(LABELS)},
        )
