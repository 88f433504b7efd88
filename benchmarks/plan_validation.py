"""Benchmark: does a plan predict a real search's wall time? The tiny tree served by the local hub at three
settings, each searched live from an empty checkpoint cache:

    fetch-bound     a slow link (150 kB/s), few queries
    balanced        1 MB/s, downloading about as long as evaluating (benchmarks/fetch_overlap.py's setting)
    compute-bound   a fast link (20 MB/s), many queries and a larger budget

Then a plan calibrated from each run (`raygems.plan.calibrate`: every speed it measured, the stated bandwidth
of the other setting, the run's per-model accuracies for the simulated answers) predicts the wall time of the
other two (summary.json `cost.wall_s`: the driver's time, first round to the end of the final evaluation).
Target (issue "What a search will cost before it starts"): within 25%.

    python benchmarks/plan_validation.py --runs DIR [--reuse] [--json out.json]

`--reuse` predicts from runs already in DIR (the searches take minutes on a loaded 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

SETTINGS = {
    "fetch-bound": {"bandwidth": 150e3, "per_task": 30, "budget": 10},
    "balanced": {"bandwidth": 1e6, "per_task": 60, "budget": 20},
    "compute-bound": {"bandwidth": 20e6, "per_task": 200, "budget": 60},
}
CACHE_LIMIT = "3MB"          # less than the tree's 7.3 MB of checkpoint files: checkpoints are deleted to make room
MAX_LOADED = 2


def search_config(name: str, runs: Path):
    from raygems.demo.tree_spec import BASE
    from raygems.runtime import SearchConfig

    setting = SETTINGS[name]
    return SearchConfig(out=str(runs / name), tree=BASE, tasks=("toy_arith", "toy_choice"),
                        per_task=setting["per_task"], budget=setting["budget"], max_loaded=MAX_LOADED,
                        cpus_per_model=1.0, backend_settings={"batch_size": 64, "device": "cpu"},
                        cache_dir=str(runs / f"cache-{name}"), cache_limit=CACHE_LIMIT, progress=False)


def run_live(name: str, runs: Path, tree_root: Path) -> dict:
    from huggingface_hub import constants

    from raygems.hub.catalog import DirectoryCatalog
    from raygems.hub.serve import HubServer
    from raygems.runtime import run_search

    with HubServer(DirectoryCatalog(tree_root), bandwidth=SETTINGS[name]["bandwidth"]) as hub:
        constants.ENDPOINT = hub.endpoint
        load = os.getloadavg()
        result = run_search(search_config(name, runs))
    return {"setting": name, "wall_s": result.summary["cost"]["wall_s"], "load_before": round(load[0], 1),
            "load_after": round(os.getloadavg()[0], 1), "chosen": result.summary["chosen_model"],
            "rounds": result.summary["rounds"], "cost": result.summary["cost"]}


def predict(calibrating: str, target: str, runs: Path, tree_root: Path) -> dict:
    from huggingface_hub import constants

    from raygems.hub.catalog import DirectoryCatalog
    from raygems.hub.serve import HubServer
    from raygems.plan import Cluster, Speeds, simulate
    from raygems.plan.calibrate import calibrate
    from raygems.plan.workload import with_facts, work_for_search
    from raygems.runtime.cache import parse_size

    with HubServer(DirectoryCatalog(tree_root)) as hub:      # sizes from hub metadata; nothing downloaded
        constants.ENDPOINT = hub.endpoint
        config = search_config(target, runs)
        probe = work_for_search(config)
        sizes = dict(zip(probe.model_ids, probe.sizes.tolist()))
        calibration = calibrate(runs / calibrating, Speeds(), sizes=sizes)
    work = with_facts(probe, calibration.facts)           # as `raygems plan --calibrate-from` does
    speeds = replace(calibration.speeds, download_bandwidth=SETTINGS[target]["bandwidth"])
    cluster = Cluster(nodes=1, gpus_per_node=0, max_loaded=MAX_LOADED, fetch_concurrency=config.fetch_concurrency,
                      cache_limit_bytes=parse_size(CACHE_LIMIT))
    plan = simulate(work, cluster, speeds)
    actual = json.loads((runs / target / "summary.json").read_text())
    cost = actual["cost"]
    return {"calibrated_from": calibrating, "target": target, "predicted_wall_s": round(plan.wall_s, 1),
            "actual_wall_s": cost["wall_s"], "error": round(plan.wall_s / cost["wall_s"] - 1, 3),
            "predicted": {k: plan.as_dict()[k] for k in ("rounds", "calls", "loads", "reloads", "fetch_bytes",
                                                         "peak_cache_bytes", "search_s", "final_s")},
            "actual": {"rounds": actual["rounds"], "calls": cost["calls"], "loads": cost["loads"],
                       "reloads": cost["reloads"], "fetch_bytes": cost["fetch_bytes"],
                       "peak_cache_bytes": cost["peak_cache_bytes"]},
            "speeds": calibration.speeds.as_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="folder for the three runs (kept: --reuse predicts again)")
    parser.add_argument("--reuse", action="store_true", help="do not search again; predict from the runs there")
    parser.add_argument("--only", help="comma-separated settings to run (default: all three)")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from raygems.demo import default_tiny_tree_root, install_tiny_tree

    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    tree = install_tiny_tree(os.environ.get("RAYGEMS_TINY_TREE_DIR") or default_tiny_tree_root())
    names = args.only.split(",") if args.only else list(SETTINGS)
    live = []
    if not args.reuse:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        for name in names:
            record = run_live(name, runs, tree.root)
            print(json.dumps({k: v for k, v in record.items() if k != "cost"}), flush=True)
            live.append(record)
        ray.shutdown()
    done = [name for name in SETTINGS if (runs / name / "events.parquet").is_file()]
    predictions = []
    for calibrating in done:
        for target in done:
            if target != calibrating:
                prediction = predict(calibrating, target, runs, tree.root)
                print(json.dumps({k: prediction[k] for k in ("calibrated_from", "target", "predicted_wall_s",
                                                              "actual_wall_s", "error")}), flush=True)
                predictions.append(prediction)
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "settings": SETTINGS,
              "cache_limit": CACHE_LIMIT, "max_loaded": MAX_LOADED, "live": live, "predictions": predictions}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
