"""The fetch stage on a real local Ray cluster: the tiny tree served over HTTP by the local hub (real downloads by
the real huggingface_hub client), fetched to a node-local cache by a CPU-only fetch worker while the slots
evaluate, under a cache limit smaller than the tree; the search chooses what it chooses from local folders."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from raygems.demo.tree_spec import BASE
from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.download import select_checkpoint_files
from raygems.hub.serve import HubServer
from raygems.runtime import SearchConfig, run_search
from raygems.runtime.fetch import slots_by_node

from tiny_tree_fixture import tiny_tree  # noqa: F401 - fixture

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]

# sequential halving: few rounds (each round reloads the survivors: a tiny model's load, ~0.3 s, is most of it)
SETTINGS = dict(tasks=("toy_arith",), per_task=16, budget=4, seed=1, method="sequential-halving", max_loaded=3,
                cpus_per_model=0.5, backend_settings={"batch_size": 64, "device": "cpu"}, progress=False,
                final_evaluation=False)


@pytest.fixture
def hub(tiny_tree, monkeypatch):  # noqa: F811
    """The tiny tree on a local hub, as HF_ENDPOINT for this process (the search hands it to its workers)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(DirectoryCatalog(tiny_tree.root)) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        yield server


def test_a_hub_tree_is_fetched_under_the_cache_limit_and_chooses_as_a_local_tree(tiny_tree, hub, tmp_path):  # noqa: F811
    local = run_search(SearchConfig(out=str(tmp_path / "local"), tree=str(tiny_tree.root), **SETTINGS))
    limit = 2_500_000                  # the tree's checkpoints are ~6.6 MB: files must be deleted to make room
    fetched = run_search(SearchConfig(out=str(tmp_path / "hub"), tree=BASE, cache_dir=str(tmp_path / "cache"),
                                      cache_limit=str(limit), **SETTINGS))
    assert fetched.summary["chosen_model"] == local.summary["chosen_model"]
    assert fetched.summary["budget_used"] == local.summary["budget_used"]
    cost = fetched.summary["cost"]
    assert cost["fetch_bytes"] > limit and 0 < cost["peak_cache_bytes"] <= limit     # evictions happened
    assert cost["loads"] >= fetched.summary["num_candidates"] - len(tiny_tree.broken) and cost["fetch_s"] > 0
    failed = {f["model_id"]: f for f in fetched.summary["failed_models"]}
    assert set(failed) == set(tiny_tree.broken)           # broken uploads fail at load, as from local folders
    for folder in (tmp_path / "cache").glob("*/*"):       # only what loading needs was fetched
        names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        assert sorted(names) == sorted(select_checkpoint_files(names)) and "README.md" not in names
    used = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file() and ".raygems" not in p.name)
    assert used <= limit
    # one node: the first downloads start while the model actors' processes start, not after they are placed
    events = pd.read_parquet(tmp_path / "hub" / "events.parquet")
    first_placed = events.loc[events["kind"] == "slot_placed", "t"].min()
    assert events.loc[events["kind"] == "fetch", "launched"].min() < first_placed


def test_unplaced_slots_count_on_the_only_node_that_can_hold_them():
    assert slots_by_node(["a", None, "b", "a"]) == {"a": 2, "b": 1}          # several nodes: placed ones only
    assert slots_by_node([None, None], only_node="a") == {"a": 2}
    assert slots_by_node(["a", None], only_node="a") == {"a": 2}
    assert slots_by_node([None]) == {}


def test_a_checkpoint_that_cannot_be_fetched_fails_that_model_only(tiny_tree, hub, tmp_path):  # noqa: F811
    victim = "mathwiz/tiny-math-v1"
    hub.fail_next(f"/{victim}/resolve/", [404] * 20)
    hub.fail_next(f"/api/models/{victim}", [404] * 20)
    result = run_search(SearchConfig(out=str(tmp_path / "run"), tree=BASE, cache_dir=str(tmp_path / "cache"),
                                     **SETTINGS))
    failed = {f["model_id"]: f for f in result.summary["failed_models"]}
    assert failed[victim]["stage"] == "fetch" and victim in failed[victim]["reason"]
    assert result.summary["chosen_model"] != victim
    store_failures = json.loads((tmp_path / "run" / "summary.json").read_text())["failed_models"]
    assert {f["model_id"] for f in store_failures} == set(failed)


def test_a_downloader_that_cannot_start_stops_the_search_with_its_reason(tmp_path):
    """A cache folder that cannot be made (here: under a file) stops the search with one line, not a loop that
    starts a new downloader for every event (the driver took its death for a node that left)."""
    import ray

    from raygems.errors import SetupError
    from raygems.hub.types import ModelRecord
    from raygems.runtime.fetch import FetchSettings, FetchStage

    (tmp_path / "a-file").write_text("x")
    node = ray.get_runtime_context().get_node_id()
    stage = FetchStage([ModelRecord(model_id="org/a"), ModelRecord(model_id="org/b")],
                       FetchSettings(cache_dir=str(tmp_path / "a-file" / "cache"), endpoint="http://127.0.0.1:9"))
    stage.set_slots({node: 1}, idle_slots=1)
    stage.want([0, 1])
    ready, _ = ray.wait(stage.pending(), num_returns=1, timeout=60)
    with pytest.raises(SetupError, match=r"downloader of node \w+ could not start: .*NotADirectoryError.*a-file"):
        stage.completed(ready[0])
    stage.shutdown()


def test_fetched_files_are_reused_by_the_next_search(tiny_tree, hub, tmp_path):  # noqa: F811
    cache = str(tmp_path / "cache")
    first = run_search(SearchConfig(out=str(tmp_path / "a"), tree=BASE, cache_dir=cache, **SETTINGS))
    second = run_search(SearchConfig(out=str(tmp_path / "b"), tree=BASE, cache_dir=cache, **SETTINGS))
    assert first.summary["cost"]["fetch_bytes"] > 0 and second.summary["cost"]["fetch_bytes"] == 0
    assert second.summary["chosen_model"] == first.summary["chosen_model"]
    assert Path(cache, BASE, ".raygems_download.json").is_file()


@pytest.mark.parametrize("bandwidth", ["1.5e6", "0"], ids=["downloads-going", "downloads-done"])
def test_a_node_that_leaves_while_checkpoints_are_fetched_then_a_new_one(tiny_tree, tmp_path, bandwidth):  # noqa: F811
    """The hub-fetch search on a simulated multi-node cluster (tests/runtime/cluster_fetch_scenario.py, in its own
    process): the node holding the model actors and the node's downloader leaves mid-search (with downloads still
    going, or all done: then only its model actors' deaths say so), a new node joins; the search re-fetches there
    and chooses what the offline replay of the same answers chooses, paying no pair twice."""
    import os
    import subprocess
    import sys

    import numpy as np

    from raygems.replay import CorrectnessMatrix, replay

    ids = sorted(m.model_id for m in tiny_tree.working() if m.kind != "merge")
    rng = np.random.default_rng(3)
    levels = np.linspace(0.2, 0.9, len(ids))
    values = (rng.random((len(ids), 48)) < levels[:, None]).astype(np.uint8)
    matrix = CorrectnessMatrix(values, tuple(ids), tuple(f"q{i}" for i in range(48)))
    path = matrix.to_parquet(tmp_path / "matrix.parquet")
    store = tmp_path / "run" / "store"
    script = Path(__file__).with_name("cluster_fetch_scenario.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), str(tiny_tree.root), str(path), str(store),
                           str(tmp_path / "cache"), bandwidth], env=env, capture_output=True, text=True, timeout=400)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["removed"] and result["added"] and not result["failed"]
    offline = replay(matrix, "ours", 8, reps=1, seed=4, exact=True).per_rep.iloc[0]
    assert (result["chosen_model"], result["budget_used"]) == (offline["model_id"], offline["budget_used"])
    parts = sorted((store / "results").glob("part-*.parquet"))
    keys = pd.concat([pd.read_parquet(p) for p in parts])[["model_id", "revision", "query_id", "variant"]]
    assert not keys.duplicated().any()
