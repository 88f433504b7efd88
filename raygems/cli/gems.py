"""`raygems gems`: the hidden-gem report of a tree (the paper's Table 1, and Table 6 with model cards).

    raygems gems --results runs/search-1 --out gems/         # a search's run directory: its tree and store
    raygems gems --tree tree.parquet --matrix matrix.parquet --cards-from hub --out gems/ --plots
    raygems gems --tree tree.parquet --results store/ --cards-from ./tiny-hub

Writes (with --out): report.md, summary.parquet, models.parquet, documentation.parquet (with cards),
table1.csv, table6.csv, and with --plots an atlas and an accuracy distribution per task (PNG).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gems", help="find hidden gems: popular vs elite models per task, gain, documentation check",
        description="From a tree table and per-query results (a result store or a correctness matrix): per "
                    "task the popular consensus (top 1% by downloads), the elite (top 1% by accuracy), the "
                    "hidden gems (obscure, excellent and dominant) and the gain over the best popular model; "
                    "with --cards-from, whether each gem's model card documents relevant evaluations.")
    parser.add_argument("--tree", type=Path, help="tree table (parquet from `raygems tree`; default: the "
                                                  "tree.parquet of a search's run directory given to --results)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", type=Path, help="a search's run directory (its --out), a result store, or "
                                                     "a parquet file or folder of them")
    source.add_argument("--matrix", type=Path, help="correctness matrix (long parquet, .npy, or a folder)")
    parser.add_argument("--cards-from", default=None, metavar="DIR|hub",
                        help="read the gems' model cards from a local hub directory or from the hub")
    parser.add_argument("--out", type=Path, default=None, help="folder for the report files")
    parser.add_argument("--name", default=None, help="tree name in the tables (default: the tree file's stem)")
    parser.add_argument("--top-fraction", type=float, default=0.01,
                        help="share of models in the popular and elite groups (default 0.01)")
    parser.add_argument("--min-queries", type=int, default=1,
                        help="with --results: ignore scores from fewer answers (models a search eliminated early)")
    parser.add_argument("--no-overall", action="store_true",
                        help="do not add the aggregate 'overall' task (accuracy over all queries)")
    parser.add_argument("--plots", action="store_true",
                        help="also write an atlas and an accuracy distribution per task (needs --out)")
    return parser


def run(args: argparse.Namespace) -> int:
    from raygems.analysis.gems import OVERALL, accuracy_from_matrix, accuracy_from_results, find_gems
    from raygems.errors import UsageError
    from raygems.files import check_output_path
    from raygems.hub.listing import read_tree
    from raygems.results import no_results_yet, result_files
    from raygems.run_directory import RunDirectory

    if args.plots and args.out is None:
        raise UsageError("--plots needs --out")
    if not 0 < args.top_fraction <= 1:
        raise UsageError(f"--top-fraction must be in (0, 1], got {args.top_fraction}")
    if args.out is not None:            # before the work, not after it
        check_output_path(args.out, "--out", folder=True)
    if args.results is not None:        # what --results is (or is not) comes before whether it holds a tree
        if not args.results.exists():
            raise UsageError(f"--results {args.results}: no such file or directory")
        if not result_files(args.results):
            raise UsageError(no_results_yet(args.results))
    tree_path = args.tree
    if tree_path is None:
        if args.results is None:
            raise UsageError("--tree is needed with --matrix")
        if not RunDirectory(args.results).tree.is_file():
            raise UsageError(f"--tree is needed: --results {args.results} has no tree.parquet beside its results (a "
                             f"search's run directory has one)")
        tree_path = RunDirectory(args.results).tree
    tree = read_tree(tree_path)
    overall = None if args.no_overall else OVERALL
    if args.results is not None:
        accuracy = accuracy_from_results(args.results, tree=tree, overall=overall, min_queries=args.min_queries)
    else:
        accuracy = accuracy_from_matrix(args.matrix, overall=overall)
    cards = _card_source(args.cards_from)
    report = find_gems(tree, accuracy, cards=cards, top_fraction=args.top_fraction)
    name = args.name or (tree_path.stem if args.tree is not None else args.results.name)
    text = report.to_markdown(name)
    print(text, end="")
    if report.cards_note:       # also in the report; said once on stderr, where a reader of the run looks
        print(f"raygems gems: warning: {report.cards_note}", file=sys.stderr)
    if args.out is not None:
        _write(report, text, args.out, tree, accuracy, args.plots)
        print(f"report written to {args.out}")
    return 0


def _card_source(spec: str | None):
    if spec is None:
        return None
    from raygems.hub.sources import HubTreeSource, LocalTreeSource

    if spec == "hub":
        return HubTreeSource()
    if Path(spec).is_dir():
        return LocalTreeSource(spec)
    raise FileNotFoundError(f"--cards-from {spec!r}: not a directory (or 'hub')")


def _write(report, text: str, out: Path, tree, accuracy, plots: bool) -> None:
    """The report's files, each written atomically (raygems.files)."""
    from raygems.files import atomic_write, write_parquet, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.md", text)
    write_parquet(out / "summary.parquet", report.summary)
    write_parquet(out / "models.parquet", report.models)
    for name, table in (("table1.csv", report.table1()), ("table6.csv", report.table6())):
        atomic_write(out / name, lambda temporary, table=table: table.to_csv(temporary))
    if report.documentation is not None:
        write_parquet(out / "documentation.parquet", report.documentation)
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from raygems.analysis.plots import cumulative_accuracy, tree_atlas

        for task in report.tasks:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", task)
            fig, ax = plt.subplots(figsize=(7, 7))
            tree_atlas(tree, accuracy, ax=ax, gems=report, task=task, title=f"{task}")
            atomic_write(out / f"atlas_{slug}.png",
                         lambda temporary, fig=fig: fig.savefig(temporary, format="png", dpi=120, bbox_inches="tight"))
            plt.close(fig)
            fig, ax = plt.subplots(figsize=(5, 3.5))
            cumulative_accuracy(accuracy, task=task, ax=ax, title=task)
            atomic_write(out / f"cumulative_{slug}.png",
                         lambda temporary, fig=fig: fig.savefig(temporary, format="png", dpi=120, bbox_inches="tight"))
            plt.close(fig)
