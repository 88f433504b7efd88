"""Shared by the preemption scenarios (cluster_scenario.py, cluster_fetch_scenario.py): a simulated multi-node Ray
cluster on this machine (ray.cluster_utils.Cluster) that is always shut down, and the preemption itself: the
worker node removed once the search has written some parts, then a new one added."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import ray
from ray.cluster_utils import Cluster


def on_a_cluster(search: Callable[[Cluster], dict]) -> dict:
    """`search(cluster)` on a new cluster (a 1-CPU head node), shut down whatever happens: no cluster is left
    running, or recorded in /tmp/ray as the current one."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        return search(cluster)
    finally:
        ray.shutdown()
        cluster.shutdown()


def add_worker_node(cluster: Cluster, node: dict[str, Any]) -> Any:
    """A worker node (`node`: its `add_node` arguments), with this process connected to the cluster."""
    worker = cluster.add_node(**node)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    return worker


def preempt_mid_search(cluster: Cluster, worker: Any, node: dict[str, Any], run, store: str, after_parts: int,
                       deadline_s: float) -> dict:
    """While the driver's `run` goes on: once the store holds `after_parts` result parts, remove `worker` (its
    model actors, and anything else on it, are gone) and add another node like it (elastic scaling). Returns the
    driver's outcome, and whether both happened."""
    removed = added = False
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        ready, _ = ray.wait([run], timeout=0.3)
        if ready:
            break
        written = len(list((Path(store) / "results").glob("part-*.parquet")))
        if not removed and written >= after_parts:
            cluster.remove_node(worker)
            removed = True
            time.sleep(1.0)
            cluster.add_node(**node)
            added = True
    outcome = ray.get(run, timeout=300)
    return {"outcome": outcome, "removed": removed, "added": added}
