"""`raygems demo`: the whole live search on your laptop, no GPU and no hub access.

    raygems demo --out DIR

Installs a tiny but real model tree shipped with raygems (in well under a second): a ~130k-parameter base
model, its official instruct version, fine-tunes of clearly different quality, LoRA adapters and broken
uploads, each with a model card and a download count. Then it runs the search through Ray on CPU (transformers backend), evaluates every
model on the whole query pool (so you can see how good the choice was), and prints the gem it found against
the popular base. A second run with the same --out pays for nothing: every answer is in DIR/store.

DIR/summary.json: chosen_model, popular_base, chosen_accuracy, base_accuracy, best_model, queries_paid,
queries_reused, failed_models; per-query results as parquet under DIR/store.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raygems.cli.search import add_setting_flag

DEMO_TASKS = ("toy_arith", "toy_choice")
#: Search settings the demo takes as `raygems search` does (the others are the demo's own).
SEARCH_SETTINGS = ("method", "seed", "backend", "max_loaded", "address")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="search the shipped tiny model tree on CPU through Ray",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--tree-dir", help="where the tiny tree is installed (default $RAYGEMS_CACHE/tiny-tree, else "
                                      "~/.cache/raygems/tiny-tree)")
    p.add_argument("--budget", type=int, default=20, help="average queries per model N (default 20)")
    p.add_argument("--per-task", type=int, default=100, help="queries per task in the pool (default 100)")
    for name in SEARCH_SETTINGS:           # the same flags as `raygems search`, with its defaults
        add_setting_flag(p, name)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def run(args: argparse.Namespace) -> int:
    from raygems.cli.search import print_outcome
    from raygems.demo import install_tiny_tree
    from raygems.errors import UsageError
    from raygems.runtime.search import SearchConfig, run_search

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a directory")
    tree = install_tiny_tree(args.tree_dir)
    if not args.quiet:
        print(f"tiny tree: {len(tree.records)} models in {tree.root}", file=sys.stderr)
    given = {name: getattr(args, name) for name in SEARCH_SETTINGS if getattr(args, name) is not None}
    config = SearchConfig(
        out=args.out, tree=str(tree.root), tasks=DEMO_TASKS, per_task=args.per_task, budget=args.budget, **given,
        backend_settings={"batch_size": 64, "device": "cpu"} if args.backend in (None, "transformers") else {},
        cpus_per_model=1.0, exhaustive=True, progress=not args.quiet)
    _check_same_tree(config)
    result = run_search(config)
    print_outcome(result)
    s = result.summary
    if s["chosen_accuracy"] is not None and s["base_accuracy"] is not None:
        gain = 100 * (s["chosen_accuracy"] - s["base_accuracy"])
        print(f"\nhidden gem: {s['chosen_model']} ({s['chosen_accuracy']:.1%}) vs the popular base "
              f"{s['popular_base']} ({s['base_accuracy']:.1%}): {gain:+.1f} points, found with "
              f"{s['budget_used']} evaluations ({s['budget_per_model']} per model)")
    return 0


def _check_same_tree(config) -> None:
    """A demo run in --out continues only on the tree it searched: say which one (the search's own refusal would
    only name the setting)."""
    from raygems.errors import UsageError
    from raygems.run_directory import RunDirectory
    from raygems.runtime.search import read_saved_search

    if not RunDirectory(config.out).search.is_file():
        return
    saved_search = read_saved_search(config.out)
    saved = saved_search.get("tree")
    if list(saved_search.get("tasks") or ()) != list(DEMO_TASKS):   # not a demo run: the search's own refusal
        return
    if saved is not None and Path(str(saved)).resolve() != Path(config.tree).resolve():
        raise UsageError(f"{config.out} holds a demo run on the tiny tree installed at {saved}, not at {config.tree}: "
                         f"give --tree-dir {saved} (or that run's RAYGEMS_CACHE) to continue it, or another --out")


def on_interrupt(args: argparse.Namespace) -> str:
    return f"every answer recorded so far is kept: run the same command again to continue (--out {args.out})"
