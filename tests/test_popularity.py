"""One popular-base rule: the live search's summary, correctness matrices and the `best-base` reference method
pick the same model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.bandits import make_algorithm, repetition_keys
from raygems.hub.types import ModelRecord
from raygems.popularity import popular_base
from raygems.replay import CorrectnessMatrix
from raygems.runtime.candidates import popular_base_of


def test_the_most_downloaded_official_release_else_the_most_downloaded_then_the_first_listed():
    assert popular_base([5, 900, 70, 1000], [True, False, True, False]) == 2
    assert popular_base([5, 900, 70, 1000], [False] * 4) == 3
    assert popular_base([5, 900, 70, 1000]) == 3
    assert popular_base([7, 9, 9, 9], [True, False, True, True]) == 2
    with pytest.raises(ValueError, match="one entry per model"):
        popular_base([1, 2], [True])


@pytest.mark.parametrize("flags", [[False, True, True, False, True, False], [False] * 6])
def test_search_matrix_and_best_base_agree(flags):
    downloads = [30, 500, 800, 900, 20, 10]
    ids = [f"org/m{i}" for i in range(6)]
    candidates = [ModelRecord(model_id=m, downloads=d, is_base=f) for m, d, f in zip(ids, downloads, flags)]
    matrix = CorrectnessMatrix(np.zeros((6, 3), dtype=np.uint8), tuple(ids), ("q0", "q1", "q2"),
                               models=pd.DataFrame({"model_id": ids, "downloads": downloads, "is_base": flags}))
    best_base = make_algorithm("best-base", 6, 3, 1, repetition_keys(0, 20), downloads=downloads, is_base=flags)
    expected = 2 if any(flags) else 3
    assert popular_base_of(candidates) == matrix.popular_base() == expected
    assert set(best_base.recommend().tolist()) == {expected}


def test_best_base_draws_exact_ties_per_repetition():
    best_base = make_algorithm("best-base", 3, 3, 1, repetition_keys(0, 200), downloads=[9, 9, 1],
                               is_base=[True, True, True])
    assert set(best_base.recommend().tolist()) == {0, 1}
