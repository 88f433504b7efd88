"""Tiny synthetic tasks written in the real task formats, for the demo and the tests.

Real benchmarks need real 7B models; the tiny local model tree (`raygems.demo.tiny_tree`) can only learn
small things. These two tasks are small enough for a ~130k-parameter model to learn in about a minute,
yet use the formats of the real tasks, so the same scorers and the whole pipeline run on them:

* ``toy_arith`` (like GSM8K): a word problem adding two two-digit numbers. The reference is the number
  (the worked solution, ending in ``#### N``, is in ``meta["solution"]``); scored with
  `raygems.tasks.scoring.score_number`, the GSM8K scorer.
* ``toy_choice`` (like ARC): "Which number is closest to 83 - 27?" with four options A-D; the reference
  is the option letter; scored with `raygems.tasks.scoring.score_choice`, the ARC scorer.
  The options are always 20, 40, 60, 80: a tiny model cannot learn to bind option letters to option
  texts that move around (multiple-choice symbol binding appears only in much larger models), but it can
  learn to compute roughly and answer with the right letter.

Prompts are shorter than the real tasks' (a short instruction instead of a paragraph) to keep the tiny
models' training fast. Everything is generated from fixed seeds, with no files: ``load()`` returns the
evaluation items; ``generate_items(task, n, seed)`` returns training items from another seed stream that
never repeat an evaluation question (for toy_arith: never an evaluation sum, whatever the wording).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from raygems.tasks.base import Task, as_query, make_query
from raygems.tasks.registry import register_task
from raygems.tasks.scoring import score_choice, score_number

#: Evaluation items per task (a few hundred, like a small benchmark split).
NUM_EVAL_ITEMS = 300
#: Option letters and the fixed option values of toy_choice.
CHOICE_LABELS = ("A", "B", "C", "D")
CHOICE_VALUES = (20, 40, 60, 80)

CHOICE_INSTRUCTION = "Answer with the letter."

_NAMES = ("Tom", "Ana", "Sam", "Mia", "Leo", "Eva", "Ben", "Zoe", "Max", "Ivy")
_THINGS = ("apples", "books", "coins", "cards", "shells", "stamps", "pens", "eggs")
_ARITH_TEMPLATES = (
    "{name} has {a} {thing} and gets {b} more. How many {thing} now?",
    "A box has {a} {thing}. {name} adds {b}. How many {thing} are in the box?",
    "{name} found {a} {thing}, then {b} more. How many {thing} in total?",
)

#: (question key, user prompt, reference, meta) from a random generator.
Draw = tuple[tuple, str, str, dict[str, Any]]


def _arith_draw(rng: random.Random) -> Draw:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    question = rng.choice(_ARITH_TEMPLATES).format(name=rng.choice(_NAMES), thing=rng.choice(_THINGS), a=a, b=b)
    solution = f"{a}+{b}={a + b}\n#### {a + b}"  # GSM8K-style: the working, then '#### N'
    # Keyed by the sum itself: a training item never repeats an evaluation sum in other words.
    return (a, b), question, str(a + b), {"solution": solution}


def _closest_option(value: int) -> int | None:
    """Index of the option closest to `value`, None on a tie."""
    distances = [abs(value - option) for option in CHOICE_VALUES]
    best = min(distances)
    return distances.index(best) if distances.count(best) == 1 else None


#: Differences (1..89) whose closest option is each letter (ties such as 30 left out).
_VALUES_BY_ANSWER = tuple(tuple(v for v in range(1, 90) if _closest_option(v) == k) for k in range(len(CHOICE_VALUES)))


def _choice_draw(rng: random.Random) -> Draw:
    # The correct letter is drawn first, uniformly, then a difference closest to its option: every letter
    # is right a quarter of the time, so always answering the same letter scores about 25%.
    correct = rng.randrange(len(CHOICE_LABELS))
    value = rng.choice(_VALUES_BY_ANSWER[correct])
    b = rng.randint(10, 99)
    a = b + value  # 11..188
    options = "\n".join(f"{label}. {option}" for label, option in zip(CHOICE_LABELS, CHOICE_VALUES))
    prompt = f"Which number is closest to {a} - {b}?\n{options}\n{CHOICE_INSTRUCTION}"
    meta = {"labels": list(CHOICE_LABELS), "choices": [str(v) for v in CHOICE_VALUES], "value": value}
    return (a, b), prompt, CHOICE_LABELS[correct], meta


_DRAWS: dict[str, Callable[[random.Random], Draw]] = {"toy_arith": _arith_draw, "toy_choice": _choice_draw}
TOY_TASKS = tuple(_DRAWS)


def _check_task_name(task_name: str) -> None:
    if task_name not in _DRAWS:
        raise ValueError(f"unknown toy task {task_name!r}; expected one of {list(TOY_TASKS)}")


def _eval_rng(task_name: str) -> random.Random:
    return random.Random(f"raygems-toy/{task_name}/test")


def _draw_distinct(task_name: str, n: int, rng: random.Random, exclude: set[tuple] = frozenset()) -> list[Draw]:
    """`n` draws with distinct question keys, none of them in `exclude`."""
    draw, seen, draws = _DRAWS[task_name], set(exclude), []
    attempts = 0
    while len(draws) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"{task_name}: cannot draw {n} distinct items (the task has fewer)")
        item = draw(rng)
        if item[0] not in seen:
            seen.add(item[0])
            draws.append(item)
    return draws


def _query(task: "_ToyTask", local_id: str, draw: Draw) -> dict:
    _, prompt, reference, meta = draw
    return make_query(task.name, local_id, source_id=local_id, prompt=prompt, reference=reference,
                      max_new_tokens=task.max_new_tokens, stop=task.stop, meta=meta)


def eval_items(task_name: str, n: int = NUM_EVAL_ITEMS) -> list[dict]:
    """The evaluation items (what `get_task(task_name).load()` returns for n = NUM_EVAL_ITEMS)."""
    _check_task_name(task_name)
    task = _TASK_CLASSES[task_name]()
    draws = _draw_distinct(task_name, n, _eval_rng(task_name))
    return [_query(task, f"{i:04d}", d) for i, d in enumerate(draws)]


def generate_items(task_name: str, n: int, seed: int = 0) -> list[dict]:
    """`n` TRAINING items of a toy task: same generator and format as the evaluation items, another seed
    stream, and never an evaluation question. Query ids look like ``toy_arith/train-0-00042``."""
    _check_task_name(task_name)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    held_out = {d[0] for d in _draw_distinct(task_name, NUM_EVAL_ITEMS, _eval_rng(task_name))}
    task = _TASK_CLASSES[task_name]()
    rng = random.Random(f"raygems-toy/{task_name}/train/{seed}")
    draws = _draw_distinct(task_name, n, rng, exclude=held_out)
    return [_query(task, f"train-{seed}-{i:05d}", d) for i, d in enumerate(draws)]


def ideal_completion(query: Mapping) -> str:
    """The short answer the tiny models are trained to give: the working and ``#### N`` for toy_arith,
    the letter for toy_choice."""
    query = as_query(query)
    if query["task"] == "toy_arith":
        return query["meta"]["solution"]
    if query["task"] == "toy_choice":
        return query["reference"]
    raise ValueError(f"not a toy task item: task {query.get('task')!r}")


class _ToyTask(Task):
    """Common parts of the toy tasks: embedded items, no data files."""

    def __init__(self, data_dir: Any = None, num_items: int = NUM_EVAL_ITEMS) -> None:
        # data_dir is accepted for get_task(name, data_dir=...); toy tasks read no files.
        if not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"num_items must be a positive int, got {num_items!r}")
        self.data_dir = data_dir
        self.num_items = num_items

    def load(self) -> list[dict]:
        return eval_items(self.name, self.num_items)


@register_task("toy_arith")
class ToyArith(_ToyTask):
    """GSM8K-style word problems adding two two-digit numbers; answer ``#### N``.

    max_new_tokens = 24: the trained answer ("23+45=68\\n#### 68" and the end token) is 13-15 tokens of
    the tiny tree's tokenizer; 24 leaves room for a model that rambles a little and keeps the demo fast.
    """

    name = "toy_arith"
    guess_rate = 0.0
    max_new_tokens = 24
    stop = ("\n\n",)

    def score(self, query: Mapping, completion: str) -> int:
        return score_number(completion, as_query(query)["reference"])


@register_task("toy_choice")
class ToyChoice(_ToyTask):
    """ARC-style four-way multiple choice; answer with the option letter.

    max_new_tokens = 8: the trained answer is one letter and the end token.
    """

    name = "toy_choice"
    guess_rate = 0.25
    max_new_tokens = 8
    stop = ("\n",)

    def score(self, query: Mapping, completion: str) -> int:
        query = as_query(query)
        meta = query["meta"]
        return score_choice(completion, query["reference"], meta["labels"], meta.get("choices"))


_TASK_CLASSES: dict[str, type[_ToyTask]] = {"toy_arith": ToyArith, "toy_choice": ToyChoice}
