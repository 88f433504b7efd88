"""The simulation against timelines computed by hand: one slot, two slots, a slow link (fetch ahead and the
serial design), a small cache that must delete a checkpoint to make room, decoding by batch size."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from raygems.errors import UsageError
from raygems.plan import Cluster, Simulation, Speeds, Work, simulate
from raygems.plan.rewards import MatrixRewards
from raygems.runtime.schedule import count_by_stage

#: Round numbers: a slot starts in 1 s, a call costs 0.5 s, a load 2 s, a decode step 1 s; no driver time.
SPEEDS = Speeds(download_bandwidth=1.0, fetch_latency_s=0.0, load_bandwidth=1e12, load_fixed_s=2.0,
                first_load_extra_s=0.0, slot_start_s=1.0, call_overhead_s=0.5, step_s=1.0, step_per_sequence_s=0.0,
                score_per_query_s=0.0, driver_event_s=0.0, round_overhead_s=0.0, batch_size=64, variants=1)


def work(arms: int = 2, queries: int = 4, chunk: int = 2, fetch: bool = False, size: int = 10, **options) -> Work:
    values = np.zeros((arms, queries), dtype=np.uint8)
    values[0] = 1                                            # arm 0 is the best
    return Work(model_ids=[f"org/m{i}" for i in range(arms)], sizes=np.full(arms, size),
                query_tasks=np.zeros(queries, dtype=np.int64), task_names=["t"], steps=np.array([1]),
                rewards=MatrixRewards(values), chunk_size=chunk, fetch=fetch, **options)


def evaluate_all(w: Work, cluster: Cluster, speeds: Speeds = SPEEDS) -> Simulation:
    sim = Simulation(w, cluster, speeds)
    sim.evaluate_all(list(range(w.num_arms)))
    return sim


def test_one_slot_takes_the_arms_in_order_and_loads_each_once():
    # slot ready at 1; arm 0: [1, 4.5] (call 0.5 + load 2 + one step 1), [4.5, 6]; arm 1: [6, 9.5], [9.5, 11]
    sim = evaluate_all(work(), Cluster(max_loaded=1))
    assert sim.now == pytest.approx(11.0)
    assert sim.stats["loads"] == 2 and sim.stats["reloads"] == 0 and sim.stats["calls"] == 4
    assert sim.stats["busy_s"] == pytest.approx(11.0)     # as the driver counts: from submission (at 0)


def test_two_slots_run_side_by_side():
    sim = evaluate_all(work(), Cluster(max_loaded=2))
    assert sim.now == pytest.approx(6.0)
    assert len(sim.schedule.slots) == 2 and sim.stats["loads"] == 2


def test_a_slot_that_must_take_back_an_arm_reloads_it():
    # one slot, three phases: arms 0 and 1, then 0 again (held by nobody since arm 1 took the slot)
    sim = Simulation(work(chunk=4), Cluster(max_loaded=1), SPEEDS)
    sim._serve({0: [0, 1], 1: [0, 1]})
    sim._serve({0: [2, 3]})
    assert sim.stats["loads"] == 3 and sim.stats["reloads"] == 1
    # the arm it still holds continues without a load: 1 s start, 3.5 + 3.5, then 3.5 again
    sim._serve({0: [0, 1, 2, 3]})          # everything recorded: nothing to do
    assert sim.now == pytest.approx(11.5)


def test_a_slots_first_call_waits_for_its_warm_up():
    # as test_one_slot_takes_the_arms_in_order_and_loads_each_once, the first call starting at 1 + 3 instead of 1
    sim = evaluate_all(work(), Cluster(max_loaded=1), replace(SPEEDS, warm_up_s=3.0))
    assert sim.now == pytest.approx(14.0)


def test_fetch_ahead_overlaps_the_second_download_with_the_first_evaluation():
    # one node: downloads start at 0, while the slot starts (placed at 1); one at a time (concurrency 1) at
    # 1 B/s: arm 0 [0, 10], arm 1 [10, 20]; the slot: arm 0 [10, 13.5] (one call of 4 queries), arm 1 [20, 23.5]
    sim = evaluate_all(work(chunk=4, fetch=True), Cluster(max_loaded=1, fetch_concurrency=1))
    assert sim.now == pytest.approx(23.5)
    status = sim.checkpoints.status()
    assert status["fetch_bytes"] == 20 and status["peak_cache_bytes"] == 20


def test_with_several_nodes_downloads_wait_for_the_slots_placement():
    # two nodes, one slot: which node holds it is known when it is placed (at 1): arm 0 [1, 11], arm 1 [11, 21];
    # the slot: arm 0 [11, 14.5], arm 1 [21, 24.5]
    sim = evaluate_all(work(chunk=4, fetch=True), Cluster(nodes=2, max_loaded=1, fetch_concurrency=1))
    assert sim.now == pytest.approx(24.5)
    assert [event["launched"] for event in sim.checkpoints.events] == pytest.approx([1.0, 11.0])


def test_concurrent_downloads_share_the_link():
    # both downloads start at 0 and share 1 B/s: both done at 20; then 3.5 + 3.5
    sim = evaluate_all(work(chunk=4, fetch=True), Cluster(max_loaded=1, fetch_concurrency=2))
    assert sim.now == pytest.approx(27.0)


def test_the_serial_design_downloads_only_for_an_idle_slot():
    # one fetch per idle slot, counted when the driver last looked: at 0 the slot (not placed yet, on the only
    # node) is idle (arm 0 [0, 10]); when that fetch completes the count is still 1 (the slot takes arm 0 just
    # after), so arm 1 follows [10, 20], not two at once: arm 0 evaluated [10, 13.5], arm 1 [20, 23.5]
    # (FetchStage's own behaviour)
    sim = evaluate_all(work(chunk=4, fetch=True), Cluster(max_loaded=1, fetch_concurrency=2, fetch_ahead=False))
    assert sim.now == pytest.approx(23.5)
    launched = [event["launched"] for event in sim.checkpoints.events]
    assert launched == pytest.approx([0.0, 10.0])


def test_a_small_cache_deletes_a_released_checkpoint_to_make_room():
    # 15 bytes hold one 10-byte checkpoint: arm 0 downloads [0, 10] and is evaluated [10, 13.5]; arm 1 waits for
    # room until the slot is done with arm 0, which is then deleted; arm 1 downloads [13.5, 23.5] and is
    # evaluated [23.5, 27]
    sim = evaluate_all(work(chunk=4, fetch=True), Cluster(max_loaded=1, fetch_concurrency=2, cache_limit_bytes=15))
    assert sim.now == pytest.approx(27.0)
    node = sim.nodes["node-0"]
    assert node.cache.evicted == ["org/m0"] and node.cache.peak_bytes == 10
    assert sim.checkpoints.events[1]["wait_s"] == pytest.approx(13.5)


def test_a_checkpoint_larger_than_the_cache_fails_its_model_at_fetch():
    w = work(chunk=4, fetch=True)
    w.sizes = np.array([10, 30])
    sim = evaluate_all(w, Cluster(max_loaded=1, cache_limit_bytes=15))
    assert sim.failed == {1: "fetch"}
    assert sim.stats["calls"] == 1


def test_a_search_where_every_candidate_would_fail_is_refused_in_one_line():
    w = work(arms=3, chunk=4, fetch=True, size=30, budget=2)      # no checkpoint fits the cache
    with pytest.raises(UsageError) as caught:
        simulate(w, Cluster(max_loaded=1, cache_limit_bytes=15), SPEEDS)
    message = str(caught.value)
    assert message.startswith("every candidate would fail in this search (3 at fetch), so it could choose nothing")
    assert "\n" not in message


def test_failures_are_counted_by_stage_most_first():
    assert count_by_stage(["load", "fetch", "fetch", "generate", "fetch", "load"]) == \
        "3 at fetch, 2 at load, 1 at generate"
    assert count_by_stage([]) == ""


def test_decoding_is_charged_per_generate_batch():
    speeds = Speeds(step_s=0.1, step_per_sequence_s=0.01, batch_size=8, variants=2)
    # 10 queries x 2 variants = 20 sequences: batches of 8, 8, 4; 30 steps each
    expected = 30 * (0.1 + 0.01 * 8) * 2 + 30 * (0.1 + 0.01 * 4)
    assert speeds.decode_seconds(10, 30) == pytest.approx(expected)
    # a call's steps are those of its slowest task
    w = work(queries=4, chunk=4)
    w.query_tasks, w.task_names, w.steps = np.array([0, 0, 1, 1]), ["short", "long"], np.array([2, 9])
    sim = Simulation(w, Cluster(max_loaded=1), SPEEDS)
    sim._serve({0: [0, 1]})
    first = sim.now
    sim._serve({0: [2]})
    assert first == pytest.approx(1 + 0.5 + 2 + 2) and sim.now - first == pytest.approx(0.5 + 9)


def test_a_search_runs_the_algorithm_round_by_round_and_reports_its_cost():
    w = work(arms=8, queries=40, chunk=8, method="sequential-halving", budget=5, fetch=True, size=1000)
    speeds = Speeds(download_bandwidth=1e4, fetch_latency_s=0.1, batch_size=32)
    plan = simulate(w, Cluster(max_loaded=2, gpus_per_node=2.0), speeds)
    assert plan.chosen == 0 and plan.rounds == 3 and plan.budget_used <= plan.budget == 40
    assert plan.fetch_bytes == 8000 and plan.loads >= 8
    assert plan.gpu_hours == pytest.approx(plan.wall_s * 2 / 3600)
    assert plan.wall_s >= max(plan.fetch_floor_s, plan.compute_floor_s)
    exhaustive = simulate(work(arms=8, queries=40, chunk=8, method="exhaustive", fetch=True, size=1000),
                          Cluster(max_loaded=2), speeds)
    assert exhaustive.queries_paid == 8 * 40 and exhaustive.loads == 8 and exhaustive.chosen == 0


def test_lookahead_answers_the_next_rounds_queries_in_the_same_batch():
    w = work(arms=16, queries=200, chunk=32, method="recommended", budget=10)
    w.rewards = MatrixRewards((np.random.default_rng(0).random((16, 200)) < np.linspace(0.3, 0.8, 16)[:, None]))
    plain = simulate(w, Cluster(max_loaded=2), SPEEDS)
    ahead = simulate(w, Cluster(max_loaded=2), SPEEDS, lookahead=True)
    assert ahead.chosen == plain.chosen and ahead.budget_used == plain.budget_used and ahead.rounds == plain.rounds
    assert ahead.queries_paid > plain.queries_paid and ahead.loads < plain.loads
