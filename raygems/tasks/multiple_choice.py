"""Prompt and scoring shared by the multiple-choice tasks (ARC-Challenge, MMLU, Winogrande)."""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

from raygems.tasks.base import as_query
from raygems.tasks.benchmark import BenchmarkTask
from raygems.tasks.scoring import score_choice

LETTERS = tuple(string.ascii_uppercase)


def join_labels(labels: Sequence[str]) -> str:
    """"A, B, C or D"."""
    labels = list(labels)
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


def lettered_question_prompt(question: str, choices: Sequence[str], intro: str) -> str:
    """A question with options A, B, C, ... and the answer-format instruction."""
    labels = LETTERS[: len(choices)]
    options = "\n".join(f"{label}. {text}" for label, text in zip(labels, choices))
    return (
        f"{intro}\n\n"
        f"{question.strip()}\n\n"
        f"{options}\n\n"
        f"Answer with the letter of the correct option ({join_labels(labels)}) "
        f'in the form "Answer: X".'
    )


class MultipleChoiceTask(BenchmarkTask):
    """Scores a completion by the option label it commits to (``raygems.tasks.scoring.extract_choice``).
    Query records keep the option ``labels`` and texts (``choices``) in ``meta``."""

    max_new_tokens = 50

    def score(self, query: Mapping, completion: str) -> int:
        query = as_query(query)
        meta = query["meta"]
        return score_choice(completion, query["reference"], meta["labels"], meta.get("choices"))
