"""`raygems search`: find the best checkpoint of a model tree for your tasks, live, on Ray.

    raygems search --tree HUB_ID|DIR --tasks gsm8k,mbpp --method ours --budget 50 --out DIR [--resume] [--address auto]

Model actors each hold one checkpoint (a GPU fraction when there are GPUs); a driver actor broadcasts each
round's queries to the survivors. Every answer is kept in DIR/store, so a crash or a re-run never pays twice.
`--matrix PATH` runs the same machinery on a recorded correctness matrix (the replay backend).
"""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("search", help="live search over a model tree on Ray", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=False)
    src.add_argument("--tree", help="a local directory laid out like the hub, or a base model id on the hub")
    src.add_argument("--matrix", help="a recorded correctness matrix (replay backend)")
    p.add_argument("--models", help="models table for --matrix (downloads, is_base)")
    p.add_argument("--tasks", default="routerbench", help="comma-separated task names (default: routerbench)")
    p.add_argument("--per-task", type=int, default=500, help="queries per task in the pool (default 500; 0 = all)")
    p.add_argument("--pool-seed", type=int, default=0)
    p.add_argument("--data-dir", help="local benchmark directory (else the hub)")
    p.add_argument("--kinds", default="finetune,adapter", help="kinds of descendants to include")
    p.add_argument("--max-depth", type=int)
    p.add_argument("--max-models", type=int, help="keep the most-downloaded N models")
    p.add_argument("--method", default=None, help="search method (default: recommended; the paper's method is 'ours')")
    p.add_argument("--budget", type=int, default=50, help="average queries per model N (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="transformers", help="transformers | vllm (default transformers)")
    # runtime settings (default None = SearchConfig's default, or the saved value with --resume)
    p.add_argument("--backend-settings", help='JSON, e.g. \'{"batch_size": 64, "dtype": "bfloat16"}\'')
    p.add_argument("--max-loaded", type=int, help="model actors loaded at once (default 2)")
    p.add_argument("--chunk-size", type=int, help="queries per actor call and store write (default 32)")
    p.add_argument("--cpus-per-model", type=float, help="CPUs per model actor (default 1)")
    p.add_argument("--gpus-per-model", type=float,
                   help="GPU fraction per model actor (default: 1/max-loaded if the cluster has GPUs when the "
                        "search starts, else 0; give it on an autoscaling cluster that starts without GPUs)")
    p.add_argument("--slot-resource", help="custom Ray resource each model actor takes (cluster.yaml: model_slot)")
    p.add_argument("--exhaustive", action="store_true", help="also evaluate every model on the whole pool")
    p.add_argument("--no-final-evaluation", action="store_true",
                   help="skip evaluating the chosen model and the popular base on the whole pool")
    p.add_argument("--prior", help="a fitted prior (raygems prior fit) to order and prune candidates")
    p.add_argument("--prior-task", help="the prior's task name (default: the first task)")
    p.add_argument("--prior-keep", type=float, default=1.0, help="share of candidates kept by the prior")
    p.add_argument("--out", required=False, default="runs/search", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue the search saved in --out")
    p.add_argument("--address", help="Ray address (auto: an existing cluster)")
    p.add_argument("--quiet", action="store_true")
    return p


def default_method() -> str:
    """The method a search uses unless told otherwise (the evidence: docs/statistics.md)."""
    return "recommended"


def config_from_args(args: argparse.Namespace):
    from raygems.runtime.search import SearchConfig

    if not args.resume and not (args.tree or args.matrix):
        raise ValueError("give --tree DIR|HUB_ID or --matrix PATH (or --resume with --out)")
    return SearchConfig(
        out=args.out, tree=args.tree, matrix=args.matrix, models=args.models,
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        per_task=None if args.per_task == 0 else args.per_task, pool_seed=args.pool_seed, data_dir=args.data_dir,
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()), max_depth=args.max_depth,
        max_models=args.max_models, method=args.method or default_method(), budget=args.budget, seed=args.seed,
        backend=args.backend, final_evaluation=not args.no_final_evaluation,
        exhaustive=args.exhaustive, prior=args.prior, prior_task=args.prior_task, prior_keep=args.prior_keep,
        progress=not args.quiet, resume=args.resume, **runtime_settings(args),
    ) if not args.resume or args.tree or args.matrix else _resume_config(args)


#: Flags that may change when a search is resumed (SearchConfig's RUNTIME_ONLY settings).
RUNTIME_FLAGS = ("max_loaded", "chunk_size", "cpus_per_model", "gpus_per_model", "slot_resource", "address")


def runtime_settings(args: argparse.Namespace) -> dict:
    """The runtime settings given on the command line (the others keep their defaults, or saved values)."""
    given = {name: getattr(args, name) for name in RUNTIME_FLAGS if getattr(args, name) is not None}
    if args.backend_settings is not None:
        try:
            given["backend_settings"] = json.loads(args.backend_settings)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--backend-settings is not valid JSON: {exc}") from None
    return given


def _resume_config(args):
    from pathlib import Path

    from raygems.runtime.search import SearchConfig

    saved = Path(args.out) / "search.json"
    if not saved.exists():
        raise ValueError(f"nothing to resume in {args.out}: no search.json")
    data = json.loads(saved.read_text())
    data.update(runtime_settings(args), resume=True, progress=not args.quiet)
    return SearchConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    from raygems.runtime.search import run_search

    result = run_search(config_from_args(args))
    print_outcome(result)
    return 0


def print_outcome(result) -> None:
    s = result.summary
    board = result.leaderboard
    print("\nleaderboard (accuracy on the queries each model answered; better prompt variant per task):")
    view = board[["model_id", "status", "queries", "accuracy", "downloads"]].head(10)
    print(view.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"\nchosen: {s['chosen_model']}  accuracy {_fmt(s['chosen_accuracy'])} on the whole pool")
    print(f"popular base: {s['popular_base']}  accuracy {_fmt(s['base_accuracy'])}")
    if s.get("best_model"):
        print(f"best (exhaustive): {s['best_model']}  accuracy {_fmt(s['best_accuracy'])}")
    print(f"queries paid {s['queries_paid']}, reused {s['queries_reused']}, failed models {len(s['failed_models'])}; "
          f"results in {result.out}", file=sys.stderr)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
