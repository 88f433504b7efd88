"""Benchmark: train the tiny tree's weights from scratch (the builder tool) and install the tree from the built
files; report wall time, CPU time and the machine's load.

    python benchmarks/tiny_tree_build.py --root /tmp/tiny-tree-bench [--workers 2] [--json out.json]

The package ships the built files, so neither the demo nor the tests train; this measures the tool. The
machine is often shared, so the CPU time of the build (all its processes) and the load average are reported
next to the wall time. Results measured on the project's machines are recorded in docs/backends.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="scratch folder (emptied): built files and the installed tree")
    parser.add_argument("--workers", type=int, default=None, help="1 or 2 (default: 2 on >= 2 cores)")
    parser.add_argument("--json", dest="json_out", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import shutil
    from pathlib import Path

    from raygems.demo import install_tiny_tree
    from raygems.demo.builder.build import build_files

    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    files = build_files(root / "files", workers=args.workers)
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    install_started = time.perf_counter()
    tree = install_tiny_tree(root / "tree", files=files)
    result = {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1),
        "install_seconds": round(time.perf_counter() - install_started, 3),
        "models": len(tree.records),
        "workers": args.workers,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
