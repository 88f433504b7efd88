"""A plan runs the search's own algorithm and schedule: against a real live search (replay backend, local Ray)
of the same matrix it chooses the same model with the same budget, rounds and, with one slot (no timing in
which slot takes which arm), the same loads and actor calls. Calibration reads the run's events log."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raygems.plan import Cluster, Speeds, simulate
from raygems.plan.calibrate import calibrate
from raygems.plan.workload import work_for_search
from raygems.runtime.testing import SIMULATED_REPLAY
from raygems.runtime import SearchConfig, run_search

from synthetic_matrix import write_matrix

pytestmark = pytest.mark.usefixtures("ray_session")

DELAY_S = 0.05
WARM_UP_S = 0.3


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    _, path, models = write_matrix(tmp_path_factory.mktemp("plan-matrix"), finetunes=10, adapters=2, per_task=8, seed=5)
    return path, models


def config(matrix, out, **overrides) -> SearchConfig:
    path, models = matrix
    settings = dict(out=str(out), matrix=str(path), models=str(models), method="recommended", budget=4, seed=2,
                    max_loaded=1, cpus_per_model=0.25, chunk_size=8, progress=False, final_evaluation=True,
                    backend=SIMULATED_REPLAY, backend_settings={"delay_s": DELAY_S, "warm_up_s": WARM_UP_S})
    settings.update(overrides)
    return SearchConfig(**settings)


@pytest.fixture(scope="module")
def live(matrix, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan-live") / "run"
    return run_search(config(matrix, out)), out


def test_one_slot_plan_follows_the_live_search_exactly(matrix, live, tmp_path):
    result, _ = live
    plan = simulate(work_for_search(config(matrix, tmp_path / "unused")), Cluster(max_loaded=1), Speeds())
    summary, cost = result.summary, result.summary["cost"]
    assert plan.chosen_model == summary["chosen_model"]
    assert (plan.budget_used, plan.budget, plan.rounds) == (summary["budget_used"], summary["budget"],
                                                            summary["rounds"])
    assert plan.queries_paid == summary["queries_paid"]
    assert (plan.loads, plan.reloads, plan.calls) == (cost["loads"], cost["reloads"], cost["calls"])
    assert not (tmp_path / "unused").exists()         # a plan writes nothing


def test_a_plan_of_a_search_to_continue_pays_only_what_its_store_lacks(matrix, tmp_path):
    """`raygems search --resume --dry-run`: the pairs in the run's store are paid already (and answer as
    recorded), so a finished run's plan pays nothing and a half-recorded one's pays what the resume pays."""
    import shutil

    out = tmp_path / "run"
    run_search(config(matrix, out))
    finished = simulate(work_for_search(config(matrix, out)), Cluster(max_loaded=1), Speeds())
    assert (finished.queries_paid, finished.loads) == (0, 0)
    # models whose failure the run recorded fail again without a call, as the resumed search's do
    failing = tmp_path / "failing"
    model_ids = list(pd.read_parquet(matrix[1])["model_id"])
    settings = {"delay_s": DELAY_S, "warm_up_s": WARM_UP_S,
                "fail": {model_ids[3]: ("load", "missing tensor"), model_ids[5]: ("generate", "CUDA error")}}
    run_search(config(matrix, failing, backend_settings=settings))
    again = simulate(work_for_search(config(matrix, failing, backend_settings=settings)), Cluster(max_loaded=1),
                     Speeds())
    assert (again.queries_paid, again.loads, again.calls) == (0, 0, 0)
    assert again.wall_s < Speeds().slot_start_s and len(again.failed) == 2
    half = tmp_path / "half"
    shutil.copytree(out, half)
    parts = sorted((half / "store" / "results").glob("part-*.parquet"))
    rows = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    for part in parts:
        part.unlink()
    rows.iloc[: len(rows) // 2].to_parquet(half / "store" / "results" / "part-00000-half.parquet")
    plan = simulate(work_for_search(config(matrix, half)), Cluster(max_loaded=1), Speeds())
    resumed = run_search(config(matrix, half))
    assert 0 < plan.queries_paid == resumed.summary["queries_paid"]
    assert plan.chosen_model == resumed.summary["chosen_model"]


def test_several_slots_choose_the_same_with_the_same_rounds(matrix, tmp_path):
    result = run_search(config(matrix, tmp_path / "run", max_loaded=3, method="sequential-halving"))
    plan = simulate(work_for_search(config(matrix, tmp_path / "unused", method="sequential-halving")),
                    Cluster(max_loaded=3), Speeds())
    assert plan.chosen_model == result.summary["chosen_model"]
    assert (plan.budget_used, plan.rounds) == (result.summary["budget_used"], result.summary["rounds"])
    assert plan.queries_paid == result.summary["queries_paid"]
    # which slot takes which arm depends on when batches come back; loads stay within the one-per-arm bounds
    assert result.summary["num_candidates"] <= plan.loads <= plan.calls


def test_the_events_log_records_every_call_and_round(live):
    result, out = live
    events = pd.read_parquet(Path(out) / "events.parquet")
    calls = events[events["kind"] == "call"]
    assert len(calls) == result.summary["cost"]["calls"]
    assert calls["queries"].sum() == result.summary["queries_paid"]
    assert (calls["returned"] >= calls["submitted"]).all() and (calls["generate_s"] >= DELAY_S).all()
    assert set(events.loc[events["kind"] == "round", "round"]) == set(range(1, result.summary["rounds"] + 1))
    assert (events["kind"] == "phase").sum() == 1 and (events["kind"] == "slot").sum() == 1


def test_calibration_measures_the_runs_speeds(matrix, live, tmp_path):
    _, out = live
    calibration = calibrate(out, Speeds(batch_size=64))
    speeds = calibration.speeds
    # the replay backend's generation is a fixed sleep per call: one generate batch of the call's steps
    steps = max(calibration.measured["steps"].values())
    assert speeds.step_s * steps + speeds.step_per_sequence_s * steps * 16 == pytest.approx(DELAY_S, rel=0.3)
    assert calibration.measured["calls"] > 0 and calibration.measured["loads"] >= 12
    for value in (speeds.call_overhead_s, speeds.load_fixed_s, speeds.slot_start_s, speeds.driver_event_s):
        assert 0 <= value < 30
    # each actor reports its warm-up once; the first call's load is timed without the wait for it
    events = pd.read_parquet(Path(out) / "events.parquet")
    reported = events.loc[(events["kind"] == "call") & (events["warm_up_s"] > 0), "warm_up_s"]
    assert len(reported) == (events["kind"] == "slot").sum()
    assert WARM_UP_S <= speeds.warm_up_s < WARM_UP_S + 0.2
    calls = events[events["kind"] == "call"].sort_values("submitted")
    first = calls.iloc[0]                               # sent at once, it waited for the actor and its warm-up
    assert first["warm_up_s"] > 0 and first["load_s"] > 0
    assert speeds.load_fixed_s + speeds.first_load_extra_s == pytest.approx(first["load_s"])
    assert first["returned"] - first["submitted"] > first["load_s"] + WARM_UP_S
    # sent at the slot's creation: the actor's start and its warm-up, each charged once by the plan
    created = events.loc[events["kind"] == "slot", "t"].iloc[0]
    waited = first["returned"] - created - first["load_s"] - first["generate_s"] - first["score_s"] - \
        speeds.call_overhead_s
    assert speeds.slot_start_s + speeds.warm_up_s == pytest.approx(waited)
    assert np.isfinite(list(calibration.facts.accuracies.values())).all()
    work = work_for_search(config(matrix, tmp_path / "unused"), facts=calibration.facts)
    plan = simulate(work, Cluster(max_loaded=1), speeds)
    assert plan.wall_s > plan.calls * DELAY_S


def test_lookahead_pays_ahead_and_chooses_the_same_and_the_plan_follows_it(matrix, live, tmp_path):
    plain = live[0].summary
    ahead = run_search(config(matrix, tmp_path / "ahead", lookahead=True)).summary
    assert (ahead["chosen_model"], ahead["budget_used"], ahead["rounds"]) == \
        (plain["chosen_model"], plain["budget_used"], plain["rounds"])
    assert ahead["queries_paid"] > plain["queries_paid"] and ahead["cost"]["loads"] < plain["cost"]["loads"]
    assert ahead["queries_reused"] == plain["queries_reused"]    # pairs paid ahead of their round are not reuse
    plan = simulate(work_for_search(config(matrix, tmp_path / "unused", lookahead=True)), Cluster(max_loaded=1),
                    Speeds(), lookahead=True)
    assert (plan.loads, plan.calls, plan.queries_paid) == \
        (ahead["cost"]["loads"], ahead["cost"]["calls"], ahead["queries_paid"])
