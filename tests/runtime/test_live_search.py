"""The live search on a real local Ray cluster, over the replay backend (answers from a recorded matrix):
same choices as the offline replay, crash-safe, never paying twice for a recorded pair."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from raygems.errors import SetupError, UsageError
from raygems.replay import replay
from raygems.runtime import DriverSettings, EvaluatorSpec, ResultStore, SearchConfig, run_search
from raygems.runtime.driver import remote_driver
from raygems.runtime.candidates import load_candidates
from raygems.runtime.testing import SIMULATED_REPLAY

from runtime_helpers import raw_result_keys, write_matrix

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return write_matrix(tmp_path_factory.mktemp("recorded"))


def config(recorded, out, **overrides) -> SearchConfig:
    _, matrix, models = recorded
    settings = dict(out=str(out), matrix=str(matrix), models=str(models), method="ours", budget=8, seed=4,
                    max_loaded=3, cpus_per_model=0.25, chunk_size=16, progress=False, final_evaluation=False)
    settings.update(overrides)
    return SearchConfig(**settings)


def assert_nothing_paid_twice(out: Path) -> None:
    keys = raw_result_keys(out)
    assert not keys.duplicated().any(), keys[keys.duplicated()].head()


@pytest.mark.parametrize("method, options", [
    ("recommended", {}), ("ours", {}), ("sequential-halving", {}), ("ucb-e", {}),
    ("best-base", {}),                       # the models table's downloads and is_base reach the method
    ("recommended", {"stratify": True}),     # and so do the queries' task labels
])
def test_live_search_chooses_what_the_offline_replay_chooses(recorded, tmp_path, method, options):
    tree = recorded[0]
    budget = 8 if method != "ucb-e" else 3
    result = run_search(config(recorded, tmp_path, method=method, budget=budget, method_options=options))
    offline = replay(tree.matrix, method, budget, reps=1, seed=4, exact=True, options=options).per_rep.iloc[0]
    assert result.summary["chosen_model"] == offline["model_id"]
    assert result.summary["budget_used"] == offline["budget_used"]
    assert result.summary["queries_paid"] == offline["budget_used"]
    assert_nothing_paid_twice(tmp_path)
    board = result.leaderboard
    assert board.loc[board["status"] == "chosen", "model_id"].item() == offline["model_id"]


def test_rerun_pays_nothing_and_final_evaluation_is_recorded(recorded, tmp_path):
    first = run_search(config(recorded, tmp_path, final_evaluation=True))
    second = run_search(config(recorded, tmp_path, final_evaluation=True))
    assert second.summary["queries_paid"] == 0
    assert second.summary["queries_reused"] == first.summary["queries_paid"] + first.summary["queries_reused"]
    # the first run's events log (what raygems plan calibrates from) survives the rerun that measured nothing
    calls = pd.read_parquet(tmp_path / "events.parquet").query("kind == 'call'")
    assert len(calls) > 0 and second.summary["measured_cost"] == first.summary["cost"]
    assert second.summary["chosen_model"] == first.summary["chosen_model"]
    tree = recorded[0]
    acc = dict(zip(tree.matrix.model_ids, tree.matrix.accuracies))
    assert first.summary["chosen_accuracy"] == pytest.approx(acc[first.summary["chosen_model"]])
    assert first.summary["base_accuracy"] == pytest.approx(acc[first.summary["popular_base"]])
    assert_nothing_paid_twice(tmp_path)


def test_a_different_search_in_the_same_directory_is_refused(recorded, tmp_path):
    run_search(config(recorded, tmp_path))
    with pytest.raises(ValueError, match=r"settings \['budget'\] differ"):
        run_search(config(recorded, tmp_path, budget=9))


def test_broken_checkpoints_are_failed_with_their_reason(recorded, tmp_path):
    tree = recorded[0]
    ids = tree.matrix.model_ids
    fail = {ids[3]: ("fetch", "404 Client Error: repository not found"), ids[7]: ("load", "missing tensor lm_head.weight"),
            ids[12]: ("generate", "CUDA error: device-side assert")}
    result = run_search(config(recorded, tmp_path, backend=SIMULATED_REPLAY, backend_settings={"fail": fail},
                                method="sequential-halving"))
    failed = {f["model_id"]: f for f in result.summary["failed_models"]}
    assert set(failed) == set(fail)
    for model_id, (stage, reason) in fail.items():
        assert failed[model_id]["reason"] == reason and failed[model_id]["stage"] == stage
    assert result.summary["chosen_model"] not in fail
    board = result.leaderboard.set_index("model_id")
    assert (board.loc[list(fail), "status"] == "failed").all()
    again = run_search(config(recorded, tmp_path, backend=SIMULATED_REPLAY, backend_settings={"fail": fail},
                               method="sequential-halving"))
    assert again.summary["queries_paid"] == 0 and len(again.summary["failed_models"]) == 3


def test_when_every_candidate_fails_the_search_says_so_in_one_line(recorded, tmp_path):
    tree = recorded[0]
    fail = {model_id: ("load", f"missing tensor of {model_id}") for model_id in tree.matrix.model_ids}
    with pytest.raises(SetupError) as raised:
        run_search(config(recorded, tmp_path, backend=SIMULATED_REPLAY, backend_settings={"fail": fail}))
    message = str(raised.value)
    assert message.startswith(f"every candidate failed ({len(fail)} at load; e.g. ") and "\n" not in message
    assert str(tmp_path / "store" / "failures") in message
    recorded_failures = ResultStore(tmp_path / "store").failures()
    assert set(recorded_failures["model_id"]) == set(fail)          # each one kept, with its reason


def test_a_model_actor_no_node_can_hold_is_refused_before_the_search(recorded, tmp_path):
    """On this machine's own cluster nothing will join: an actor asking for more than a node has would wait
    forever (a cluster given with --address may grow, so there the driver waits)."""
    with pytest.raises(UsageError, match="a model actor needs 64 CPU .* but no node of this machine's Ray cluster"):
        run_search(config(recorded, tmp_path, cpus_per_model=64))
    assert not (tmp_path / "store" / "results").exists() or not any((tmp_path / "store" / "results").iterdir())


def test_a_recorded_failure_applies_where_it_happened_not_from_round_one(recorded, tmp_path):
    """A failure recorded late (here: the chosen model, as if its final evaluation had failed) does not rewrite
    the rounds before it: a rerun serves those from the store and follows the same path."""
    from raygems.runtime.store import Failure

    first = run_search(config(recorded, tmp_path))
    chosen = first.summary["chosen_model"]
    ResultStore(tmp_path / "store").put_failure(Failure(chosen, "main", "generate", "failed after the search"))
    again = run_search(config(recorded, tmp_path))
    assert again.summary["chosen_model"] == chosen and again.summary["queries_paid"] == 0
    assert again.summary["failed_models"] == []        # it never needed new work in this run


def test_progress_never_counts_down_when_a_model_fails_and_ends_at_its_totals(recorded, tmp_path):
    """A model failing mid-round takes its outstanding pairs off the ETA, not off what was asked: "asked" only
    grows within a phase, and a finished phase shows all it asked and an ETA of 0."""
    from raygems.runtime.driver import Progress, SearchDriver

    ids = recorded[0].matrix.model_ids
    cfg = config(recorded, tmp_path, method="sequential-halving")
    candidates, pool = load_candidates(cfg)
    spec = EvaluatorSpec(backend=SIMULATED_REPLAY, matrix=cfg.matrix,
                         settings={"fail": {ids[5]: ("generate", "CUDA error"), ids[7]: ("generate", "CUDA error")}})
    settings = DriverSettings(method="sequential-halving", budget_per_model=8, seed=4, max_loaded=3,
                              cpus_per_model=0.25, chunk_size=4)
    seen = []

    class Recorded(Progress):
        def __setattr__(self, name, value):
            if name == "requested":
                seen.append((self.__dict__.get("phase"), value))
            super().__setattr__(name, value)

    driver = SearchDriver(candidates, pool, str(tmp_path / "store"), spec, settings)
    driver.progress = Recorded()
    try:
        outcome = driver.run()
        assert set(outcome["failed"]) == {ids[5], ids[7]}
        status = driver.status()
        asked = sum(event["asked"] for event in driver.cost_events() if event["kind"] == "round")
        assert status["requested"] == asked >= outcome["budget_used"] and status["eta_s"] == 0.0
        finalists = [outcome["chosen"], ids.index(ids[5])]          # (a failed model is not evaluated again)
        driver.evaluate_all(finalists)
        status = driver.status()
        assert status["requested"] == status["budget"] == len(pool) and status["eta_s"] == 0.0
    finally:
        driver.shutdown()
    for (phase, before), (same_phase, after) in zip(seen, seen[1:]):
        assert after >= before or (after == 0 and phase != same_phase), seen


def test_kill_9_of_a_model_actor_mid_round(recorded, tmp_path):
    import ray

    tree = recorded[0]
    cfg = config(recorded, tmp_path)
    candidates, pool = load_candidates(cfg)
    spec = EvaluatorSpec(backend=SIMULATED_REPLAY, matrix=cfg.matrix, settings={"delay_s": 0.15})
    settings = DriverSettings(method="ours", budget_per_model=8, seed=4, max_loaded=3, cpus_per_model=0.25,
                              chunk_size=8)
    driver = remote_driver().remote(candidates, pool, str(tmp_path / "store"), spec, settings)
    run = driver.run.remote()
    killed = []
    deadline = time.time() + 120
    while len(killed) < 2 and time.time() < deadline:
        ready, _ = ray.wait([run], timeout=0.3)
        if ready:
            break
        written = len(list((tmp_path / "store" / "results").glob("part-*.parquet")))
        pids = ray.get(driver.actor_pids.remote())
        if written >= 3 + 5 * len(killed) and pids:
            model, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(model)
    outcome = ray.get(run)
    assert len(killed) == 2, "the search ended before two actors could be killed"
    offline = replay(tree.matrix, "ours", 8, reps=1, seed=4, exact=True).per_rep.iloc[0]
    assert outcome["chosen_model"] == offline["model_id"]
    assert outcome["budget_used"] == offline["budget_used"]
    assert not outcome["failed"]
    assert_nothing_paid_twice(tmp_path)
    ray.kill(driver)


def test_killing_the_driver_then_resume_finishes_the_search(recorded, tmp_path):
    import ray

    tree, matrix, models = recorded
    out = tmp_path / "search"
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "raygems", "search", "--matrix", str(matrix), "--models", str(models),
               "--method", "ours", "--budget", "8", "--seed", "4", "--out", str(out), "--address", address,
               "--max-loaded", "2", "--cpus-per-model", "0.25", "--chunk-size", "8", "--no-final-evaluation",
               "--backend", SIMULATED_REPLAY, "--backend-settings", json.dumps({"delay_s": 0.15}), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if len(list((out / "store" / "results").glob("part-*.parquet"))) >= 6:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.kill()   # kill -9 of the process that owns the driver actor: the driver dies with it
    process.wait()
    recorded_before = len(ResultStore(out / "store").results()) // 2
    assert recorded_before > 0
    resumed = subprocess.run([sys.executable, "-m", "raygems", "search", "--out", str(out), "--resume",
                              "--address", address, "--quiet"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    offline = replay(tree.matrix, "ours", 8, reps=1, seed=4, exact=True).per_rep.iloc[0]
    assert summary["chosen_model"] == offline["model_id"]
    assert summary["queries_reused"] >= recorded_before
    assert summary["queries_paid"] + summary["queries_reused"] == offline["budget_used"]
    assert_nothing_paid_twice(out)


def test_ctrl_c_exits_130_and_says_how_to_continue(recorded, tmp_path):
    """SIGINT to the command's process group (what Ctrl-C does in a terminal): exit status 130, no traceback,
    one line naming `--resume`; the resumed search finishes and pays for nothing twice."""
    import ray

    tree, matrix, models = recorded
    out = tmp_path / "search"
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "raygems", "search", "--matrix", str(matrix), "--models", str(models),
               "--method", "ours", "--budget", "8", "--seed", "4", "--out", str(out), "--address", address,
               "--max-loaded", "2", "--cpus-per-model", "0.25", "--chunk-size", "8", "--no-final-evaluation",
               "--backend", SIMULATED_REPLAY, "--backend-settings", json.dumps({"delay_s": 0.15}), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # a new session, with SIGINT's default handling restored (a background job inherits SIG_IGN for it)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if len(list((out / "store" / "results").glob("part-*.parquet"))) >= 4:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read()[-2000:]
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and f"raygems search --resume --out {out}" in err, err[-2000:]
    resumed = subprocess.run([sys.executable, "-m", "raygems", "search", "--out", str(out), "--resume",
                              "--address", address, "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    offline = replay(tree.matrix, "ours", 8, reps=1, seed=4, exact=True).per_rep.iloc[0]
    assert json.loads((out / "summary.json").read_text())["chosen_model"] == offline["model_id"]
    assert_nothing_paid_twice(out)


def test_preempted_worker_node_mid_round_then_a_new_node(recorded, tmp_path):
    """Simulated multi-node cluster (ray.cluster_utils.Cluster) in its own process."""
    tree, matrix, models = recorded
    store = tmp_path / "store"
    script = Path(__file__).with_name("cluster_scenario.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), str(matrix), str(models), str(store)], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["removed"] and result["added"]
    offline = replay(tree.matrix, "ours", 8, reps=1, seed=4, exact=True).per_rep.iloc[0]
    assert result["chosen_model"] == offline["model_id"]
    assert result["budget_used"] == offline["budget_used"]
    assert not result["failed"]
    assert_nothing_paid_twice(tmp_path)


def test_a_learned_prior_prunes_before_anything_is_downloaded(recorded, tmp_path):
    """--prior orders the candidates, prunes the bottom share (never the popular base) and gives BayesElim
    informed starting beliefs; pruned models are never evaluated."""
    import torch

    from raygems.prior import ModelPrior, PriorConfig

    tree = recorded[0]
    records = tree.matrix.task_accuracies().rename(columns={"accuracy": "score"})
    torch.set_num_threads(1)
    prior = ModelPrior(PriorConfig(steps=150, list_size=16, calibration_fraction=0.2, seed=0)).fit(records)
    prior_dir = prior.save(tmp_path / "prior")
    result = run_search(config(recorded, tmp_path / "search", method="bayes-elim", prior=str(prior_dir),
                               prior_task="gsm8k", prior_keep=0.5))
    k = tree.matrix.num_models
    pruned = result.summary["pruned_by_prior"]
    assert len(pruned) == k - result.summary["num_candidates"] and k // 2 - 1 <= len(pruned) <= k // 2
    assert result.summary["popular_base"] not in pruned
    evaluated = set(ResultStore(tmp_path / "search" / "store").results()["model_id"])
    assert not evaluated & set(pruned)
    kept_accuracy = tree.matrix.accuracies[[tree.matrix.model_ids.index(m) for m in tree.matrix.model_ids
                                            if m not in pruned]].mean()
    assert kept_accuracy > tree.matrix.accuracies.mean()   # the prior kept the better half on average
