"""The fast replay environment's answers: the reward draw, defined once, as twins side by side.

In fast mode an independent pull is not resolved to query ids: the answer at position t of arm i's query order
is drawn as sampling without replacement from the arm's pool, correct with probability (correct answers the arm
has left) / (queries it has left), by one counter-based uniform per (repetition key, arm, position) (spec 11.1:
the same distribution as reading a random permutation). The draw has two twins that compute the same bits:

* `draw_answer`: one answer, compiled (`raygems.compiled`); the compiled replay loops (`kernels.py`,
  `ttts_loop.py`) and `answer_entries` call it;
* `draw_answers`: many answers at once, in numpy, elementwise.

tests/replay/test_answers.py checks that they agree, with and without numba.
"""
from __future__ import annotations

import numpy as np

from raygems.bandits.randomness import (_COUNTER_WEIGHTS, _S11, _TO_UNIT, STREAM_FAST_REWARD, _stream_offset,
                                        mix64_scalar, uniform)
from raygems.compiled import HAVE_NUMBA, jit

_U64 = np.uint64
_W0 = _COUNTER_WEIGHTS[0]
_W1 = _COUNTER_WEIGHTS[1]
_FAST_REWARD_OFFSET = _stream_offset(STREAM_FAST_REWARD)


@jit
def reward_uniform(key, arm, position):
    """`uniform(key, STREAM_FAST_REWARD, arm, position)` of one (key, arm, position), compiled."""
    offset = _FAST_REWARD_OFFSET + _U64(arm) * _W0 + _U64(position) * _W1
    return float(mix64_scalar(key + offset) >> _S11) * _TO_UNIT


@jit
def draw_answer(key, arm, position, correct_left, queries_left):
    """1 when the answer at `position` of the arm's order is correct, else 0 (the compiled twin)."""
    return 1 if reward_uniform(key, arm, position) < correct_left / queries_left else 0


@jit
def pull_once(key, r, arm, pulls, successes, seen, budget_used, correct_total, num_queries):
    """One pull of `arm` in repetition `r` of a compiled replay loop: the arm's next answer in its order
    (`draw_answer`), counted as `BanditAlgorithm.tell` counts it (pulls, successes, budget used) and in `seen`
    (the correct answers it has given). Returns the answer (0/1)."""
    start = pulls[r, arm]
    hit = draw_answer(key, arm, start, correct_total[arm] - seen[r, arm], num_queries - start)
    seen[r, arm] += hit
    pulls[r, arm] += 1
    successes[r, arm] += hit
    budget_used[r] += 1
    return hit


def draw_answers(keys, arm, position, correct_left, queries_left) -> np.ndarray:
    """`draw_answer` elementwise over arrays (the numpy twin); int64 0/1."""
    u = uniform(keys, STREAM_FAST_REWARD, arm, position, outer=False)
    return (u < correct_left / queries_left).astype(np.int64)


def answer_pulls(keys, rep, arm, start, count, correct_total, seen, num_queries) -> np.ndarray:
    """Correct answers per entry of a request of independent pulls (entry j: `count[j]` answers of arm `arm[j]`
    from position `start[j]`, repetition `rep[j]` with key `keys[rep[j]]`); `seen` (R, K), the correct answers
    each arm has given, is updated in place."""
    if count.max() == 1:  # one answer per entry (index policies, TTTS): a single vectorised draw
        flat = rep * seen.shape[1] + arm
        seen_flat = seen.ravel()
        known = seen_flat[flat]
        hit = draw_answers(keys[rep], arm, start, correct_total[arm] - known, num_queries - start)
        seen_flat[flat] = known + hit
        return hit
    if HAVE_NUMBA:
        return answer_entries(keys, rep, arm, start, count, correct_total, seen, num_queries)
    return answer_entries_numpy(keys, rep, arm, start, count, correct_total, seen, num_queries)


@jit
def answer_entries(keys, rep, arm, start, count, correct_total, seen, num_queries):
    """`answer_pulls` entry by entry, answer by answer (compiled): the same draws as `answer_entries_numpy`."""
    out = np.zeros(rep.shape[0], dtype=np.int64)
    for e in range(rep.shape[0]):
        r, a = rep[e], arm[e]
        key = keys[r]
        s = seen[r, a]
        total = correct_total[a]
        hits = 0
        for j in range(count[e]):
            position = start[e] + j
            hit = draw_answer(key, a, position, total - s, max(num_queries - position, 1))
            hits += hit
            s += hit
        seen[r, a] = s
        out[e] = hits
    return out


def answer_entries_numpy(keys, rep, arm, start, count, correct_total, seen, num_queries) -> np.ndarray:
    """`answer_pulls` answer position by answer position over all entries at once (numpy)."""
    flat = rep * seen.shape[1] + arm
    seen_flat = seen.ravel()
    known = seen_flat[flat]
    entry_keys = keys[rep]
    successes = np.zeros(rep.shape[0], dtype=np.int64)
    for j in range(int(count.max())):
        active = count > j
        position = start + j
        hit = draw_answers(entry_keys, arm, position, correct_total[arm] - known,
                           np.maximum(num_queries - position, 1)) & active
        successes += hit
        known += hit
    seen_flat[flat] = known
    return successes
