"""Benchmark: score MBPP's 500 test problems' reference solutions through the code sandbox, or measure
what the sandbox's attacks take of the host.

    RAYGEMS_ALLOW_CODE_EXECUTION=1 python benchmarks/mbpp_scoring.py \
        --data-dir ../shared/data/benchmarks [--workers 2] [--json out.json]
    RAYGEMS_ALLOW_CODE_EXECUTION=1 python benchmarks/mbpp_scoring.py --attacks

Scoring: each completion is the reference solution in a ```python fence, so every item should score 1;
the script reports wall time, items per second, the per-program time (median / p95 / max), the peak
memory of a program's process tree (median / max, from its memory cgroup), the isolation and guarantees
and any item that did not pass. Target: within 1.5x of 21.2 s with 2 workers on a quiet 2-core machine.

Attacks (raygems issue 13): the disk flood, six forked children of 800 MB and the nested user namespace
with a 3 GiB tmpfs (also with the seccomp filter off, to show the memory cgroup alone holds it), each with
the MBPP task's limits. For each: how it ended, the peak of its memory cgroup, and what the host lost
while it ran, sampled every 10 ms (MemAvailable from /proc/meminfo; free space of the temporary
directory's file system). Other work on the machine moves the host numbers too: compare with the idle
drift printed first. Results measured on the project's machines are recorded in docs/sandbox.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="local benchmark directory (default: $RAYGEMS_DATA_DIR or the hub)")
    parser.add_argument("--workers", type=int, default=2, help="programs run at once (default: 2, one per core)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N problems")
    parser.add_argument("--json", dest="json_out", help="write the measurements to this JSON file")
    parser.add_argument("--attacks", action="store_true", help="measure the attacks on the host instead")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")

    from raygems.tasks.sandbox import code_execution_enabled

    if not code_execution_enabled():
        print("set RAYGEMS_ALLOW_CODE_EXECUTION=1 to run this benchmark (it executes code in the sandbox)",
              file=sys.stderr)
        return 2
    report = measure_attacks() if args.attacks else measure_scoring(args)
    report["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    report["command"] = " ".join([os.path.basename(sys.executable), *sys.argv])
    print(json.dumps(report, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if not report.get("failed") else 1


class HostWatch:
    """Samples, every 10 ms while in use, how much the host's available memory and the temporary
    directory's free disk space fell below where they were at the start (MB)."""

    def __init__(self) -> None:
        self.memory_drop_mb = self.disk_drop_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def available() -> tuple[float, float]:
        with open("/proc/meminfo") as handle:
            memory = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:"))
        disk = os.statvfs(tempfile.gettempdir())
        return memory / 1e6, disk.f_bavail * disk.f_frsize / 1e6

    def _sample(self) -> None:
        memory0, disk0 = self.available()
        while not self._stop.wait(0.01):
            memory, disk = self.available()
            self.memory_drop_mb = max(self.memory_drop_mb, memory0 - memory)
            self.disk_drop_mb = max(self.disk_drop_mb, disk0 - disk)

    def __enter__(self) -> "HostWatch":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_attacks() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tasks"))
    from sandbox_checks import DISK_FLOOD, FORKED_MEMORY, NESTED_NAMESPACE

    from raygems.tasks import sandbox
    from raygems.tasks.mbpp import DEFAULT_LIMITS

    attacks = {"disk flood": (DISK_FLOOD, True), "6 forks of 800 MB": (FORKED_MEMORY.format(mb=800), True),
               "nested namespace tmpfs": (NESTED_NAMESPACE, True),
               "nested namespace tmpfs, seccomp filter off": (NESTED_NAMESPACE, False)}
    with HostWatch() as idle:
        time.sleep(2.0)
    report = {"limits": dataclasses.asdict(DEFAULT_LIMITS), "guarantees": list(sandbox.expected_guarantees()),
              "idle drift over 2 s": {"memory_mb": round(idle.memory_drop_mb, 1),
                                      "disk_mb": round(idle.disk_drop_mb, 1)}}
    real_filter = sandbox.syscall_filter
    for name, (code, with_filter) in attacks.items():
        sandbox.syscall_filter = real_filter if with_filter else (lambda: None)
        try:
            with HostWatch() as watch:
                result = sandbox.run_program(code, allow=True, limits=DEFAULT_LIMITS)
        finally:
            sandbox.syscall_filter = real_filter
        report[name] = {"reason": result.reason, "seconds": round(result.seconds, 2),
                        "stdout": result.stdout.strip()[-120:], "peak_memory_mb": result.peak_memory_mb,
                        "host_memory_drop_mb": round(watch.memory_drop_mb, 1),
                        "host_disk_drop_mb": round(watch.disk_drop_mb, 1)}
    return report


def measure_scoring(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from raygems.tasks import get_task
    from raygems.tasks.sandbox import available_isolation, expected_guarantees

    task = get_task("mbpp", data_dir=args.data_dir)
    queries = task.load()[: args.limit]

    def score(query: dict):
        started = time.monotonic()
        result = task.run(query, f"```python\n{query['meta']['solution']}\n```")
        return query["query_id"], result, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        outcomes = list(tqdm(pool.map(score, queries), total=len(queries), desc="mbpp", unit="program"))
    wall = time.monotonic() - started

    seconds = sorted(s for _, _, s in outcomes)
    peaks = sorted(r.sandbox.peak_memory_mb for _, r, _ in outcomes if r and r.sandbox.peak_memory_mb is not None)
    failed = [(qid, r.reason if r else "no code") for qid, r, _ in outcomes if not (r and r.passed)]
    return {
        "items": len(queries),
        "passed": len(queries) - len(failed),
        "failed": failed,
        "workers": args.workers,
        "wall_seconds": round(wall, 2),
        "items_per_second": round(len(queries) / wall, 2),
        "program_seconds_median": round(statistics.median(seconds), 3),
        "program_seconds_p95": round(seconds[int(0.95 * (len(seconds) - 1))], 3),
        "program_seconds_max": round(seconds[-1], 3),
        "peak_memory_mb_median": round(statistics.median(peaks), 1) if peaks else None,
        "peak_memory_mb_max": round(peaks[-1], 1) if peaks else None,
        "isolation": available_isolation(),
        "guarantees": list(expected_guarantees()),
    }


if __name__ == "__main__":
    sys.exit(main())
