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
    add_search_arguments(p)
    p.add_argument("--out", required=False, default="runs/search", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue the search saved in --out")
    p.add_argument("--address", help="Ray address (auto: an existing cluster)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--dry-run", action="store_true",
                   help="print what the search would cost (raygems plan) and run nothing: no Ray, nothing written")
    from raygems.cli.plan import add_speed_arguments

    add_speed_arguments(p, prefix="with --dry-run: ")
    return p


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that describe a search (shared with `raygems plan`)."""
    # settings that define the search (default None: SearchConfig's default, or with --resume the saved value,
    # which a given flag must then equal)
    src = p.add_mutually_exclusive_group(required=False)
    src.add_argument("--tree", help="a local directory laid out like the hub, or a base model id on the hub")
    src.add_argument("--matrix", help="a recorded correctness matrix (replay backend)")
    p.add_argument("--models", help="models table for --matrix (downloads, is_base)")
    p.add_argument("--tasks", help="comma-separated task names (default: routerbench)")
    p.add_argument("--per-task", type=int, help="queries per task in the pool (default 500; 0 = all)")
    p.add_argument("--pool-seed", type=int)
    p.add_argument("--data-dir", help="local benchmark directory (else $RAYGEMS_DATA_DIR, else the hub)")
    p.add_argument("--kinds", help="kinds of descendants to include (default: finetune,adapter)")
    p.add_argument("--max-depth", type=int)
    p.add_argument("--max-models", type=int, help="keep the most-downloaded N models")
    p.add_argument("--method", help="search method (default: recommended; the paper's method is 'ours')")
    p.add_argument("--budget", type=int, help="average queries per model N (default 50)")
    p.add_argument("--seed", type=int)
    p.add_argument("--backend", help="transformers | vllm (default transformers)")
    p.add_argument("--exhaustive", action="store_const", const=True,
                   help="also evaluate every model on the whole pool")
    p.add_argument("--no-final-evaluation", dest="final_evaluation", action="store_const", const=False,
                   help="skip evaluating the chosen model and the popular base on the whole pool")
    p.add_argument("--prior", help="a fitted prior (raygems prior fit) to order and prune candidates")
    p.add_argument("--prior-task", help="the prior's task name (default: the first task)")
    p.add_argument("--prior-keep", type=float, help="share of candidates kept by the prior (default 1)")
    # runtime settings (default None = SearchConfig's default, or the saved value with --resume)
    p.add_argument("--backend-settings", help='JSON, e.g. \'{"batch_size": 64, "dtype": "bfloat16"}\'')
    p.add_argument("--max-loaded", type=int, help="model actors loaded at once (default 2)")
    p.add_argument("--chunk-size", type=int, help="queries per actor call and store write (default 32)")
    p.add_argument("--cpus-per-model", type=float, help="CPUs per model actor (default 1)")
    p.add_argument("--gpus-per-model", type=float,
                   help="GPU fraction per model actor (default: 1/max-loaded if the cluster has GPUs when the "
                        "search starts, else 0; give it on an autoscaling cluster that starts without GPUs)")
    p.add_argument("--slot-resource", help="custom Ray resource each model actor takes (cluster.yaml: model_slot)")
    p.add_argument("--allow-code-execution", action="store_const", const=True,
                   help="let tasks that score by running model-written code (mbpp) run it, in a sandbox "
                        "(or set RAYGEMS_ALLOW_CODE_EXECUTION=1); without it such a search is refused")
    p.add_argument("--cache-dir", help="hub trees: node-local folder for downloaded checkpoints (default "
                                       "~/.cache/raygems/checkpoints on each node)")
    p.add_argument("--cache-limit", help="hub trees: the most the checkpoint cache may hold on a node, e.g. 500GB "
                                         "(default: 90%% of its free space); eliminated models' files go first")
    p.add_argument("--fetch-concurrency", type=int, help="hub trees: downloads at once per node (default 2)")
    p.add_argument("--no-fetch-ahead", dest="fetch_ahead", action="store_const", const=False,
                   help="hub trees: download a checkpoint only when a slot needs it (the serial design; slower)")
    p.add_argument("--lookahead", action="store_const", const=True,
                   help="fill each generate batch with the next round's shared queries (correlated methods such "
                        "as recommended): fewer reloads and downloads on GPUs, more pairs paid (docs/cost.md)")


def default_method() -> str:
    """The method a search uses unless told otherwise (the evidence: docs/statistics.md)."""
    return "recommended"


#: Flags that define the search -> how a given value becomes its SearchConfig setting.
SEARCH_FLAGS = {
    "tree": str, "matrix": str, "models": str, "per_task": lambda n: None if n == 0 else n, "pool_seed": int,
    "data_dir": str, "max_depth": int, "max_models": int, "method": str, "budget": int, "seed": int,
    "backend": str, "exhaustive": bool, "final_evaluation": bool, "prior": str, "prior_task": str,
    "prior_keep": float, "tasks": lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
    "kinds": lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
}

#: Flags that may change when a search is resumed (SearchConfig's RUNTIME_ONLY settings).
RUNTIME_FLAGS = ("max_loaded", "chunk_size", "cpus_per_model", "gpus_per_model", "slot_resource", "address",
                 "allow_code_execution", "cache_dir", "cache_limit", "fetch_concurrency", "fetch_ahead", "lookahead")


def config_from_args(args: argparse.Namespace):
    from raygems.runtime.search import SearchConfig

    given = {name: convert(getattr(args, name)) for name, convert in SEARCH_FLAGS.items()
             if getattr(args, name) is not None}
    runtime = {**runtime_settings(args), "progress": not args.quiet}
    if args.resume:
        return _resume_config(args, given, runtime)
    if not (args.tree or args.matrix):
        raise ValueError("give --tree DIR|HUB_ID or --matrix PATH (or --resume with --out)")
    given.setdefault("method", default_method())
    return SearchConfig(out=args.out, **given, **runtime)


def runtime_settings(args: argparse.Namespace) -> dict:
    """The runtime settings given on the command line (the others keep their defaults, or saved values)."""
    given = {name: getattr(args, name) for name in RUNTIME_FLAGS if getattr(args, name) is not None}
    if args.backend_settings is not None:
        try:
            given["backend_settings"] = json.loads(args.backend_settings)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--backend-settings is not valid JSON: {exc}") from None
    return given


def _resume_config(args, given: dict, runtime: dict):
    """The search saved in --out, with this run's runtime settings. A setting that defines the search may be
    given only with its saved value: continuing a search with other settings would silently run the saved
    ones (or pay for a different search in the same store)."""
    from raygems.errors import UsageError
    from raygems.runtime.search import SearchConfig, read_saved_search

    saved = read_saved_search(args.out)
    wanted = SearchConfig.from_dict({**saved, **given}).identity()
    differing = sorted(name for name in given if wanted.get(name) != saved.get(name))
    if differing:
        details = ", ".join(f"--{name.replace('_', '-')} (saved {saved.get(name)!r}, given {wanted.get(name)!r})"
                            for name in differing)
        raise UsageError(f"--resume continues the search saved in {args.out}, but {details} differ from it; drop "
                         f"them, or start a new search with another --out")
    return SearchConfig.from_dict({**saved, **runtime, "out": args.out, "resume": True})


def on_interrupt(args: argparse.Namespace) -> str:
    return f"every answer recorded so far is kept: continue with `raygems search --resume --out {args.out}`"


def run(args: argparse.Namespace) -> int:
    from raygems.runtime.search import run_search

    if args.dry_run:
        from raygems.cli.plan import print_plans

        return print_plans(config_from_args(args), args)
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
