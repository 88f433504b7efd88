"""`raygems sweep`: replay a grid of trees x methods x schedules x seeds x budgets on Ray Tune.

    raygems sweep CONFIG.yaml --out DIR [--address ADDR] [--num-cpus N] [--methods a,b] [--fresh]
    raygems sweep CONFIG.yaml --out DIR --report-only

Writes DIR/results.parquet (one row per cell), DIR/per_rep.parquet, DIR/table.md (the paper's layout),
DIR/rank_vs_budget.png and Tune's own logs under DIR/tune/. Rerunning with the same --out skips the cells
already in DIR/results.parquet (--fresh runs them again). Without --address, Ray starts in this process
(or an initialised session is used). Config format: docs/sweeps.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sweep", help="replay a grid of methods x trees x budgets on Ray Tune",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="sweep config (YAML), e.g. experiments/smoke.yaml")
    p.add_argument("--out", required=True, help="output folder (results.parquet, table.md, rank_vs_budget.png)")
    p.add_argument("--address", help="join this Ray cluster (e.g. auto or ray://host:10001) instead of "
                                     "starting Ray in this process")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started here (default: all)")
    p.add_argument("--methods", help="run only these methods (comma-separated) this time; the report covers "
                                     "every cell found in results.parquet")
    p.add_argument("--fresh", action="store_true",
                   help="run every cell again, even those already in results.parquet (their rows are replaced)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite table.md and the plot from results.parquet")
    p.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                   help="Tune's own status output (default 0: only this command's progress bar)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from raygems.sweep import SweepConfig, run_sweep
    from raygems.sweep.report import write_report
    from raygems.sweep.runner import config_rows
    from raygems.sweep.store import load_per_rep, load_results

    from raygems.errors import UsageError

    config = SweepConfig.from_yaml(args.config)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ValueError(f"--num-cpus must be at least 1, got {args.num_cpus}")
    if args.report_only:
        running = [flag for flag, given in (("--fresh", args.fresh), ("--methods", args.methods),
                                             ("--address", args.address), ("--num-cpus", args.num_cpus))
                   if given not in (None, False)]
        if running:
            raise UsageError(f"--report-only runs nothing, but {', '.join(running)} "
                             f"{'says' if len(running) == 1 else 'say'} how to run: drop "
                             f"{'it' if len(running) == 1 else 'them'}, or drop --report-only")
        results = config_rows(config, load_results(out))
        if results.empty:
            raise ValueError(f"{out} has no results of sweep {config.name!r} to report")
        files = write_report(results, out, config=config, per_rep=config_rows(config, load_per_rep(out)))
        for path in files.values():
            print(f"wrote {path}", file=sys.stderr)
        return 0
    only = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    outcome = run_sweep(config, out, address=args.address, num_cpus=args.num_cpus, only_methods=only,
                        fresh=args.fresh, progress=not args.quiet, verbose=args.verbose)
    print(f"ran {outcome.cells_run} cells in {outcome.trials_run} trials, skipped {outcome.cells_skipped} "
          f"already done; {outcome.wall_seconds:.1f} s", file=sys.stderr)
    for path in outcome.files.values():
        print(f"wrote {path}", file=sys.stderr)
    if outcome.errors:
        print(f"{len(outcome.errors)} trial(s) failed:", file=sys.stderr)
        for error in outcome.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    unfinished = outcome.cells_planned - outcome.cells_run
    if unfinished > 0:
        print(f"the sweep stopped before {unfinished} of its {outcome.cells_planned} cells finished; the finished "
              f"ones are saved: run the same command again to run the rest", file=sys.stderr)
        return 1
    return 0


def on_interrupt(args: argparse.Namespace) -> str:
    """After Ctrl-C (exit 130): the cells that finished are in results.parquet (saved after every trial), and
    running the command again runs only the rest."""
    results = Path(args.out) / "results.parquet"
    if getattr(args, "report_only", False):
        return "nothing was run; run the same command again to write the report"
    again = ("run it again without --fresh to run only the rest" if getattr(args, "fresh", False)
             else "run the same command again to continue")
    return f"the finished cells are kept in {results}; {again}"
