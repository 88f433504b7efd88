"""A real (tiny) Ray Tune sweep end to end: the grid does what it says, and a rerun resumes.

Every number in results.parquet must equal what a direct `replay_budgets` call gives for the same tree,
method, schedule, seed and repetitions: the Tune grid is only a way of running those calls.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.cli import main
from raygems.populations import generate_tree
from raygems.replay import load_matrix, replay_budgets
from raygems.sweep import SweepConfig, SweepConfigError, run_sweep
from raygems.sweep.runner import load_matrices, plan_run
from raygems.sweep.store import PER_REP_FILE, RESULT_COLUMNS, RESULTS_FILE, load_per_rep, load_results
from raygems.sweep.trainable import CELL_KEYS, SUMMARY_METRICS

from sweep_helpers import SMALL_TREE, write_config

ISSUE_COLUMNS = ["method", "budget", "schedule", "tree", "mean_rank", "std_rank", "mean_accuracy", "p_top3",
                 "budget_fraction", "seconds"]
EXACT = [m for m in SUMMARY_METRICS if m != "seconds"]

# One real Tune sweep of 24 trials plus a resumed one: ~20 s on an idle 2-core machine, more under load.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(ray_session, matrix_files, tmp_path_factory):
    """One real Tune sweep: a synthetic preset and a matrix file, an anytime method (ucb), one with two
    schedules (ours), two seeds, two budgets."""
    folder = tmp_path_factory.mktemp("sweep")
    config_path = write_config(
        folder, reps=6, seeds=[0, 1], budgets=[3, 6],
        methods=["uniform", "ucb", {"name": "ours", "schedules": ["rule_a", "rule_b"]}],
        trees=[{"name": "Tiny", "preset": "qwen-3b", "overrides": SMALL_TREE},
               {"name": "Recorded", "matrix": str(matrix_files["matrix"]), "models": str(matrix_files["models"]),
                "reps": 4}])
    config = SweepConfig.from_yaml(config_path)
    out = folder / "out"
    outcome = run_sweep(config, out, progress=False)
    matrices = {"Tiny": generate_tree("qwen-3b", **SMALL_TREE).matrix,
                "Recorded": load_matrix(matrix_files["matrix"], models=matrix_files["models"])}
    return config, out, outcome, matrices, config_path


def test_results_have_one_row_per_cell_with_the_issue_columns(sweep):
    config, out, outcome, _, _ = sweep
    results = load_results(out)
    assert list(results.columns[:len(ISSUE_COLUMNS)]) == ISSUE_COLUMNS
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert not outcome.errors
    # per tree and seed: 4 method variants x 2 budgets + random + best-base; + best-available per tree and seed
    assert outcome.trials_run == 2 * 2 * (4 + 2) and outcome.cells_run == 2 * 2 * (4 * 2 + 2)
    assert len(results) == outcome.cells_run + 2 * 2
    assert not results.duplicated(list(CELL_KEYS)).any()
    assert set(results["schedule"]) == {"-", "rule_a", "rule_b"}
    assert set(results.loc[results["method"] == "ours", "label"]) == {"Ours", "Ours (rule_b)"}
    assert set(results.loc[results["tree"] == "Recorded", "reps"]) == {4}
    assert len(load_per_rep(out)) == results.query("method != 'best-available'")["reps"].sum()
    # every replayed row records the version of the algorithms' code it ran (one version here)
    replayed = results["method"] != "best-available"
    assert results.loc[replayed, "code_version"].nunique() == 1
    assert len(results.loc[replayed, "code_version"].iloc[0]) == 12
    assert set(results.loc[~replayed, "code_version"]) == {"-"}


def test_every_cell_equals_a_direct_replay(sweep):
    config, out, _, matrices, _ = sweep
    results = load_results(out)
    per_rep = load_per_rep(out)
    checked = 0
    for (tree, method, schedule, seed), group in results.groupby(["tree", "method", "schedule", "seed"]):
        if method == "best-available":
            acc = matrices[tree].accuracies
            assert group["mean_accuracy"].item() == acc.max() and group["mean_rank"].item() == 1.0
            continue
        reps = int(group["reps"].iloc[0])
        options = {} if schedule == "-" else {"schedule": schedule}
        budgets = [1] if method in ("random", "best-base") else sorted(group["budget"])
        direct = replay_budgets(matrices[tree], method, budgets, reps, seed, options=options)
        for result in direct:
            budget = 0 if method in ("random", "best-base") else result.budget_per_model
            row = group[group["budget"] == budget].iloc[0]
            expected = result.summary()
            assert {m: row[m] for m in EXACT} == {m: expected[m] for m in EXACT}, (tree, method, schedule, budget)
            reps_rows = per_rep.query("tree == @tree and method == @method and schedule == @schedule and "
                                      "seed == @seed and budget == @budget").sort_values("rep")
            assert reps_rows["arm"].tolist() == result.per_rep["arm"].tolist()
            assert reps_rows["rank"].tolist() == result.per_rep["rank"].tolist()
            np.testing.assert_allclose(reps_rows["accuracy"], result.per_rep["accuracy"], rtol=1e-6)
            checked += 1
    assert checked == 2 * 2 * (4 * 2 + 2)


def test_table_is_in_the_papers_layout(sweep):
    config, out, outcome, _, _ = sweep
    text = (out / "table.md").read_text()
    assert outcome.files["table"] == out / "table.md"
    assert text.startswith("# tiny\n")
    main_table = text.split("\n## ")[0]
    lines = [line for line in main_table.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| Queries per model | Method | Tiny (K=28): Rank ↓ / Acc ↑ | "
                        "Recorded (K=18): Rank ↓ / Acc ↑ |")
    first_cells = [line.split(" | ")[0:2] for line in lines[1:]]
    assert [c[1] for c in first_cells] == ["Random Selection", "Best Base", "Uniform", "UCB", "Ours",
                                          "Ours (rule_b)", "Uniform", "UCB", "Ours", "Ours (rule_b)",
                                          "Best Available"]
    assert [c[0].strip("| ") for c in first_cells] == ["-", "", "3", "", "", "", "6", "", "", "", ""]
    # two seeds pooled: 12 repetitions on Tiny, 8 on Recorded
    assert "Tiny: 12, Recorded: 8 repetitions (seeds 0, 1)" in text
    for section in ("## Standard errors", "## Top-k hits and budget used", "## Replay time"):
        assert section in text
    # each budget block has a bold rank and a bold accuracy in every tree column
    for block_start in (3, 7):
        block = lines[block_start:block_start + 4]
        for column in (2, 3):
            cells = [line.split(" | ")[column] for line in block]
            assert any(c.startswith("**") for c in cells) and any("/ **" in c for c in cells)


def test_plot_is_written(sweep):
    _, out, outcome, _, _ = sweep
    png = out / "rank_vs_budget.png"
    assert outcome.files["plot"] == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_rerun_skips_finished_cells_and_runs_missing_ones(sweep, tmp_path, capsys):
    config, out, _, _, config_path = sweep
    before = load_results(out)
    work = tmp_path / "resume"
    work.mkdir()
    for name in (RESULTS_FILE, PER_REP_FILE):
        (work / name).write_bytes((out / name).read_bytes())

    again = run_sweep(config, work, progress=False)
    assert (again.trials_run, again.cells_run) == (0, 0)
    assert again.cells_skipped == len(before) - 4
    pd.testing.assert_frame_equal(load_results(work), before)

    # Drop one budget of ucb on Tiny (seed 1) and all of uniform on Recorded (seed 0): only those run again.
    dropped = ((before["tree"] == "Tiny") & (before["method"] == "ucb") & (before["seed"] == 1)
               & (before["budget"] == 6)) | ((before["tree"] == "Recorded") & (before["method"] == "uniform")
                                             & (before["seed"] == 0))
    before[~dropped].to_parquet(work / RESULTS_FILE, index=False)
    status = main(["sweep", str(config_path), "--out", str(work), "--quiet"])
    assert status == 0
    err = capsys.readouterr().err
    assert "3 to run in 2 trials" in err and "ran 3 cells in 2 trials" in err
    after = load_results(work)
    assert len(after) == len(before)
    merged = before.merge(after, on=list(CELL_KEYS), suffixes=("", "_new"))
    assert len(merged) == len(before)
    for metric in [*EXACT, "label", "num_models"]:
        assert (merged[metric] == merged[f"{metric}_new"]).all(), metric


def test_fresh_plans_every_cell_and_methods_restricts_the_plan(sweep):
    config, out, _, _, _ = sweep
    matrices = load_matrices(config)
    results = load_results(out)
    assert plan_run(config, matrices, results).todo == []
    fresh = plan_run(config, matrices, results, fresh=True)
    assert fresh.todo == fresh.cells and len(fresh.cells) == 40
    only = plan_run(config, matrices, results, fresh=True, only_methods=["random", "ucb"])
    assert {c["method"] for c in only.todo} == {"random", "ucb"} and len(only.todo) == 4 + 8
    assert "28 left for later: --methods" in only.describe("tiny", out / RESULTS_FILE)
    with pytest.raises(SweepConfigError, match="--methods: 'ttts' is not in this sweep"):
        plan_run(config, matrices, results, only_methods=["ttts"])
