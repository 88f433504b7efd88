"""`raygems plan`: what a search will cost before it starts, per method: wall time, GPU-hours, bytes downloaded,
peak disk, loads and reloads.

    raygems plan --tree HUB_ID|DIR --tasks gsm8k --per-task 500 --method recommended,sequential-halving,exhaustive \\
        --budget 50 --max-loaded 8 --nodes 1 --gpus-per-node 8 --download-bandwidth 1.25e9 \\
        [--calibrate-from RUN] [--json]

The search's own schedule (the same algorithm objects, slot and residency policy and fetch stage) is played
through a simulation (raygems.plan); nothing is downloaded or evaluated: candidates and checkpoint sizes come
from hub metadata or local files. Speeds default to an H100 with transformers `generate` on a 7B model
(docs/cost.md); `--calibrate-from RUN_DIR` takes every speed a finished run measured. `exhaustive` is every
candidate on the whole pool, without a search.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace

#: Speed flags -> Speeds field (seconds or bytes per second).
SPEED_FLAGS = {
    "load_bandwidth": "load_bandwidth", "step_s": "step_s", "step_per_sequence_s": "step_per_sequence_s",
    "slot_start_s": "slot_start_s", "first_load_s": "first_load_extra_s", "fetch_latency_s": "fetch_latency_s",
    "call_overhead_s": "call_overhead_s", "warm_up_s": "warm_up_s",
}


def register(subparsers) -> argparse.ArgumentParser:
    from raygems.cli.search import add_search_arguments

    p = subparsers.add_parser("plan", help="what a search will cost (time, GPU-hours, bytes), before it starts",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(p)
    add_speed_arguments(p)
    p.set_defaults(out="runs/plan", resume=False, address=None, quiet=True, dry_run=False)
    return p


def add_speed_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """Cluster and speed flags of a plan (`raygems plan`, `raygems search --dry-run`)."""
    group = p.add_argument_group("plan" if not prefix else "plan (with --dry-run)")
    group.add_argument("--nodes", type=int, default=1, help=f"{prefix}nodes, slots spread evenly (default 1)")
    group.add_argument("--gpus-per-node", type=float, default=1.0,
                       help=f"{prefix}GPUs per node, billed for the whole wall time (default 1)")
    group.add_argument("--download-bandwidth", help=f"{prefix}bytes/s per node from the hub (default 125e6, "
                                                    "1 Gbit/s); also 125MB")
    group.add_argument("--checkpoint-size", help=f"{prefix}every candidate this size, fetched from the hub "
                                                 "(e.g. 15.2GB: a matrix standing in for a 7B tree)")
    group.add_argument("--calibrate-from", metavar="RUN_DIR",
                       help=f"{prefix}take every speed a finished search in RUN_DIR measured")
    group.add_argument("--json", action="store_true", help=f"{prefix}print JSON instead of a table")
    for flag, name in SPEED_FLAGS.items():
        group.add_argument(f"--{flag.replace('_', '-')}", type=float, help=f"{prefix}speed {name} (docs/cost.md)")


def run(args: argparse.Namespace) -> int:
    from raygems.cli.search import config_from_args
    from raygems.plan import EXHAUSTIVE

    methods = _methods(args.method)
    spending = [m for m in methods if m != EXHAUSTIVE]
    args.method = spending[0] if spending else None
    config = config_from_args(args)
    return print_plans(config, args, methods)


def _methods(text: str | None) -> list[str]:
    from raygems.bandits import get_method
    from raygems.plan import EXHAUSTIVE
    from raygems.runtime.config import DEFAULT_METHOD

    from raygems.errors import UsageError

    names = list(dict.fromkeys(m.strip() for m in (DEFAULT_METHOD if text is None else text).split(",")
                               if m.strip()))      # (each once)
    if not names:
        raise UsageError(f"--method {text!r}: give one or more methods, e.g. recommended,exhaustive")
    for name in names:
        if name != EXHAUSTIVE:
            get_method(name)          # ValueError naming the unknown method and the known ones
    return names


def plans_for(config, args: argparse.Namespace, methods: list[str] | None = None) -> dict:
    """The plan of `config` for each method (default: its own), as the JSON `raygems plan --json` prints."""
    from raygems.plan import Cluster, Speeds, simulate
    from raygems.plan.calibrate import calibrate
    from raygems.plan.workload import for_method, with_facts, work_for_search
    from raygems.runtime.cache import parse_size

    methods = methods or [config.method]
    checkpoint_bytes = None if args.checkpoint_size is None else parse_size(args.checkpoint_size,
                                                                            what="--checkpoint-size")
    speeds = Speeds(batch_size=int(config.backend_settings.get("batch_size", Speeds.batch_size)))
    if args.download_bandwidth is not None:
        speeds = replace(speeds, download_bandwidth=_bandwidth(args.download_bandwidth))
    measured = None
    first = work_for_search(config, checkpoint_bytes=checkpoint_bytes)       # listed and sized once
    if args.calibrate_from:
        calibration = calibrate(args.calibrate_from, speeds, sizes=dict(zip(first.model_ids, first.sizes.tolist())))
        speeds = replace(calibration.speeds, download_bandwidth=speeds.download_bandwidth)
        first, measured = with_facts(first, calibration.facts), calibration.measured
    given = {name: getattr(args, flag) for flag, name in SPEED_FLAGS.items() if getattr(args, flag) is not None}
    speeds = replace(speeds, **given)
    cluster = Cluster(nodes=args.nodes, gpus_per_node=args.gpus_per_node, max_loaded=config.max_loaded,
                      fetch_concurrency=config.fetch_concurrency, fetch_ahead=config.fetch_ahead,
                      cache_limit_bytes=None if config.cache_limit is None else parse_size(config.cache_limit))
    plans = [simulate(for_method(first, config, method), cluster, speeds, lookahead=config.lookahead).as_dict()
             for method in methods]
    setup = {"candidates": first.num_arms, "queries": first.num_queries, "tasks": first.task_names,
             "decode_steps": dict(zip(first.task_names, first.steps.tolist())),
             "checkpoint_bytes": int(first.sizes.sum()), "fetched_from_hub": first.fetch, "budget": config.budget,
             "chunk_size": config.chunk_size, "final_evaluation": config.final_evaluation,
             "nodes": cluster.nodes, "gpus": cluster.gpus, "max_loaded": cluster.max_loaded,
             "cache_limit_bytes": cluster.cache_limit_bytes, "lookahead": config.lookahead,
             "calibrated_from": args.calibrate_from,
             "answers": "matrix" if config.matrix else "drawn: accuracies " +
                        ("measured by the calibrating run" if args.calibrate_from else "skewed like the paper's trees")}
    return {"setup": setup, "speeds": {f.name: getattr(speeds, f.name) for f in fields(speeds)},
            "measured": measured, "plans": plans}


def _bandwidth(text: str) -> float:
    """Bytes per second from '125e6' or '125MB' (per second)."""
    from raygems.errors import UsageError
    from raygems.runtime.cache import parse_size

    try:
        return float(parse_size(text))
    except UsageError:
        raise UsageError(f"--download-bandwidth {text!r}: give bytes per second, e.g. 125e6 or 125MB") from None


def print_plans(config, args: argparse.Namespace, methods: list[str] | None = None) -> int:
    from raygems.files import format_bytes
    from raygems.runtime.search import format_duration

    data = plans_for(config, args, methods)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    setup, speeds = data["setup"], data["speeds"]
    source = f"calibrated from {setup['calibrated_from']}" if setup["calibrated_from"] else "defaults (docs/cost.md)"
    where = "fetched from the hub" if setup["fetched_from_hub"] else "on local disk"
    print(f"plan: {setup['candidates']} candidates ({format_bytes(setup['checkpoint_bytes'])}, {where}), "
          f"{setup['queries']} queries, N = {setup['budget']}; {setup['nodes']} node(s), {setup['gpus']:g} GPU(s), "
          f"{setup['max_loaded']} slot(s)")
    print(f"speeds: {source}; download {format_bytes(speeds['download_bandwidth'])}/s per node, load "
          f"{format_bytes(speeds['load_bandwidth'])}/s, decode step {speeds['step_s'] * 1000:.1f} ms "
          f"(+{speeds['step_per_sequence_s'] * 1000:.2f} ms per sequence), batch {speeds['batch_size']}")
    header = ("method", "wall", "GPU-h", "fetched", "peak disk", "loads", "reloads", "rounds", "pairs paid")
    rows = [(p["method"], format_duration(p["wall_s"]), f"{p['gpu_hours']:.2f}", format_bytes(p["fetch_bytes"]),
             format_bytes(p["peak_cache_bytes"]), str(p["loads"]), str(p["reloads"]), str(p["rounds"]),
             str(p["queries_paid"])) for p in data["plans"]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    if setup["answers"] != "matrix":
        print(f"(answers {setup['answers']}: they decide which models survive, not how many)", file=sys.stderr)
    return 0
