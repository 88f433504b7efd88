"""The fast environment's reward draw exists once, as two twins that compute the same bits: compiled (one answer)
and numpy (many at once); and the two ways of answering a whole request agree."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from raygems.bandits.randomness import STREAM_FAST_REWARD, mix64, mix64_scalar, repetition_keys, uniform
from raygems.replay.answers import (
    answer_entries,
    answer_entries_numpy,
    answer_pulls,
    draw_answer,
    draw_answers,
    reward_uniform,
)

REPO = Path(__file__).resolve().parents[2]


def random_draws(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = repetition_keys(seed, 7)[rng.integers(0, 7, n)]
    queries_left = rng.integers(1, 3000, n)
    return (keys, rng.integers(0, 700, n), rng.integers(0, 3000, n), rng.integers(0, queries_left + 1),
            queries_left)


def test_the_twins_draw_the_same_answers():
    keys, arm, position, correct_left, queries_left = random_draws(5000)
    plain = draw_answers(keys, arm, position, correct_left, queries_left)
    with np.errstate(over="ignore"):   # without numba the compiled twin runs as plain Python on uint64
        one_by_one = [draw_answer(*values) for values in zip(keys, arm, position, correct_left, queries_left)]
        uniforms = [reward_uniform(k, a, p) for k, a, p in zip(keys[:200], arm[:200], position[:200])]
        mixed = [mix64_scalar(k) for k in keys[:200]]
    assert plain.tolist() == one_by_one and 0.3 < plain.mean() < 0.7
    assert uniforms == uniform(keys[:200], STREAM_FAST_REWARD, arm[:200], position[:200], outer=False).tolist()
    assert mixed == mix64(keys[:200]).tolist()


def request(seed: int):
    rng = np.random.default_rng(seed)
    reps, k, q = 4, 30, 200
    correct_total = rng.integers(0, q + 1, k)
    rep = np.repeat(np.arange(reps), 10)
    arm = np.concatenate([rng.choice(k, 10, replace=False) for _ in range(reps)])
    start = rng.integers(0, 150, rep.size)
    count = rng.integers(0, 40, rep.size)
    seen = np.minimum(rng.integers(0, 40, (reps, k)), correct_total)
    return repetition_keys(seed, reps), rep, arm, start, count, correct_total, seen, q


def test_answering_a_request_entry_by_entry_equals_position_by_position():
    for seed in range(5):
        keys, rep, arm, start, count, correct_total, seen, q = request(seed)
        seen_compiled, seen_numpy = seen.copy(), seen.copy()
        with np.errstate(over="ignore"):
            compiled = answer_entries(keys, rep, arm, start, count, correct_total, seen_compiled, q)
        numpy = answer_entries_numpy(keys, rep, arm, start, count, correct_total, seen_numpy, q)
        assert np.array_equal(compiled, numpy) and np.array_equal(seen_compiled, seen_numpy)
        assert np.all(compiled <= count) and compiled.sum() > 0


def test_one_answer_per_entry_is_the_same_draw():
    keys, rep, arm, start, _, correct_total, seen, q = request(9)
    ones = np.ones(rep.size, dtype=np.int64)
    seen_vector, seen_loop = seen.copy(), seen.copy()
    vector = answer_pulls(keys, rep, arm, start, ones, correct_total, seen_vector, q)
    loop = answer_entries_numpy(keys, rep, arm, start, ones, correct_total, seen_loop, q)
    assert np.array_equal(vector, loop) and np.array_equal(seen_vector, seen_loop)


def test_the_twins_agree_without_numba_too():
    """The same checks with RAYGEMS_NO_NUMBA=1, where the compiled twins run as plain Python."""
    env = {**os.environ, "RAYGEMS_NO_NUMBA": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; sys.path.insert(0, 'tests/replay'); import test_answers as t; "
            "from raygems.compiled import HAVE_NUMBA; assert not HAVE_NUMBA; "
            "t.test_the_twins_draw_the_same_answers(); "
            "t.test_answering_a_request_entry_by_entry_equals_position_by_position(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
