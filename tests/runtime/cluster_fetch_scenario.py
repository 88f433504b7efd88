"""A preempted GPU node while checkpoints are fetched from the hub, simulated: a live search of a hub tree (the
tiny tree served by the local hub; answers from a correctness matrix of its model ids, so that which model wins
is known) on a multi-node Ray cluster on this machine (ray.cluster_utils.Cluster). The worker node that holds
the model actors and the node's downloader is removed mid-search, then a new node joins; the outcome is
printed as JSON. Run as a script (its own Ray cluster, apart from the test session's):

    python cluster_fetch_scenario.py TREE_ROOT MATRIX STORE CACHE_DIR BANDWIDTH

BANDWIDTH: the hub's bytes/s (downloads still going when the node leaves), or 0 for no limit (every download
done by then: only the node's model actors tell the search that it left).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import ray

from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.serve import HubServer
from raygems.runtime import DriverSettings, EvaluatorSpec, SearchConfig
from raygems.runtime.candidates import load_candidates
from raygems.runtime.driver import remote_driver
from raygems.runtime.fetch import FetchSettings, FetchStage
from raygems.runtime.testing import SIMULATED_REPLAY

from preemption import add_worker_node, on_a_cluster, preempt_mid_search

SLOTS = {"num_cpus": 2, "resources": {"model_slot": 2}}


def main(tree_root: str, matrix: str, store: str, cache_dir: str, bandwidth: str) -> dict:
    return on_a_cluster(lambda cluster: _search(cluster, tree_root, matrix, store, cache_dir, float(bandwidth) or None))


def _search(cluster, tree_root: str, matrix: str, store: str, cache_dir: str, bandwidth: float | None) -> dict:
    worker = add_worker_node(cluster, SLOTS)
    config = SearchConfig(out=str(Path(store).parent), matrix=matrix, method="ours", budget=8, seed=4)
    candidates, pool = load_candidates(config)
    spec = EvaluatorSpec(backend=SIMULATED_REPLAY, matrix=matrix, settings={"delay_s": 0.15})
    settings = DriverSettings(method="ours", budget_per_model=8, seed=4, max_loaded=2, cpus_per_model=0.5,
                              chunk_size=8, slot_resource="model_slot")
    with HubServer(DirectoryCatalog(Path(tree_root)), bandwidth=bandwidth) as hub:
        fetch = FetchStage(candidates, FetchSettings(cache_dir=str(Path(cache_dir) / "{node}"), endpoint=hub.endpoint,
                                                     offline=False))
        driver = remote_driver().remote(candidates, pool, store, spec, settings, fetch)   # pinned to the head node
        # its model actors and its downloader are gone, mid-search
        preempted = preempt_mid_search(cluster, worker, SLOTS, driver.run.remote(), store, after_parts=4,
                                       deadline_s=300)
        ray.get(driver.shutdown.remote())
    outcome = preempted["outcome"]
    return {"chosen_model": outcome["chosen_model"], "budget_used": outcome["budget_used"],
            "failed": outcome["failed"], "removed": preempted["removed"], "added": preempted["added"]}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:6])))
