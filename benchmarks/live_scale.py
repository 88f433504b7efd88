"""Benchmark: the live search's driver at real tree sizes, with the replay backend (answers from a recorded matrix,
so everything but generation runs for real: Ray, the driver, the model actors, the result store).

    python benchmarks/live_scale.py --sizes 617,2000,10000 --budget 50 [--json benchmarks/results/live_scale.json]

For each K it writes a synthetic tree (`raygems.populations`, the paper's Mistral-7B shape stretched to K models,
100 queries per task x 5 tasks), runs `raygems search --matrix ... --no-final-evaluation --quiet` as a fresh
process (which starts its own local Ray, as a user's command does), and samples every process of that run twice
a second: CPU seconds and peak memory (RSS) of the CLI process, the driver actor, the model actors and Ray's
own processes. It reports wall time (whole command, and the search as summary.json times it), actor calls,
per-call overhead (wall time per call and slot, over the whole search and over its rounds alone; the median time
a call spends outside the actor's own work, i.e. in Ray and the driver; the driver's handling time per event,
from the run's events.parquet), and the CLI's polling CPU share.

Targets (issue "The live search at real tree sizes", on the 2-core machine): K = 2,000 within 90 s; K = 10,000
within 10 minutes; driver memory under 1 GB; per actor call overhead within 15 ms; the CLI under 5% of a core.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Process roles, recognised by their command lines (Ray renames an actor's process `ray::<Class>` once the actor
#: starts; before, a worker's command line is `default_worker.py ... --raylet-name=...`).
ROLES = (("driver actor", "ray::SearchDriver"), ("model actors", "ray::ModelActor"),
         ("fetch workers", "ray::FetchWorker"), ("idle workers", "default_worker.py"), ("idle workers", "ray::IDLE"),
         ("raylet", "/raylet "), ("gcs", "gcs_server"), ("dashboard/agents", "ray/dashboard"),
         ("log monitor", "log_monitor.py"))


def write_tree(folder: Path, k: int, seed: int = 0) -> tuple[Path, Path]:
    from raygems.populations import generate_tree

    adapters = k // 10
    tree = generate_tree("mistral-7b", num_finetunes=k - adapters, num_adapters=adapters, queries_per_task=100,
                         seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    matrix = tree.matrix.to_parquet(folder / "matrix.parquet")
    models = folder / "models.parquet"
    tree.models[["model_id", "downloads", "is_base"]].to_parquet(models, index=False)
    return matrix, models


def role_of(cmdline: str) -> str:
    for role, marker in ROLES:
        if marker in cmdline:
            return role
    return "other"


def run_one(k: int, budget: int, method: str, scratch: Path, extra: list[str]) -> dict:
    import psutil

    matrix, models = write_tree(scratch / f"tree-{k}", k)
    out = scratch / f"run-{k}"
    command = [sys.executable, "-m", "raygems", "search", "--matrix", str(matrix), "--models", str(models),
               "--budget", str(budget), "--method", method, "--out", str(out), "--no-final-evaluation", "--quiet",
               *extra]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = psutil.Process(process.pid)
    seen: dict[int, dict] = {}           # pid -> role, last cpu seconds, peak rss
    while process.poll() is None:
        try:
            family = [cli] + cli.children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for proc in family:
            try:
                info = seen.setdefault(proc.pid, {"role": "other", "cpu": 0.0, "rss": 0})
                if info["role"] in ("other", "idle workers"):   # a worker becomes an actor later
                    info["role"] = "cli" if proc.pid == cli.pid else role_of(" ".join(proc.cmdline()))
                times = proc.cpu_times()
                info["cpu"] = times.user + times.system
                info["rss"] = max(info["rss"], proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        time.sleep(0.5)
    wall = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"K={k}: the search failed (exit {process.returncode}):\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    roles: dict[str, dict] = {}
    for info in seen.values():
        role = roles.setdefault(info["role"], {"processes": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
        role["processes"] += 1
        role["cpu_s"] = round(role["cpu_s"] + info["cpu"], 1)
        role["peak_rss_mb"] = round(max(role["peak_rss_mb"], info["rss"] / 2**20), 1)
    cost = summary.get("cost", {})
    calls = cost.get("calls")
    search_s = summary["elapsed_s"]
    slots = cost.get("slots")
    return {
        "K": k, "N": budget, "method": method, "wall_s": round(wall, 1), "search_s": search_s,
        "rounds": summary["rounds"], "queries_paid": summary["queries_paid"], "calls": calls, "slots": slots,
        "slot_busy_fraction": cost.get("slot_busy_fraction"),
        # wall time of the search per actor call and slot: what one call costs beyond the (zero) replay work
        "ms_per_call_per_slot": round(1000 * search_s * slots / calls, 1) if calls and slots else None,
        # the CLI process while it waited for the search (progress polling): CPU seconds / wall seconds
        "cli_wait_core_share": round(cost["cli_wait_cpu_s"] / cost["cli_wait_s"], 3) if cost.get("cli_wait_s") else None,
        **_per_call(out / "events.parquet", slots, cost),
        "processes": roles, "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in os.getloadavg()],
    }


def _per_call(events_path: Path, slots: int | None, cost: dict) -> dict:
    """Per actor call, from the run's events log: the rounds' wall time per call and slot (start-up and the end
    excluded), the median time a call spent outside the actor's own work (load, replay, scoring, recording: what
    Ray and the driver add), and the driver's handling time per event."""
    import pandas as pd

    calls = pd.read_parquet(events_path)
    calls = calls[calls["kind"] == "call"]
    if calls.empty or not slots:
        return {}
    rounds_s = float(calls["returned"].max() - calls["submitted"].min())
    own = calls[["load_s", "generate_s", "score_s", "record_s"]].fillna(0).sum(axis=1)
    outside = calls["returned"] - calls["submitted"] - own
    return {"rounds_ms_per_call_per_slot": round(1000 * rounds_s * slots / len(calls), 1),
            "call_outside_actor_ms_median": round(1000 * float(outside.median()), 1),
            "driver_ms_per_event": round(1000 * cost["driver_s"] / cost["driver_events"], 2)
            if cost.get("driver_events") else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="617,2000,10000", help="tree sizes K (comma-separated)")
    parser.add_argument("--budget", type=int, default=50, help="queries per model N (default 50)")
    parser.add_argument("--method", default="recommended")
    parser.add_argument("--json", dest="json_out", help="append the results to this JSON file")
    parser.add_argument("search_args", nargs="*", help="more `raygems search` flags (after --)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="live-scale-") as scratch:
        for k in (int(x) for x in args.sizes.split(",")):
            result = run_one(k, args.budget, args.method, Path(scratch), args.search_args)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json_out:
        path = Path(args.json_out)
        previous = json.loads(path.read_text()) if path.exists() else []
        record = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                  "date": time.strftime("%Y-%m-%d %H:%M"), "results": results}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(previous + [record], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
