"""Calibration's reading of a slot's start: its warm-up (reported by its actor once) and its first load, from
small events logs written by hand (the live runs are in test_plan_matches_live_search.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.plan import Speeds
from raygems.plan.calibrate import _first_load_extra, _warm_ups

def no_sizes(arms) -> np.ndarray:
    """Seconds to read the checkpoints: their sizes are not known here."""
    return np.zeros(len(arms))


def calls_log(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Index]:
    """(every call, successful calls, each slot's first call) as `calibrate` builds them."""
    every = pd.DataFrame(rows)
    every["seconds"] = every["returned"] - every["submitted"]
    ok = every[every["failed"].isna()]
    firsts = every.sort_values("submitted").groupby("slot").head(1).index
    return every, ok, firsts


def call(slot, arm, submitted, returned, load_s=None, warm_up_s=None, failed=None) -> dict:
    return {"slot": slot, "arm": arm, "submitted": submitted, "returned": returned, "load_s": load_s,
            "generate_s": 0.0 if failed is None else None, "score_s": 0.0 if failed is None else None,
            "warm_up_s": warm_up_s, "failed": failed}


def test_the_first_load_is_timed_by_the_actor_without_the_wait_for_its_warm_up():
    every, ok, firsts = calls_log([
        call(0, 0, 0.0, 5.0, load_s=0.5, warm_up_s=4.0),      # waited 4 s for the warm-up, loaded in 0.5 s
        call(1, 1, 0.0, 6.0, load_s=0.7, warm_up_s=5.0),
        call(0, 2, 5.0, 5.2, load_s=0.1), call(1, 3, 6.0, 6.2, load_s=0.1)])
    assert _warm_ups(every).tolist() == [4.0, 5.0]
    extra, loads = _first_load_extra(every, ok, firsts, 0.0, 0.1, _warm_ups(every), no_sizes, Speeds())
    assert extra == pytest.approx(0.5) and loads == 2                # (0.5 + 0.7) / 2 - 0.1


def test_where_every_first_call_failed_the_first_successful_loads_count():
    every, ok, firsts = calls_log([
        call(0, 0, 0.0, 4.2, failed="load"), call(1, 1, 0.0, 4.4, failed="load"),    # broken checkpoints
        call(0, 2, 4.2, 4.9, load_s=0.6, warm_up_s=4.0), call(1, 3, 4.4, 5.2, load_s=0.8, warm_up_s=4.1),
        call(0, 4, 4.9, 5.1, load_s=0.2), call(1, 5, 5.2, 5.4, load_s=0.2)])
    extra, loads = _first_load_extra(every, ok, firsts, 0.0, 0.2, _warm_ups(every), no_sizes, Speeds())
    assert extra == pytest.approx(0.5) and loads == 2                # (0.6 + 0.8) / 2 - 0.2, not 0


def test_runs_from_before_warm_ups_were_reported_take_the_whole_first_call():
    every, ok, firsts = calls_log([call(0, 0, 0.0, 3.0, load_s=0.5), call(0, 1, 3.0, 3.2, load_s=0.2)])
    every, ok = every.drop(columns="warm_up_s"), ok.drop(columns="warm_up_s")
    assert _warm_ups(every).empty
    extra, loads = _first_load_extra(every, ok, firsts, 0.0, 0.2, _warm_ups(every), no_sizes, Speeds())
    assert extra == pytest.approx(2.8) and loads == 1                # 3.0 (waiting included) - 0.2
