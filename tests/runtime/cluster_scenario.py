"""A preempted GPU node, simulated: run a live search on a multi-node Ray cluster on this machine
(ray.cluster_utils.Cluster), remove the worker node holding the model actors mid-round, add a new one,
and report the outcome as JSON. Run as a script (its own Ray cluster, apart from the test session's)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import ray

from raygems.runtime import DriverSettings, EvaluatorSpec, SearchConfig
from raygems.runtime.driver import remote_driver
from raygems.runtime.candidates import load_candidates
from raygems.runtime.testing import SIMULATED_REPLAY

from preemption import add_worker_node, on_a_cluster, preempt_mid_search

SLOTS = {"num_cpus": 2, "resources": {"model_slot": 3}}


def main(matrix: str, models: str, store: str) -> dict:
    return on_a_cluster(lambda cluster: _search(cluster, matrix, models, store))


def _search(cluster, matrix: str, models: str, store: str) -> dict:
    worker = add_worker_node(cluster, SLOTS)
    config = SearchConfig(out=str(Path(store).parent), matrix=matrix, models=models, method="ours", budget=8, seed=4)
    candidates, pool = load_candidates(config)
    spec = EvaluatorSpec(backend=SIMULATED_REPLAY, matrix=matrix, settings={"delay_s": 0.15})
    settings = DriverSettings(method="ours", budget_per_model=8, seed=4, max_loaded=3, cpus_per_model=0.5,
                              chunk_size=8, slot_resource="model_slot")
    driver = remote_driver().remote(candidates, pool, store, spec, settings)   # pinned to the head node
    # the node and its model actors are gone, mid-round
    preempted = preempt_mid_search(cluster, worker, SLOTS, driver.run.remote(), store, after_parts=6, deadline_s=240)
    outcome = preempted["outcome"]
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    return {"chosen_model": outcome["chosen_model"], "budget_used": outcome["budget_used"],
            "failed": outcome["failed"], "removed": preempted["removed"], "added": preempted["added"],
            "alive_nodes": len(nodes), "paid": outcome["progress"]["paid"]}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:4])))
