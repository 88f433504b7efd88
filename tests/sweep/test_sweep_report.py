"""table.md and the plot, from real replays run without Ray (`run_cell` is what a trial runs)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.cli import main
from raygems.populations import generate_tree
from raygems.sweep import SweepConfig
from raygems.sweep.report import main_table, plot_rank_vs_budget, pool_seeds, render_table, variant_order
from raygems.sweep.runner import best_available_rows, finish_rows, group_trials, load_matrices, plan_cells
from raygems.sweep.store import load_results, save
from raygems.sweep.trainable import CELL_KEYS, SUMMARY_METRICS, per_rep_frame, run_cell

from sweep_helpers import SMALL_TREE, write_config


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """Every cell of a small two-seed sweep, replayed in-process: (config, results, per_rep)."""
    folder = tmp_path_factory.mktemp("report")
    config_path = write_config(
        folder, reps=8, seeds=[0, 1], budgets=[5, 10],
        methods=["sequential-halving", {"name": "ours", "schedules": ["rule_a", "table4_literal"]}],
        trees=[{"name": "A", "preset": "qwen-3b", "overrides": SMALL_TREE},
               {"name": "B", "preset": "mistral-7b", "overrides": SMALL_TREE}])
    config = SweepConfig.from_yaml(config_path)
    matrices = load_matrices(config)
    rows = []
    for trial in group_trials(plan_cells(config, matrices)):
        if trial["method"] == "ours" and trial["schedule"] == "table4_literal":
            trial["budgets"] = [b for b in trial["budgets"] if b == 10]   # Table 4 has no N=5 row
        rows += run_cell(matrices[trial["tree"]], trial)
    summary = pd.DataFrame([{k: r[k] for k in (*CELL_KEYS, *SUMMARY_METRICS, "code_version")} for r in rows])
    results = pd.concat([finish_rows(summary, matrices),
                         finish_rows(best_available_rows(config, matrices), matrices)], ignore_index=True)
    per_rep = per_rep_frame(rows, {name: m.accuracies for name, m in matrices.items()})
    return config, results, per_rep, config_path


def test_seeds_pool_exactly_like_the_concatenated_repetitions(replayed):
    _, results, per_rep, _ = replayed
    pooled = pool_seeds(results[results["method"] != "best-available"]).set_index(["tree", "budget", "method",
                                                                                     "schedule"])
    for (tree, budget, method, schedule), reps in per_rep.groupby(["tree", "budget", "method", "schedule"]):
        row = pooled.loc[(tree, budget, method, schedule)]
        rank, acc = reps["rank"].to_numpy(float), reps["accuracy"].to_numpy(float)
        assert row["reps"] == len(rank) == 16 and row["seeds"] == 2
        assert row["mean_rank"] == pytest.approx(rank.mean())
        assert row["se_rank"] == pytest.approx(rank.std(ddof=1) / np.sqrt(len(rank)))
        assert row["mean_accuracy"] == pytest.approx(acc.mean(), rel=1e-6)
        assert row["se_accuracy"] == pytest.approx(acc.std(ddof=1) / np.sqrt(len(acc)), rel=1e-4, abs=1e-9)
        assert row["p_top3"] == pytest.approx((rank <= 3).mean())


def _table_lines(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]


def test_main_table_layout_bold_and_overspend_mark(replayed):
    config, results, _, _ = replayed
    pooled = pool_seeds(results)
    lines = _table_lines(main_table(pooled, ["A", "B"], variant_order(config)))
    assert [(l[0], l[1]) for l in lines] == [
        ("-", "Random Selection"), ("", "Best Base"),
        ("5", "Sequential Halving"), ("", "Ours"),
        ("10", "Sequential Halving"), ("", "Ours"), ("", "Ours (table4_literal)"),
        ("", "Best Available")]
    index = pooled.set_index(["tree", "budget", "label"])
    for column, tree in ((2, "A"), (3, "B")):
        for block in ((2, 3), (4, 5, 6)):
            cells = {lines[i][1]: lines[i][column] for i in block}
            budget = int(lines[block[0]][0])
            fair = {label: index.loc[(tree, budget, label)] for label in cells
                    if index.loc[(tree, budget, label), "budget_fraction"] <= 1.01}
            best_rank = min(round(r["mean_rank"], 1) for r in fair.values())
            for label, text in cells.items():
                rank_text = text.split(" / ")[0]
                assert rank_text.startswith("**") == (label in fair and round(index.loc[(tree, budget, label),
                                                                                        "mean_rank"], 1) == best_rank)
        # the literal Table 4 spends about 2x the budget on a 28-model tree: marked and never bold
        literal = lines[6][column]
        assert literal.endswith("†") and "**" not in literal
        assert index.loc[(tree, 10, "Ours (table4_literal)"), "budget_fraction"] > 1.5
    assert lines[-1][2] == f"1.0 / {generate_tree('qwen-3b', **SMALL_TREE).matrix.accuracies.max():.3f}"


def test_missing_cells_show_a_dash_and_references_keep_their_place(replayed):
    config, results, _, _ = replayed
    partial = results[~((results["tree"] == "B") & (results["method"].isin(["best-base", "ours"])))]
    text = render_table(partial, config)
    first_table = next(part for part in text.split("\n\n") if part.startswith("| Queries per model"))
    lines = _table_lines(first_table)
    by_label = {(l[0], l[1]): l for l in lines}
    assert by_label[("", "Best Base")][3] == "–"
    assert by_label[("", "Best Base")][2] != "–"
    assert lines[3][1] == "Ours" and lines[3][3] == "–"


def test_plot_has_one_panel_per_tree(replayed, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    _, results, per_rep, _ = replayed
    path = plot_rank_vs_budget(results, per_rep, tmp_path / "plot.png", ["A", "B"])
    assert path.stat().st_size > 10_000
    # without per-repetition rows it falls back to the summary means (no bands)
    path = plot_rank_vs_budget(results, None, tmp_path / "plot2.png", ["A"])
    assert path.exists()


def test_report_only_rewrites_table_and_plot_from_results(replayed, tmp_path, capsys):
    config, results, per_rep, config_path = replayed
    assert main(["sweep", str(config_path), "--out", str(tmp_path), "--report-only"]) == 2
    assert "has no results of sweep 'tiny'" in capsys.readouterr().err
    assert main(["sweep", str(config_path), "--out", str(tmp_path), "--report-only", "--fresh", "--methods", "A"]) == 2
    assert capsys.readouterr().err.strip().endswith("--report-only runs nothing, but --fresh, --methods say how to "
                                                    "run: drop them, or drop --report-only")
    save(tmp_path, results, per_rep)
    assert main(["sweep", str(config_path), "--out", str(tmp_path), "--report-only"]) == 0
    assert (tmp_path / "table.md").read_text() == render_table(load_results(tmp_path), config)
    assert (tmp_path / "rank_vs_budget.png").stat().st_size > 10_000
    # written rows read back unchanged (the key columns are the cell's identity)
    back = load_results(tmp_path).sort_values(list(CELL_KEYS)).reset_index(drop=True)
    expected = results[back.columns].sort_values(list(CELL_KEYS)).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
