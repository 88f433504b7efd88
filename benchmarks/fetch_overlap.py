"""Benchmark: does fetching overlap evaluation? The tiny tree served by the local hub at a bandwidth where
downloading costs about as much as evaluating, searched live with the fetch stage (downloads ahead of the slots)
and with the serial design (a checkpoint is downloaded only when a slot needs it, the slot waiting), each from an
empty checkpoint cache under a limit smaller than the tree.

    python benchmarks/fetch_overlap.py [--bandwidth 1e6] [--cache-limit 3MB] [--method uniform] [--budget 40]
        [--fetch-concurrency 2] [--repeat 1] [--json out.json] [--keep DIR]

`--repeat N` runs the pair N times (alternating the designs, so that a change in the machine's load hits both)
and reports each run and the median ratio per design: on a 2-core machine one run's ratio moves by +-0.05.

`--method uniform` is one round: every download can overlap evaluation, and the bound below is reachable up to
the start-up (the first checkpoint must arrive and load before any slot works) and the last checkpoint's
evaluation. A method with rounds (the default, recommended) must download a round's candidates before the round
can end, and the later rounds (a few survivors, reloaded in turn) have little left to download: the bound below
then ignores that dependency and no schedule reaches it (docs/performance.md).

Reported per design: wall time of the search (summary.json `elapsed_s`, which includes listing the tree over
the hub and building the pool) and the driver's own (`cost.wall_s`, from its start to its end), bytes fetched,
the fetch floor (bytes / bandwidth: the hub's link is one token bucket shared by all downloads), the evaluation
floor (slot-busy seconds / slots), their maximum (the bound: no schedule does better), the ratios of both wall
times to that bound, the round-by-round bound (per round the larger of its downloads / bandwidth and its
slot-busy seconds / slots, added up), and the largest cache size sampled on disk every 0.1 s against the limit. Target (issue
"The live search at real tree sizes"): the fetch stage within 1.25x of the bound.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from raygems.demo.builder.build import cpu_model
from raygems.runtime.config import DEFAULT_METHOD


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder`; what is deleted while it looks (the cache evicts) is skipped."""
    total = 0
    for parent, _, names in os.walk(folder):      # os.walk skips a folder that vanished under it
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                pass
    return total


def run_design(tree_root: Path, bandwidth: float, limit: str, fetch_ahead: bool, scratch: Path, args,
               repetition: int = 0) -> dict:
    from huggingface_hub import constants

    from raygems.demo.tree_spec import BASE
    from raygems.hub.catalog import DirectoryCatalog
    from raygems.hub.serve import HubServer
    from raygems.runtime import SearchConfig, run_search
    from raygems.runtime.cache import parse_size

    name = ("ahead" if fetch_ahead else "serial") + (f"-{repetition}" if repetition else "")
    cache = scratch / f"cache-{name}"
    cache.mkdir(parents=True)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], folder_bytes(cache))
            time.sleep(0.1)

    load_before = os.getloadavg()[0]
    with HubServer(DirectoryCatalog(tree_root), bandwidth=bandwidth) as hub:
        constants.ENDPOINT = hub.endpoint
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        config = SearchConfig(out=str(scratch / f"run-{name}"), tree=BASE,
                              tasks=("toy_arith", "toy_choice"), per_task=args.per_task, budget=args.budget,
                              method=args.method, fetch_concurrency=args.fetch_concurrency,
                              max_loaded=2, cpus_per_model=1.0, backend_settings={"batch_size": 64, "device": "cpu"},
                              cache_dir=str(cache), cache_limit=limit, fetch_ahead=fetch_ahead,
                              final_evaluation=False, progress=False)
        result = run_search(config)
        stop.set()
        sampler.join()
    summary = result.summary
    cost = summary["cost"]
    wall = summary["elapsed_s"]
    busy = cost["slot_busy_fraction"] * cost["slots"] * cost["wall_s"]
    fetch_floor = cost["fetch_bytes"] / bandwidth
    evaluation_floor = busy / cost["slots"]
    bound = max(fetch_floor, evaluation_floor)
    round_bound = _round_by_round_bound(Path(config.out) / "events.parquet", bandwidth, cost["slots"]) or bound
    return {"design": "fetch ahead" if fetch_ahead else "serial (fetch when a slot needs it)",
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "search_s": wall, "fetch_bytes": cost["fetch_bytes"], "fetch_floor_s": round(fetch_floor, 2),
            "evaluation_floor_s": round(evaluation_floor, 2), "bound_s": round(bound, 2),
            "ratio_to_bound": round(wall / bound, 2), "driver_wall_s": round(cost["wall_s"], 2),
            "driver_ratio_to_bound": round(cost["wall_s"] / bound, 2), "loads": cost["loads"], "reloads": cost["reloads"],
            "round_bound_s": round(round_bound, 2),
            "driver_ratio_to_round_bound": round(cost["wall_s"] / round_bound, 2),
            "slot_busy_fraction": cost["slot_busy_fraction"], "cache_limit_bytes": parse_size(limit),
            "peak_cache_bytes_reported": cost["peak_cache_bytes"], "peak_cache_bytes_sampled": peak[0],
            "chosen_model": summary["chosen_model"]}


def _round_by_round_bound(events_path: Path, bandwidth: float, slots: int) -> float:
    """The bound of a search with rounds: a round ends only when its evaluations do, and the next round's
    candidates are known only then, so per round max(its downloads / bandwidth, its slot-busy seconds / slots),
    added up (downloads counted in the round they finished in)."""
    import pandas as pd

    events = pd.read_parquet(events_path)
    calls, fetches = events[events["kind"] == "call"], events[events["kind"] == "fetch"]
    ends = sorted(events.loc[events["kind"] == "round", "t"])
    total, start = 0.0, float("-inf")
    for number, end in enumerate(ends, start=1):
        in_round = calls[calls["round"] == number]
        busy = float((in_round["returned"] - in_round["submitted"]).sum())
        fetched = float(fetches.loc[(fetches["completed"] > start) & (fetches["completed"] <= end), "bytes"].sum())
        total += max(fetched / bandwidth, busy / slots)
        start = end
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bandwidth", type=float, default=1e6, help="the local hub's bytes per second (1e6)")
    parser.add_argument("--cache-limit", default="3MB", help="checkpoint cache limit (3MB: less than the tree)")
    parser.add_argument("--per-task", type=int, default=60)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--method", default=DEFAULT_METHOD, help="search method (default %(default)s; 'uniform' is "
                                                                  "one round: every fetch can overlap evaluation)")
    parser.add_argument("--fetch-concurrency", type=int, default=2, help="downloads at once (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="run the pair of designs this many times (1)")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--keep", metavar="DIR", help="keep the run directories (events.parquet) in DIR (a new, "
                                                      "empty folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray

    from raygems.demo import install_tiny_tree

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = []
    with tempfile.TemporaryDirectory(prefix="fetch-overlap-") as scratch:
        scratch = args.keep or scratch
        tree = install_tiny_tree(Path(scratch) / "tree")
        load_before = os.getloadavg()
        for repetition in range(args.repeat):
            designs = (True, False) if repetition % 2 == 0 else (False, True)
            for fetch_ahead in designs:
                result = run_design(tree.root, args.bandwidth, args.cache_limit, fetch_ahead, Path(scratch), args,
                                    repetition)
                print(json.dumps(result), flush=True)
                results.append(result)
    medians = {}
    for design in sorted({r["design"] for r in results}):
        runs = [r for r in results if r["design"] == design]
        medians[design] = {key: statistics.median(r[key] for r in runs)
                           for key in ("driver_ratio_to_bound", "ratio_to_bound", "driver_ratio_to_round_bound")}
    print(json.dumps({"median": medians}), flush=True)
    record = {"method": args.method, "fetch_concurrency": args.fetch_concurrency, "bandwidth": args.bandwidth,
              "cache_limit": args.cache_limit, "per_task": args.per_task, "budget": args.budget,
              "repeat": args.repeat, "cpu": cpu_model(), "cpus": os.cpu_count(),
              "load_before": [round(x, 1) for x in load_before], "load_after": [round(x, 1) for x in os.getloadavg()],
              "date": time.strftime("%Y-%m-%d %H:%M"), "median": medians, "results": results}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
