"""`raygems replay`: run search methods against a recorded correctness matrix.

    raygems replay --matrix PATH --methods NAMES|all --budgets 10,50 --reps 100 --seed 0 [--models PATH] [--json OUT.json]

Without --matrix it replays on an embedded synthetic tree (the paper's Qwen-3B size), so it runs anywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The synthetic tree replayed when no --matrix is given.
SYNTHETIC_TREE = "qwen-3b"
JSON_KEYS = ("method", "budget", "reps", "mean_rank", "std_rank", "mean_accuracy", "p_top1", "p_top3",
             "budget_fraction", "seconds")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("replay", help="replay search methods on a recorded correctness matrix",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrix", help="correctness matrix: long parquet, wide .npy, or a folder with "
                                    "matrix_models_x_items.npy + index.json (default: a synthetic tree)")
    p.add_argument("--tree", help=f"synthetic tree preset used when --matrix is not given (default: {SYNTHETIC_TREE})")
    p.add_argument("--methods", default="all", help="comma-separated method names, or 'all'")
    p.add_argument("--budgets", default="10,50", help="comma-separated budgets per model N (default: 10,50)")
    p.add_argument("--reps", type=int, default=100, help="repetitions (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", help="models table (parquet/csv: model_id, downloads, is_base, ...)")
    p.add_argument("--exact", action="store_true",
                   help="resolve every pull to explicit query ids (slower; what a live search does)")
    p.add_argument("--json", dest="json_out", help="write the summary rows to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--plugins", help="comma-separated modules that register methods of your own (raygems.plugins), "
                                     "imported first")
    return p


def parse_methods(text: str) -> list[str]:
    from raygems.bandits import get_method, list_methods

    if text.strip() == "all":
        return list_methods()
    names = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))   # (each once)
    if not names:
        raise ValueError("no methods given")
    for name in names:
        get_method(name)  # raises with the list of known methods
    return names


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--budgets must be comma-separated integers, got {text!r}") from None
    budgets = list(dict.fromkeys(budgets))   # (each once)
    if not budgets:
        raise ValueError("no budgets given")
    bad = [b for b in budgets if b < 1]
    if bad:
        raise ValueError(f"budget per model N must be at least 1, got {bad[0]}")
    return budgets


def run(args: argparse.Namespace) -> int:
    from raygems.replay import load_matrix, replay_grid
    from raygems.errors import UsageError
    from raygems.files import check_output_path
    from raygems.plugins import import_plugins
    from raygems.replay.engine import check_replay

    import_plugins(m.strip() for m in (args.plugins or "").split(",") if m.strip())
    methods = parse_methods(args.methods)
    budgets = parse_budgets(args.budgets)
    if args.reps < 1:
        raise ValueError(f"--reps must be at least 1, got {args.reps}")
    if args.json_out:           # before the replay, not after it
        check_output_path(Path(args.json_out), "--json")
    for flag, value in (("--matrix", args.matrix), ("--tree", args.tree)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty: give a matrix (--matrix) or a synthetic tree (--tree), or neither "
                             f"to replay {SYNTHETIC_TREE!r}")
    if args.matrix is not None and args.tree is not None:
        raise UsageError(f"--tree {args.tree} names a synthetic tree, replayed when no --matrix is given: give one "
                         f"of them")
    if args.matrix is None and args.models is not None:
        raise UsageError(f"--models {args.models}: a models table goes with --matrix (a synthetic tree has its own)")
    if args.matrix is not None:
        matrix = load_matrix(args.matrix, models=args.models)
        source = args.matrix
    else:
        from raygems.populations import generate_tree

        tree = args.tree or SYNTHETIC_TREE
        matrix = generate_tree(tree).matrix
        source = f"synthetic tree {tree!r}"
    if matrix.models is None and "best-base" in methods:
        if args.methods.strip() == "all":
            methods.remove("best-base")
            print("note: best-base skipped (it needs --models with downloads)", file=sys.stderr)
        else:
            raise ValueError("best-base needs a models table: pass --models PATH")
    for method in methods:      # every budget, and the memory --reps needs, before anything runs
        try:
            check_replay(matrix, method, budgets, args.reps, exact=args.exact)
        except UsageError as exc:
            raise UsageError(f"--reps {args.reps}: {exc}") from None
    print(f"replaying {len(methods)} method(s) x {len(budgets)} budget(s) x {args.reps} repetitions on {source} "
          f"({matrix.num_models} models x {matrix.num_queries} queries)", file=sys.stderr)
    table = replay_grid(matrix, methods, budgets, reps=args.reps, seed=args.seed, exact=args.exact,
                        progress=not args.quiet)
    print(format_table(table))
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [{k: row[k] for k in JSON_KEYS} for row in table.to_dict("records")]
        out.write_text(json.dumps(rows, indent=2))
        print(f"wrote {out}", file=sys.stderr)
    return 0


def format_table(table) -> str:
    view = table[["method", "budget", "mean_rank", "mean_accuracy", "p_top3", "budget_fraction", "seconds"]]
    return view.to_string(index=False, float_format=lambda x: f"{x:.3f}")
