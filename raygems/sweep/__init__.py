"""Sweeps: replay grids (trees x methods x schedules x seeds x budgets) run as Ray Tune trials.

    from raygems.sweep import SweepConfig, run_sweep
    outcome = run_sweep(SweepConfig.from_yaml("experiments/table2.yaml"), "experiments/results/table2")

Writes DIR/results.parquet (one row per cell), DIR/per_rep.parquet, DIR/table.md (the paper's layout) and
DIR/rank_vs_budget.png. See docs/sweeps.md.
"""
from raygems.sweep.config import MethodEntry, SweepConfig, SweepConfigError, TreeEntry
from raygems.sweep.report import render_table, write_report
from raygems.sweep.runner import SweepOutcome, run_sweep
from raygems.sweep.trainable import run_cell

__all__ = ["MethodEntry", "SweepConfig", "SweepConfigError", "SweepOutcome", "TreeEntry", "render_table",
           "run_cell", "run_sweep", "write_report"]
