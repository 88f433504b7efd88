"""The paper's Table 7 grid, timed: every method x N in {10, 25, 50, 100, 200} x 100 repetitions on the four
synthetic trees sized like the paper's (K = 479, 650, 280, 617; Q = 2,500).

    python benchmarks/replay_grid.py                       # the full grid, 2 worker processes
    python benchmarks/replay_grid.py --quick               # smoke test: one small tree, 10 repetitions
                                                           # (writes replay_grid_quick.*, not the grid's results)
    python benchmarks/replay_grid.py --methods ucb,ours --trees qwen-3b --reps 20 --workers 1

Writes benchmarks/results/replay_grid.md (Table 7 layout: rows budget x method, columns tree, "rank / acc";
then wall seconds per cell) and replay_grid.json. Two phases, each timed on its own: the grid without TTTS,
then the TTTS cells. Jobs are (tree, method) pairs spread over `--workers` processes (default 2, for a
2-core machine). Anytime methods (UCB, UCB-StdDev, TTTS) run once per tree to N = 200 and are recorded as
they pass each budget, so their per-cell time is the time to reach that budget.

Reported next to wall time: CPU time (time.process_time of the workers), `uptime` load before and after
(the machine may be shared), peak memory (ru_maxrss of the main process plus the largest ru_maxrss of
each worker: an upper bound on the peak of all processes together), and the ratio to the straightforward
per-repetition, per-pull loop of benchmarks/naive_replay.py, measured on a few repetitions and
extrapolated linearly to the grid's repetitions (`--naive-reps`, or `--naive-json` to reuse a
measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from raygems.bandits import get_method  # noqa: E402
from raygems.compiled import HAVE_NUMBA  # noqa: E402
from raygems.populations import PAPER_TREES, generate_tree  # noqa: E402
from raygems.replay import replay_budgets  # noqa: E402

BUDGETS = (10, 25, 50, 100, 200)
#: the paper's rows (Table 7) and its ablations; other registered methods can be named with --methods
PAPER_METHODS = ("random", "best-base", "uniform", "ucb", "ucb-stddev", "ttts", "successive-rejects", "bayes-elim",
                 "ucb-e", "sequential-halving", "ours", "ours-sh-schedule", "ours-no-corr")
RESULTS = Path(__file__).resolve().parent / "results"
#: rough relative cost per method, to start the longest jobs first
_WEIGHT = {"ttts": 40.0, "ucb": 8.0, "ucb-e": 6.0, "ucb-stddev": 4.0, "successive-rejects": 1.5}


@lru_cache(maxsize=None)
def _matrix(tree: str):
    return generate_tree(tree).matrix


def _warm_up() -> float:
    """Load (or compile, the first time on a machine) the numba kernels; returns the seconds it took."""
    start = time.perf_counter()
    small = generate_tree("mistral-7b", num_finetunes=12, num_adapters=4, queries_per_task=4).matrix
    for method in ("ucb", "ucb-stddev", "ucb-e", "ttts", "successive-rejects"):
        replay_budgets(small, method, [2, 3], reps=2, seed=0)
    return time.perf_counter() - start


def _run_job(tree: str, method: str, budgets: tuple[int, ...], reps: int, seed: int) -> dict:
    """One (tree, method) pair at every budget, in a worker process."""
    gen = time.perf_counter()
    matrix = _matrix(tree)
    gen = time.perf_counter() - gen
    spec = get_method(method)
    cpu, wall = time.process_time(), time.perf_counter()
    results = replay_budgets(matrix, method, list(budgets) if spec.spends_budget else list(budgets[:1]), reps, seed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if not spec.spends_budget:
        results = results * len(budgets)
    cells = []
    for budget, result in zip(budgets, results):
        summary = result.summary()
        cells.append({"tree": tree, "method": method, "budget": budget, "mean_rank": summary["mean_rank"],
                      "mean_accuracy": summary["mean_accuracy"], "budget_fraction": summary["budget_fraction"],
                      "seconds": summary["seconds"]})
    return {"tree": tree, "method": method, "cpu_s": cpu, "wall_s": wall, "tree_generation_s": gen,
            "cells": cells, "pid": os.getpid(),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _worker_ready() -> int:
    time.sleep(0.2)  # keeps this worker busy so that the next ready-call lands on another one
    return os.getpid()


def _start_pool(workers: int):
    """A pool whose workers have all loaded the compiled kernels; returns (pool, seconds it took)."""
    start = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_warm_up)
    pids = set()
    while len(pids) < workers:
        pids |= {f.result() for f in [pool.submit(_worker_ready) for _ in range(workers)]}
    return pool, time.perf_counter() - start


def _run_phase(name, jobs, pool, budgets, reps, seed, progress):
    """Run jobs on the pool (or in this process when pool is None); returns (outcomes, wall seconds)."""
    outcomes = []
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=name, disable=not progress, unit="job")
    if pool is None:
        for tree, method in jobs:
            outcomes.append(_run_job(tree, method, budgets, reps, seed))
            bar.update()
    else:
        futures = [pool.submit(_run_job, tree, method, budgets, reps, seed) for tree, method in jobs]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            bar.set_postfix_str(f"{outcome['tree']} {outcome['method']} {outcome['wall_s']:.1f}s")
            bar.update()
    bar.close()
    return outcomes, time.perf_counter() - start


def _order(trees, methods, naive=None):
    """Longest jobs first (by the naive loop's measured cost when given, else by K^2 x a method weight)."""
    jobs = [(t, m) for t in trees for m in methods]

    def cost(job):
        if naive and job in naive:
            return naive[job]["cpu_s"]
        return PAPER_TREES[job[0]].num_models ** 2 * _WEIGHT.get(job[1], 1.0) * 1e-6

    return sorted(jobs, key=lambda j: -cost(j))


def _machine() -> dict:
    from raygems.demo.builder.build import cpu_model

    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba_version,
            "compiled_kernels": HAVE_NUMBA, "platform": platform.platform()}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def _naive(args, trees, methods, budgets):
    """Per (tree, method): CPU seconds of the naive loop extrapolated to the grid's repetitions."""
    if args.naive_json:
        rows = json.loads(Path(args.naive_json).read_text())
    elif args.naive_reps > 0:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import naive_replay

        naive_methods = [m for m in methods if m in naive_replay.METHODS]
        rows = naive_replay.measure(trees, naive_methods, list(budgets), args.naive_reps, args.seed)
    else:
        return {}
    return {(r["tree"], r["method"]): {"cpu_s": r["cpu_s"] * args.reps / r["reps"], "measured_reps": r["reps"],
                                       "measured_cpu_s": r["cpu_s"]}
            for r in rows if r["tree"] in trees and r["method"] in methods and tuple(r["budgets"]) == tuple(budgets)}


def _fmt_table7(cells, trees, methods, budgets) -> list[str]:
    by = {(c["tree"], c["method"], c["budget"]): c for c in cells}
    head = "| N | Method | " + " | ".join(trees) + " |"
    lines = [head, "|" + "---|" * (len(trees) + 2)]
    for budget in budgets:
        for method in methods:
            row = [str(budget), get_method(method).label]
            for tree in trees:
                c = by.get((tree, method, budget))
                row.append(f"{c['mean_rank']:.1f} / {c['mean_accuracy']:.3f}" if c else "-")
            lines.append("| " + " | ".join(row) + " |")
    best = ["-", "Best Available"] + [f"1.0 / {_matrix(t).accuracies.max():.3f}" for t in trees]
    lines.append("| " + " | ".join(best) + " |")
    return lines


def _fmt_seconds(cells, trees, methods, budgets) -> list[str]:
    by = {(c["tree"], c["method"], c["budget"]): c for c in cells}
    lines = ["| N | Method | " + " | ".join(trees) + " |", "|" + "---|" * (len(trees) + 2)]
    for budget in budgets:
        for method in methods:
            row = [str(budget), get_method(method).label]
            for tree in trees:
                c = by.get((tree, method, budget))
                row.append(f"{c['seconds']:.2f}" if c else "-")
            lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Time the paper's Table 7 replay grid.")
    parser.add_argument("--quick", action="store_true", help="smoke test: mistral-7b, 10 repetitions, N in {10, 50}")
    parser.add_argument("--methods", default=None,
                        help="comma-separated registered names (default: the paper's 13 rows and ablations)")
    parser.add_argument("--trees", default=None, help=f"comma-separated presets (default: {','.join(PAPER_TREES)})")
    parser.add_argument("--budgets", default=None, help="comma-separated N (default: 10,25,50,100,200)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: run in this process)")
    parser.add_argument("--naive-reps", type=int, default=0,
                        help="measure the naive loop on this many repetitions per (tree, method) and extrapolate")
    parser.add_argument("--naive-json", default=None, help="reuse a naive_replay.py measurement (its JSON output)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for replay_grid.md / .json")
    parser.add_argument("--name", default=None,
                        help="file name stem of the results (default: replay_grid, with --quick replay_grid_quick)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    trees = (args.trees or ("mistral-7b" if args.quick else ",".join(PAPER_TREES))).split(",")
    methods = (args.methods or ",".join(PAPER_METHODS)).split(",")
    budgets = tuple(int(b) for b in (args.budgets or ("10,50" if args.quick else "10,25,50,100,200")).split(","))
    args.reps = args.reps or (10 if args.quick else 100)
    args.name = args.name or ("replay_grid_quick" if args.quick else "replay_grid")   # (the grid's results stay)
    for m in methods:
        get_method(m)  # clear error for an unknown name
    for t in trees:
        if t not in PAPER_TREES:
            raise SystemExit(f"unknown tree {t!r}; presets: {', '.join(PAPER_TREES)}")

    naive = _naive(args, trees, methods, budgets)  # measured first: the timed phases run alone
    load_before = _uptime()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    progress = not args.no_progress
    # kernels compiled or loaded from numba's cache, trees generated: outside the timed phases
    if args.workers == 0:
        pool, warm = None, _warm_up()
    else:
        pool, warm = _start_pool(args.workers)
    for t in trees:
        _matrix(t)
    phases = {}
    try:
        for name, selected in (("without TTTS", [m for m in methods if m != "ttts"]),
                               ("TTTS", [m for m in methods if m == "ttts"])):
            if not selected:
                continue
            outcomes, wall = _run_phase(name, _order(trees, selected, naive), pool, budgets, args.reps,
                                        args.seed, progress)
            phases[name] = {"wall_s": wall, "cpu_s": sum(o["cpu_s"] for o in outcomes), "jobs": outcomes}
    finally:
        if pool is not None:
            pool.shutdown()
    load_after = _uptime()

    outcomes = [o for p in phases.values() for o in p["jobs"]]
    cells = [c for o in outcomes for c in o["cells"]]
    worker_peaks = {}
    for o in outcomes:
        worker_peaks[o["pid"]] = max(worker_peaks.get(o["pid"], 0.0), o["maxrss_mb"])
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_mb = main_rss + (sum(worker_peaks.values()) if args.workers else 0.0)

    ratios = {}
    for name, phase in phases.items():
        # compare on the (tree, method) pairs the naive loop covers (it has no ablation or reference rows)
        covered = [o for o in phase["jobs"] if (o["tree"], o["method"]) in naive]
        if covered:
            naive_cpu = sum(naive[(o["tree"], o["method"])]["cpu_s"] for o in covered)
            fast_cpu = sum(o["cpu_s"] for o in covered)
            ratios[name] = {"naive_cpu_s": naive_cpu, "fast_cpu_s": fast_cpu, "cpu_ratio": naive_cpu / fast_cpu,
                            "naive_cpu_over_fast_wall": naive_cpu / phase["wall_s"],
                            "methods": sorted({o["method"] for o in covered})}

    report = {"command": command, "machine": _machine(), "load_before": load_before, "load_after": load_after,
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "trees": trees, "methods": methods,
              "budgets": list(budgets), "reps": args.reps, "seed": args.seed, "workers": args.workers,
              "K": {t: _matrix(t).num_models for t in trees}, "Q": {t: _matrix(t).num_queries for t in trees},
              "phases": {n: {k: v for k, v in p.items() if k != "jobs"} for n, p in phases.items()},
              "jobs": [{k: v for k, v in o.items() if k != "cells"} for o in outcomes], "cells": cells,
              "peak_memory_mb": peak_mb, "warm_up_s": warm, "naive": {f"{t}|{m}": v for (t, m), v in naive.items()},
              "naive_ratio": ratios}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{args.name}.md").write_text(_markdown(report, trees, methods, budgets, cells))
    print(_summary_lines(report))
    return report


def _summary_lines(report) -> str:
    lines = []
    for name, phase in report["phases"].items():
        lines.append(f"{name}: wall {phase['wall_s']:.1f} s, CPU {phase['cpu_s']:.1f} s")
    lines.append(f"peak memory (all processes, upper bound): {report['peak_memory_mb']:.0f} MB")
    for name, r in report["naive_ratio"].items():
        lines.append(f"naive loop ({name}): {r['naive_cpu_s']:.0f} CPU s (extrapolated) = "
                     f"{r['cpu_ratio']:.0f}x our CPU time, {r['naive_cpu_over_fast_wall']:.0f}x our wall time")
    return "\n".join(lines)


def _markdown(report, trees, methods, budgets, cells) -> str:
    m = report["machine"]
    ks = ", ".join(f"{t} K={report['K'][t]}" for t in trees)
    lines = [
        "# Replay grid: the paper's Table 7 layout, timed",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {m['cpu_model']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}, "
        f"numba {m['numba']} (compiled kernels: {m['compiled_kernels']})  ",
        f"Load before: `{report['load_before']}`  ",
        f"Load after: `{report['load_after']}`  ",
        f"Trees: {ks}; Q = {report['Q'][trees[0]]}; {report['reps']} repetitions per cell, seed {report['seed']}, "
        f"{report['workers']} worker processes.  ",
        f"Not in the timings: loading the compiled kernels into the workers ({report['warm_up_s']:.1f} s) and "
        "generating the trees (in each worker; `tree_generation_s` in the JSON).",
        "",
        "## Totals",
        "",
        "| phase | wall s | CPU s (workers) |",
        "|---|---|---|",
    ]
    for name, phase in report["phases"].items():
        lines.append(f"| grid {name} | {phase['wall_s']:.1f} | {phase['cpu_s']:.1f} |")
    lines += ["", f"Peak memory (main process + the peak of each worker; an upper bound on all processes "
              f"together): {report['peak_memory_mb']:.0f} MB", ""]
    if report["naive_ratio"]:
        lines += ["Straightforward per-repetition, per-pull loop (benchmarks/naive_replay.py), measured on "
                  f"{sorted({v['measured_reps'] for v in report['naive'].values()})} repetition(s) per "
                  "(tree, method) and extrapolated linearly to the grid's repetitions (CPU seconds):", "",
                  "| phase | methods compared | naive CPU s (extrapolated) | ours CPU s | ratio (CPU) | "
                  "naive CPU s / our phase wall s |",
                  "|---|---|---|---|---|---|"]
        for name, r in report["naive_ratio"].items():
            lines.append(f"| grid {name} | {', '.join(r['methods'])} | {r['naive_cpu_s']:.0f} | {r['fast_cpu_s']:.1f} | "
                         f"{r['cpu_ratio']:.0f}x | {r['naive_cpu_over_fast_wall']:.0f}x |")
        lines.append("")
    lines += ["## Per (tree, method): CPU and wall seconds for all budgets", "",
              "| tree | method | CPU s | wall s |" + (" naive CPU s (extrapolated) |" if report["naive"] else ""),
              "|---|---|---|---|" + ("---|" if report["naive"] else "")]
    for job in sorted(report["jobs"], key=lambda j: (j["tree"], methods.index(j["method"]))):
        naive = report["naive"].get(f"{job['tree']}|{job['method']}")
        extra = (f" {naive['cpu_s']:.0f} |" if naive else " - |") if report["naive"] else ""
        lines.append(f"| {job['tree']} | {job['method']} | {job['cpu_s']:.2f} | {job['wall_s']:.2f} |{extra}")
    lines += ["", "## Table 7 layout: mean rank / mean accuracy of the returned model", ""]
    lines += _fmt_table7(cells, trees, methods, budgets)
    lines += ["", "## Wall seconds per cell (anytime methods: time to reach that budget in one shared run)", ""]
    lines += _fmt_seconds(cells, trees, methods, budgets)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
