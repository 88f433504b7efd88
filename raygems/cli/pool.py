"""`raygems pool`: draw a query pool and write it as parquet.

    raygems pool --tasks routerbench --per-task 500 --seed 0 --data-dir ../shared/data/benchmarks --out pool.parquet

The paper's pool is `--tasks routerbench --per-task 500` (500 queries from each of ARC-Challenge,
Winogrande, MMLU, MBPP and GSM8K). Without --data-dir the benchmarks are read from $RAYGEMS_DATA_DIR,
or from the Hugging Face hub when that is unset. Prints the pool's content hash: pools with equal
hashes hold the same queries, prompts and references.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    from raygems.runtime.config import SearchConfig      # a pool drawn as a search draws its own

    p = subparsers.add_parser("pool", help="draw a seeded query pool from benchmark tasks (parquet)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(SearchConfig.tasks),
                   help="comma-separated task names (default: %(default)s; routerbench is its five tasks)")
    p.add_argument("--per-task", default=str(SearchConfig.per_task),
                   help="queries drawn from each task, or 'all' (default: %(default)s)")
    p.add_argument("--seed", type=int, default=SearchConfig.pool_seed, help="sampling seed (default: %(default)s)")
    p.add_argument("--stratify-by", default=None,
                   help="spread each task's share over this meta field in proportion (e.g. subject)")
    p.add_argument("--data-dir", default=None,
                   help="local benchmark directory (default: $RAYGEMS_DATA_DIR, else the hub)")
    p.add_argument("--out", required=True, help="parquet file to write")
    return p


def parse_per_task(text: str) -> int | None:
    """--per-task (pool, search, plan, demo): queries per task, or 'all' (or 0) for the whole benchmark (None)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--per-task must be a positive integer, or 'all' (or 0) for every query, got {text!r}") \
            from None
    if value < 0:
        raise ValueError(f"--per-task must be a positive integer, or 'all' (or 0) for every query, got {value}")
    return value or None


def run(args) -> int:
    from raygems.files import check_output_path
    from raygems.tasks.pool import build_query_pool

    from pathlib import Path

    names = [name.strip() for name in args.tasks.split(",") if name.strip()]
    if not names:
        raise ValueError("--tasks names no task")
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: is a directory; give the path of a .parquet file to write")
    check_output_path(Path(args.out), "--out")
    pool = build_query_pool(names, per_task=parse_per_task(args.per_task), seed=args.seed,
                            data_dir=args.data_dir, stratify_by=args.stratify_by)
    path = pool.to_parquet(args.out)
    counts = ", ".join(f"{task} {n}" for task, n in pool.counts().items())
    print(f"wrote {len(pool)} queries ({counts}) to {path}")
    print(f"content hash: {pool.content_hash}")
    return 0
