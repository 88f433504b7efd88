"""Benchmark: score MBPP's 500 test problems' reference solutions through the code sandbox.

    RAYGEMS_ALLOW_CODE_EXECUTION=1 python benchmarks/mbpp_scoring.py \
        --data-dir ../shared/data/benchmarks [--workers 2] [--json out.json]

Target (issue): under 2 minutes for 500 items on 2 cores. Each completion is the reference solution in
a ```python fence, so every item should score 1; the script reports wall time, items per second, the
per-program sandbox time (median / p95 / max), the isolation used and any item that did not pass.
Results measured on the project's machines are recorded in docs/tasks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="local benchmark directory (default: $RAYGEMS_DATA_DIR or the hub)")
    parser.add_argument("--workers", type=int, default=2, help="programs run at once (default: 2, one per core)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N problems")
    parser.add_argument("--json", dest="json_out", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")

    from tqdm import tqdm

    from raygems.tasks import get_task
    from raygems.tasks.sandbox import available_isolation, code_execution_enabled

    if not code_execution_enabled():
        print("set RAYGEMS_ALLOW_CODE_EXECUTION=1 to run this benchmark (it executes code in the sandbox)",
              file=sys.stderr)
        return 2
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
    failed = [(qid, r.reason if r else "no code") for qid, r, _ in outcomes if not (r and r.passed)]
    report = {
        "items": len(queries),
        "passed": len(queries) - len(failed),
        "failed": failed,
        "workers": args.workers,
        "wall_seconds": round(wall, 2),
        "items_per_second": round(len(queries) / wall, 2),
        "program_seconds_median": round(statistics.median(seconds), 3),
        "program_seconds_p95": round(seconds[int(0.95 * (len(seconds) - 1))], 3),
        "program_seconds_max": round(seconds[-1], 3),
        "isolation": available_isolation(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
