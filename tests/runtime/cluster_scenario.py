"""A preempted GPU node, simulated: run a live search on a multi-node Ray cluster on this machine
(ray.cluster_utils.Cluster), remove the worker node holding the model actors mid-round, add a new one,
and report the outcome as JSON. Run as a script (its own Ray cluster, apart from the test session's)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from raygems.runtime import DriverSettings, EvaluatorSpec, SearchConfig
from raygems.runtime.driver import remote_driver
from raygems.runtime.candidates import load_candidates
from raygems.runtime.testing import SIMULATED_REPLAY


def main(matrix: str, models: str, store: str) -> dict:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        return _search(cluster, matrix, models, store)
    finally:                   # (whatever happened: no cluster left running, or recorded in /tmp/ray as current)
        ray.shutdown()
        cluster.shutdown()


def _search(cluster: Cluster, matrix: str, models: str, store: str) -> dict:
    worker = cluster.add_node(num_cpus=2, resources={"model_slot": 3})
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    config = SearchConfig(out=str(Path(store).parent), matrix=matrix, models=models, method="ours", budget=8, seed=4)
    candidates, pool = load_candidates(config)
    spec = EvaluatorSpec(backend=SIMULATED_REPLAY, matrix=matrix, settings={"delay_s": 0.15})
    settings = DriverSettings(method="ours", budget_per_model=8, seed=4, max_loaded=3, cpus_per_model=0.5,
                              chunk_size=8, slot_resource="model_slot")
    driver = remote_driver().remote(candidates, pool, store, spec, settings)   # pinned to the head node
    run = driver.run.remote()
    removed = added = False
    deadline = time.time() + 240
    while time.time() < deadline:
        ready, _ = ray.wait([run], timeout=0.3)
        if ready:
            break
        written = len(list((Path(store) / "results").glob("part-*.parquet")))
        if not removed and written >= 6:
            cluster.remove_node(worker)          # the node and its model actors are gone, mid-round
            removed = True
            time.sleep(1.0)
            cluster.add_node(num_cpus=2, resources={"model_slot": 3})   # elastic scaling brings another
            added = True
    outcome = ray.get(run, timeout=300)
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    return {"chosen_model": outcome["chosen_model"], "budget_used": outcome["budget_used"],
            "failed": outcome["failed"], "removed": removed, "added": added, "alive_nodes": len(nodes),
            "paid": outcome["progress"]["paid"]}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:4])))
