"""`raygems demo`: the whole live search on the real tiny model tree, on CPU, through Ray (transformers)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import raygems
from raygems.cli import main
from raygems.run_directory import RunDirectory

from tiny_tree_fixture import tiny_tree, tiny_tree_root  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]

SUMMARY_KEYS = {"chosen_model", "popular_base", "chosen_accuracy", "base_accuracy", "best_model", "queries_paid",
                "queries_reused", "failed_models"}


def test_demo_finds_the_gem_and_a_rerun_pays_nothing(tiny_tree, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--tree-dir", str(tiny_tree.root), "--per-task", "40", "--budget", "12",
            "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "hidden gem" in printed
    first = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(first)
    assert first["popular_base"] == tiny_tree.popular_base
    assert first["queries_paid"] > 0
    # every broken checkpoint is reported with the reason it was built to give
    failed = {f["model_id"]: f["reason"] for f in first["failed_models"]}
    assert set(failed) == set(tiny_tree.broken)
    for model_id, reason in tiny_tree.broken.items():
        assert failed[model_id].startswith(reason), (model_id, failed[model_id])
    # the exhaustive evaluation names the best model; the search's choice beats the popular base
    assert first["best_model"] is not None
    assert first["chosen_accuracy"] > first["base_accuracy"] + 0.2
    assert first["chosen_model"] not in tiny_tree.broken
    # the run directory holds the files raygems.run_directory names, and only those
    run = RunDirectory(out)
    named = [run.search, run.tree, run.pool, run.store, run.leaderboard, run.events, run.summary, run.lock]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in named)
    # per-query results as parquet, open in pandas
    results = pd.read_parquet(run.store / "results")
    assert {"model_id", "query_id", "variant", "reward", "generation"} <= set(results.columns)
    assert set(results["variant"]) == {"system", "plain"}
    served = raygems.read_results(out)                   # the rows the search counts: one per key
    assert len(served) == len(results.drop_duplicates(["model_id", "revision", "query_id", "variant"]))
    # the same command again: nothing paid, the same choice
    assert main(args) == 0
    second = json.loads((out / "summary.json").read_text())
    assert second["queries_paid"] == 0
    assert second["chosen_model"] == first["chosen_model"]
    assert second["queries_reused"] == first["queries_paid"] + first["queries_reused"]
    # the README's gems command on the run directory: its tree and store, the gem on toy_arith
    capsys.readouterr()
    assert main(["gems", "--results", str(out)]) == 0
    report = capsys.readouterr().out
    assert tiny_tree.hidden_gem in report and "toy_arith" in report
