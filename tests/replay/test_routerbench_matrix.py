"""The replay on the real RouterBench matrix (11 real models x 3,150 real 0/1 results)."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.replay import load_matrix, replay


@pytest.fixture(scope="module")
def routerbench(shared_dir):
    return load_matrix(shared_dir / "data/matrices/routerbench-0shot-11x3150")


def test_loads_the_real_matrix(routerbench):
    assert routerbench.values.shape == (11, 3150)
    assert set(routerbench.tasks) == {"arc-challenge", "mbpp", "winogrande"}
    acc = dict(zip(routerbench.model_ids, routerbench.accuracies.round(3)))
    assert acc["gpt-4-1106-preview"] == 0.879 and acc["claude-v2"] == 0.551   # the README's numbers


def test_search_methods_beat_random_and_find_gpt4(routerbench):
    random = replay(routerbench, "random", 10, reps=300, seed=0).summary()
    assert 5.0 < random["mean_rank"] < 7.0          # (K + 1) / 2 = 6
    for method in ("ours", "sequential-halving", "ucb-stddev", "successive-rejects"):
        s = replay(routerbench, method, 50, reps=300, seed=0).summary()
        assert s["mean_rank"] < 1.3, (method, s)
        assert s["p_top1"] > 0.85, (method, s)      # gpt-4 (0.879) is 10 points ahead of the next model
        chosen = replay(routerbench, method, 50, reps=20, seed=0).per_rep["model_id"]
        assert (chosen == "gpt-4-1106-preview").mean() > 0.8


def test_common_random_numbers_make_comparisons_paired(routerbench):
    a = replay(routerbench, "ours", 10, reps=200, seed=5).per_rep
    b = replay(routerbench, "ours", 10, reps=200, seed=5).per_rep
    assert np.array_equal(a["arm"], b["arm"])
    c = replay(routerbench, "ours", 10, reps=200, seed=6).per_rep
    assert not np.array_equal(a["arm"], c["arm"])
