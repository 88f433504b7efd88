"""Item-level answers that agree exactly with given accuracies: the machinery shared by the population families.

Every family first decides *how good* each model is (an accuracy per model, or per model and task), then
needs a 0/1 answer matrix whose rows have exactly those accuracies and whose columns behave like real
benchmark items: some easy, some hard, some that separate models sharply, some at a guessing floor.

The model, per task, is a three-parameter item-response model: item j has a difficulty `b_j`, a
discrimination `a_j` and a guessing floor `c_j`, and a model of ability `theta` answers it correctly with

    p_j(theta) = c_j + (1 - c_j) * sigmoid(a_j * (theta - b_j)).

1. `draw_items`: item parameters per task (difficulty, discrimination, guessing floor, a few unsolvable items
   with wrong gold labels and a few trivial ones).
2. `solve_abilities`: per model, the ability whose *expected* accuracy over the items equals the target
   (bisection; monotone in theta).
3. `answers_with_counts`: the answers. Each (model, item) gets a latent propensity `logit(p_j(theta)) + L`
   with L standard logistic (so `propensity > 0` would be an ordinary Bernoulli(p) draw); the model answers
   correctly exactly its `count` items of highest propensity. Realised accuracies then equal the targets
   exactly (to 1 / items), which keeps the dense top bands and exact ties of real data intact, while which
   items a model gets right still follows the item-response model.
4. `derive_answers`: a row derived from another row (a near-duplicate, a merge): the parent's answers with a
   share of items redrawn from the child's own propensities, then the fewest flips that reach the child's
   count. Exact copies (re-uploads) are plain row copies.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from raygems.tasks.info import task_info

#: Mean item difficulty per task on the ability scale (only relative positions matter: abilities are solved);
#: the tasks the populations model.
TASK_DIFFICULTY = {"arc_challenge": -0.6, "winogrande": 0.2, "mmlu": 0.0, "hellaswag": -0.8, "truthfulqa": 0.4,
                   "mbpp": 0.3, "gsm8k": 0.1}
#: Guessing floor per task: the task's own chance of a correct guess (`raygems.tasks.info`: multiple choice with
#: 4 options, 2 options, or a generated answer).
GUESS_FLOOR = {task: task_info(task).guess_rate for task in TASK_DIFFICULTY}
#: Probability that a model matches a wrong gold label (an unsolvable item).
UNSOLVABLE_RATE = 0.05
ABILITY_RANGE = (-10.0, 10.0)


def draw_items(tasks, per_task: int, rng: np.random.Generator, *, difficulty_spread: float = 1.3,
               discrimination_spread: float = 0.4, unsolvable_share: float = 0.03,
               trivial_share: float = 0.05) -> pd.DataFrame:
    """Item parameters: one row per item (query_id, task, difficulty, discrimination, guess, unsolvable).

    The defaults are those of `raygems.populations.synthetic`: difficulties N(task mean, 1.3), log-normal
    discriminations (sd 0.4), 3% unsolvable items (wrong gold label) and 5% trivial ones.
    """
    if per_task < 1:
        raise ValueError(f"per_task must be at least 1, got {per_task}")
    unknown = [t for t in tasks if t not in GUESS_FLOOR]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {sorted(GUESS_FLOOR)}")
    frames = []
    for task in tasks:
        difficulty = rng.normal(TASK_DIFFICULTY[task], difficulty_spread, per_task)
        discrimination = rng.lognormal(0.0, discrimination_spread, per_task)
        kind = rng.choice(3, size=per_task, p=[1 - unsolvable_share - trivial_share, unsolvable_share,
                                               trivial_share])
        difficulty[kind == 2] = -6.0
        frames.append(pd.DataFrame({
            "query_id": [f"{task}/{i:04d}" for i in range(per_task)], "task": task, "difficulty": difficulty,
            "discrimination": discrimination, "guess": GUESS_FLOOR[task], "unsolvable": kind == 1,
        }))
    return pd.concat(frames, ignore_index=True)


def correct_probability(theta: np.ndarray, items: pd.DataFrame) -> np.ndarray:
    """P(correct) of models on `items`: shape (K, len(items)).

    `theta`: one ability per model (shape (K,) or (K, 1)), or one per model and item (shape (K, len(items)),
    e.g. a general ability plus the model's offset on each item's task).
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim < 2:
        theta = theta.reshape(-1, 1)
    a = items["discrimination"].to_numpy()[None, :]
    b = items["difficulty"].to_numpy()[None, :]
    c = items["guess"].to_numpy()[None, :]
    p = c + (1.0 - c) / (1.0 + np.exp(-a * (theta - b)))
    unsolvable = items["unsolvable"].to_numpy()
    if unsolvable.any():
        p[:, unsolvable] = UNSOLVABLE_RATE
    return p


def solve_abilities(targets: np.ndarray, items: pd.DataFrame, offsets: np.ndarray | None = None,
                    iterations: int = 60) -> np.ndarray:
    """Per target accuracy, the ability whose expected accuracy on `items` equals it (bisection).

    `offsets` (K, len(items)), optional: per-model, per-item shifts of the ability (task-specific strengths);
    the solved ability is then the general level that, with the shifts, gives the target.
    Targets outside what the items allow (below the guessing floor, above the unsolvable ceiling) get the
    nearest end of `ABILITY_RANGE`; `answers_with_counts` still realises their exact counts.
    """
    targets = np.asarray(targets, dtype=float).ravel()
    lo = np.full(targets.shape, ABILITY_RANGE[0])
    hi = np.full(targets.shape, ABILITY_RANGE[1])
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        theta = mid[:, None] if offsets is None else mid[:, None] + offsets
        too_good = correct_probability(theta, items).mean(axis=1) > targets
        hi = np.where(too_good, mid, hi)
        lo = np.where(too_good, lo, mid)
    return 0.5 * (lo + hi)


def propensities(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Latent propensity logit(p) + standard logistic noise; `> 0` is a Bernoulli(p) draw."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    u = np.clip(rng.random(p.shape), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p)) + np.log(u / (1 - u))


def top_count_rows(z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """0/1 rows with a 1 at each row's `counts[i]` largest entries of `z`."""
    z = np.atleast_2d(z)
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if counts.shape[0] != z.shape[0]:
        raise ValueError(f"{counts.shape[0]} counts for {z.shape[0]} rows")
    if np.any(counts < 0) or np.any(counts > z.shape[1]):
        raise ValueError(f"counts must lie in [0, {z.shape[1]}]")
    order = np.argsort(-z, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(z.shape[1])[None, :].repeat(z.shape[0], axis=0), axis=1)
    return (position < counts[:, None]).astype(np.uint8)


def answers_with_counts(p: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Answers with exactly `counts[i]` correct items in row i, chosen by propensity (see module docstring).

    Returns (answers uint8 (K, Q), propensities float (K, Q)); the propensities let derived rows
    (`derive_answers`) flip the items their own model would most plausibly get right or wrong.
    """
    z = propensities(p, rng)
    return top_count_rows(z, counts), z


def derive_answers(parent_row: np.ndarray, own_propensity: np.ndarray, count: int, redraw_share: float,
                   rng: np.random.Generator) -> np.ndarray:
    """A row derived from `parent_row`: a share `redraw_share` of items takes the child's own answer
    (`own_propensity > 0`), the rest keeps the parent's; then the fewest flips (correct -> wrong on the
    child's lowest-propensity correct items, or wrong -> correct on its highest-propensity wrong ones) make
    the row's total exactly `count`."""
    row = np.asarray(parent_row, dtype=np.uint8).copy()
    q = row.size
    if not 0 <= count <= q:
        raise ValueError(f"count must lie in [0, {q}], got {count}")
    redraw = rng.random(q) < redraw_share
    row[redraw] = (own_propensity[redraw] > 0).astype(np.uint8)
    excess = int(row.sum()) - int(count)
    if excess > 0:
        correct = np.flatnonzero(row == 1)
        row[correct[np.argsort(own_propensity[correct], kind="stable")[:excess]]] = 0
    elif excess < 0:
        wrong = np.flatnonzero(row == 0)
        row[wrong[np.argsort(-own_propensity[wrong], kind="stable")[:-excess]]] = 1
    return row


def merge_rows(row_a: np.ndarray, row_b: np.ndarray, rng: np.random.Generator, weight_a: float = 0.5) -> np.ndarray:
    """A merge's starting answers: each item's answer from parent A (probability `weight_a`) or parent B.
    (Weight-space merges of two fine-tunes agree with either parent on most items.)"""
    take_a = rng.random(row_a.size) < weight_a
    return np.where(take_a, row_a, row_b).astype(np.uint8)
