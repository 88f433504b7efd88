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


@pytest.mark.parametrize("damage, message", [
    ("summary is a list", "summary.json holds list, not the object a run writes"),
    ("summary is not JSON", "summary.json cannot be read"),
    ("events without kind", "its files are not what a search writes (damaged or edited?): KeyError: 'kind'"),
    ("pool without task", "its files are not what a search writes (damaged or edited?): KeyError: 'task'"),
])
def test_a_damaged_run_directory_is_one_line_naming_it(tmp_path, damage, message):
    """`raygems plan --calibrate-from RUN` reads files a user may have edited or truncated: a UsageError naming the
    run (and the file, where one cannot be read), never a KeyError from deep inside."""
    import json

    from raygems.errors import UsageError
    from raygems.plan.calibrate import calibrate

    run = tmp_path / "run"
    (run / "store" / "results").mkdir(parents=True)
    events = pd.DataFrame({"kind": ["call"], "returned": [1.0]})
    pool = pd.DataFrame({"task": ["gsm8k"], "max_new_tokens": [256], "query_id": ["q"]})
    summary: object = {"cost": {}}
    if damage == "events without kind":
        events = events.drop(columns="kind")
    if damage == "pool without task":
        pool = pool.drop(columns="task")
    if damage == "summary is a list":
        summary = [1]
    events.to_parquet(run / "events.parquet")
    pool.to_parquet(run / "pool.parquet")
    (run / "summary.json").write_text("{cost:" if damage == "summary is not JSON" else json.dumps(summary))
    (run / "search.json").write_text(json.dumps({"backend": "replay"}))
    with pytest.raises(UsageError) as caught:
        calibrate(run)
    assert message in str(caught.value) and str(run) in str(caught.value) and "\n" not in str(caught.value)
