"""Sweep configs: the committed experiments load, and every kind of mistake is named in the error."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from raygems.cli import main
from raygems.sweep import SweepConfig, SweepConfigError
from raygems.sweep.config import NO_SCHEDULE
from raygems.sweep.runner import check_cells, load_matrices, plan_cells, plan_run

from sweep_helpers import SMALL_TREE, write_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_smoke_config_is_small_and_needs_no_data_files():
    config = SweepConfig.from_yaml(EXPERIMENTS / "smoke.yaml")
    assert all(t.preset is not None for t in config.trees)
    assert config.reps == 20 and len(config.budgets) == 2 and "ttts" not in config.method_names()


@pytest.mark.parametrize("name", ["table2", "table5", "table7"])
def test_committed_experiment_configs_load(name, shared_dir):
    config = SweepConfig.from_yaml(EXPERIMENTS / f"{name}.yaml")
    assert config.name == name
    routerbench = [t for t in config.trees if t.matrix is not None]
    assert routerbench and routerbench[0].matrix.is_dir()   # the relative path resolves from experiments/
    assert config.reps == 100 and config.reps_for(routerbench[0]) == 300


def test_experiment_configs_cover_the_papers_tables(shared_dir):
    table2 = SweepConfig.from_yaml(EXPERIMENTS / "table2.yaml")
    table5 = SweepConfig.from_yaml(EXPERIMENTS / "table5.yaml")
    table7 = SweepConfig.from_yaml(EXPERIMENTS / "table7.yaml")
    paper_methods = ["uniform", "ucb", "ucb-stddev", "ttts", "successive-rejects", "bayes-elim", "ucb-e",
                     "sequential-halving", "ours"]
    assert table2.method_names() == paper_methods and table2.budgets == (10, 50)
    assert table7.method_names() == paper_methods and table7.budgets == (10, 25, 50, 100, 200)
    assert [t.preset for t in table2.trees][:4] == ["qwen-3b", "qwen-7b", "mistral-7b", "llama-8b"]
    ours = next(m for m in table5.methods if m.name == "ours")
    assert ours.schedules == ("rule_a", "rule_b", "table4_literal")
    assert table5.method_names() == ["sequential-halving", "ours-sh-schedule", "ours-no-corr", "ours"]


def test_defaults_and_schedules(tmp_path):
    config = SweepConfig.from_yaml(write_config(tmp_path, methods=[
        "uniform", "ours-sh-schedule", {"name": "ours", "schedules": ["rule_b", "karnin"]},
        {"name": "sequential-halving", "options": {"estimator": "cumulative"}}]))
    by_name = {m.name: m for m in config.methods}
    assert by_name["uniform"].schedules == (NO_SCHEDULE,)
    assert by_name["ours-sh-schedule"].schedules == ("karnin",)     # the method's own default
    assert by_name["ours"].schedules == ("rule_b", "karnin")
    assert by_name["sequential-halving"].options_key() == '{"estimator": "cumulative"}'
    assert config.references == ("random", "best-base", "best-available")
    assert config.resources_per_trial == {"cpu": 1.0}


@pytest.mark.parametrize("fields, message", [
    ({"methods": ["uniform", "oracle"]}, "unknown method 'oracle'"),
    ({"methods": ["random"]}, "list it under 'references'"),
    ({"methods": [{"name": "uniform", "schedules": ["rule_a"]}]}, "uniform): this method takes no schedule"),
    ({"methods": [{"name": "ours", "schedules": ["rule_c"]}]}, "unknown schedule 'rule_c'"),
    ({"methods": [{"name": "ours", "options": {"speed": 2}}]}, "unknown option 'speed'"),
    ({"methods": [{"name": "ours", "options": {"schedule": "rule_b"}}]}, "give schedules under 'schedules'"),
    ({"methods": ["ours", {"name": "ours", "schedules": ["rule_a"]}]}, "listed twice"),
    ({"budgets": [10, 0]}, "budgets entry must be at least 1, got 0"),
    ({"budgets": ["ten"]}, "budgets entry must be an integer, got 'ten'"),
    ({"budgets": [10, 10]}, "budgets: 10 is listed twice"),
    ({"budgets": []}, "budgets is empty"),
    ({"reps": 0}, "reps must be at least 1, got 0"),
    ({"seeds": [-1]}, "seeds entry must be at least 0"),
    ({"trees": [{"name": "X", "preset": "gpt-5"}]}, "unknown tree preset 'gpt-5'"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"num_models": 3}}]},
     "unknown tree setting 'num_models'"),
    ({"trees": [{"name": "X", "matrix": "missing/matrix.npy"}]}, "trees[0].matrix (X): no correctness matrix at"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "matrix": "m.npy"}]}, "exactly one of 'preset'"),
    ({"trees": [{"name": "X", "preset": "qwen-3b"}, {"name": "X", "preset": "qwen-7b"}]}, "'X' is used twice"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "depth": 3}]}, "trees[0]: unknown key 'depth'"),
    ({"references": ["random", "oracle"]}, "unknown reference row 'oracle'"),
    ({"resources_per_trial": {"cpu": -1}}, "resources_per_trial.cpu must be a number > 0"),
    ({"resources_per_trial": {"cpu": 0}}, "resources_per_trial.cpu must be a number > 0 (leave out a resource"),
    ({"resources_per_trial": {"cpu": float("nan")}}, "resources_per_trial.cpu must be a number > 0"),
    ({"resources_per_trial": {"cpu": 1, "gpu": float("inf")}}, "resources_per_trial.gpu must be a number > 0"),
    ({"resources_per_trial": {"cpu": "two"}}, "does not need), got 'two'"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"num_finetunes": "abc"}}]},
     "trees[0].overrides (X): num_finetunes must be a whole number, got 'abc'"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"num_adapters": 2.5}}]},
     "trees[0].overrides (X): num_adapters must be a whole number, got 2.5"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"base_ability": float("nan")}}]},
     "trees[0].overrides (X): base_ability must be a finite number, got nan"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"headroom": True}}]},
     "headroom must be a finite number, got True"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"tasks": "gsm8k"}}]},
     "tasks must be a list of task names, got 'gsm8k'"),
    ({"budget": [10]}, "unknown key 'budget'"),
])
def test_bad_configs_name_the_key_and_value(tmp_path, fields, message):
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_yaml(write_config(tmp_path, **fields))
    assert message in str(err.value)


def test_missing_required_key_and_bad_yaml(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("name: x\nbudgets: [10]\nmethods: [ours]\n")
    with pytest.raises(SweepConfigError, match="lacks the required key 'trees'"):
        SweepConfig.from_yaml(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(SweepConfigError, match="not valid YAML"):
        SweepConfig.from_yaml(path)
    with pytest.raises(SweepConfigError, match="no sweep config at"):
        SweepConfig.from_yaml(tmp_path / "absent.yaml")


def test_matrix_paths_resolve_against_the_config_folder(tmp_path, matrix_files):
    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    for key in ("matrix", "models"):
        shutil.copy(matrix_files[key], tmp_path / "data" / matrix_files[key].name)
    config = SweepConfig.from_yaml(write_config(tmp_path / "configs", trees=[
        {"name": "M", "matrix": "../data/matrix.parquet", "models": "../data/models.csv"}]))
    tree = config.trees[0]
    assert tree.matrix == (tmp_path / "data" / "matrix.parquet").resolve()
    assert tree.load().models is not None


def test_combinations_a_method_cannot_run_fail_before_any_trial(tmp_path):
    # The literal Table 4 defines only N in {10, 25, 50, 100, 200}.
    config = SweepConfig.from_yaml(write_config(tmp_path, budgets=[10, 30], methods=[
        {"name": "ours", "schedules": ["rule_a", "table4_literal"]}]))
    matrices = load_matrices(config)
    with pytest.raises(SweepConfigError, match=r"tree 'Tiny', method 'ours', schedule 'table4_literal', budget 30"):
        check_cells(config, plan_cells(config, matrices), matrices)
    # A budget beyond the pool (5 tasks x 30 queries).
    config = SweepConfig.from_yaml(write_config(tmp_path, budgets=[151]))
    matrices = load_matrices(config)
    with pytest.raises(SweepConfigError, match="budget 151: the budget exceeds the tree's pool of 150"):
        check_cells(config, plan_cells(config, matrices), matrices)


def test_plan_has_one_cell_per_tree_method_schedule_seed_budget(tmp_path, matrix_files):
    config = SweepConfig.from_yaml(write_config(
        tmp_path, seeds=[0, 1], methods=["uniform", {"name": "ours", "schedules": ["rule_a", "rule_b"]}],
        trees=[{"name": "Tiny", "preset": "qwen-3b", "overrides": SMALL_TREE},
               {"name": "NoModels", "matrix": str(matrix_files["matrix"])}]))
    cells = plan_cells(config, load_matrices(config))
    # per tree and seed: 3 variants x 2 budgets + random (+ best-base where a models table exists)
    assert len(cells) == 2 * (3 * 2 + 2) + 2 * (3 * 2 + 1)
    assert not [c for c in cells if c["tree"] == "NoModels" and c["method"] == "best-base"]
    assert len({tuple(sorted(c.items())) for c in cells}) == len(cells)


def test_overrides_of_the_right_type_are_used(tmp_path):
    config = SweepConfig.from_yaml(write_config(tmp_path, trees=[
        {"name": "T", "preset": "qwen-3b", "overrides": {**SMALL_TREE, "base_ability": 1, "tasks": ["gsm8k"]}}]))
    matrix = config.trees[0].load()
    assert config.trees[0].overrides["tasks"] == ("gsm8k",) and set(matrix.tasks) == {"gsm8k"}
    assert matrix.num_queries == SMALL_TREE["queries_per_task"]


def test_sizes_that_cannot_be_served_fail_before_any_trial(tmp_path, monkeypatch):
    from raygems.replay import engine

    # a synthetic tree too large to generate in this machine's memory
    config = SweepConfig.from_yaml(write_config(tmp_path, trees=[
        {"name": "Huge", "preset": "qwen-3b", "overrides": {"num_finetunes": 10**9, "queries_per_task": 10**4}}]))
    with pytest.raises(SweepConfigError, match=r"tree 'Huge': a tree of 1,000,000,148 models x 50,000 queries needs"):
        load_matrices(config)
    # more repetitions than memory holds
    config = SweepConfig.from_yaml(write_config(tmp_path, reps=10**12))
    matrices = load_matrices(config)
    with pytest.raises(SweepConfigError, match=r"tree 'Tiny', method 'uniform', budget 3: 1,000,000,000,000 "
                                               r"repetitions of uniform on 28 models x 150 queries need about"):
        check_cells(config, plan_cells(config, matrices), matrices)


def test_string_downloads_in_a_models_table_are_named(tmp_path, matrix_files):
    import pandas as pd

    table = pd.read_csv(matrix_files["models"]).astype({"downloads": object})
    table.loc[1, "downloads"] = "many"
    models = tmp_path / "models.csv"
    table.to_csv(models, index=False)
    config = SweepConfig.from_yaml(write_config(tmp_path, trees=[
        {"name": "M", "matrix": str(matrix_files["matrix"]), "models": str(models)}]))
    with pytest.raises(SweepConfigError, match=rf"tree 'M': {models}: downloads 'many' in row 2 \(model "):
        load_matrices(config)


def test_cli_reports_config_errors_with_exit_status_2(tmp_path, capsys):
    path = write_config(tmp_path, methods=["oracle"])
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "raygems sweep: error:" in err and "unknown method 'oracle'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fields, message", [
    # method options of the wrong type: named with the option and the value, not "'<' not supported ..."
    ({"methods": [{"name": "ours", "options": {"first_round_fraction": "x"}}]},
     "methods[0].options (ours): first_round_fraction must be a finite number, got 'x'"),
    ({"methods": [{"name": "ours", "options": {"first_round_fraction": [0.5]}}]},
     "first_round_fraction must be a finite number, got [0.5]"),
    ({"methods": [{"name": "ours", "options": {"keep_after_first": 1.5}}]},
     "keep_after_first must be a whole number, got 1.5"),
    ({"methods": [{"name": "ours", "options": {"keep_after_first": "10"}}]},
     "keep_after_first must be a whole number, got '10'"),
    ({"methods": [{"name": "ucb", "options": {"c": None}}]},
     "methods[0].options (ucb): c must be a finite number, got None"),
    ({"methods": [{"name": "ucb", "options": {"c": True}}]}, "c must be a finite number, got True"),
    ({"methods": [{"name": "ttts", "options": {"mc_samples": "many"}}]},
     "mc_samples must be a whole number, got 'many'"),
    ({"methods": [{"name": "sequential-halving", "options": {"carry_over": "yes please"}}]},
     "carry_over must be true or false, got 'yes please'"),
    ({"methods": [{"name": "uniform", "options": {"correlated": [True]}}]},
     "correlated must be true or false (or null), got [True]"),
    ({"methods": [{"name": "recommended", "options": {"late_eta": "x"}}]},
     "late_eta must be a finite number (or null), got 'x'"),
    ({"methods": [{"name": "ucb-e", "options": {"mode": ["adaptive"]}}]}, "mode must be a string, got ['adaptive']"),
    # tree overrides: an empty or repeated task list, values the generator refuses without naming them
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"tasks": []}}]},
     "trees[0].overrides (X): tasks must not be empty"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"tasks": ["gsm8k", "gsm8k"]}}]},
     "tasks lists 'gsm8k' twice"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"num_adapters": -1}}]},
     "num_adapters must be at least 0, got -1"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"seed": -3}}]}, "seed must be at least 0, got -3"),
    ({"trees": [{"name": "X", "preset": "qwen-3b", "overrides": {"task_spread": -0.5}}]},
     "task_spread must be at least 0, got -0.5"),
])
def test_values_of_the_wrong_type_are_named_with_their_key(tmp_path, fields, message):
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_yaml(write_config(tmp_path, **fields))
    assert message in str(err.value)


def test_options_of_the_right_type_pass(tmp_path):
    config = SweepConfig.from_yaml(write_config(tmp_path, methods=[
        {"name": "ours", "options": {"first_round_fraction": 1, "keep_after_first": 20, "correlated": None}},
        {"name": "recommended", "options": {"late_eta": None, "stratify": True}},
        {"name": "ttts", "options": {"prior_alpha": 2.0}}]))
    assert config.methods[0].options == {"first_round_fraction": 1, "keep_after_first": 20, "correlated": None}


def test_an_option_the_algorithm_refuses_is_named_with_its_value(tmp_path):
    """Options whose type the config cannot know (per-model inputs such as prior_alpha) are checked by the
    algorithm before any trial; the message names the options as given, whatever the algorithm says."""
    config = SweepConfig.from_yaml(write_config(tmp_path, methods=[{"name": "uniform",
                                                                     "options": {"prior_alpha": "x"}}]))
    with pytest.raises(SweepConfigError, match=r'method .uniform., options \{"prior_alpha": "x"\}, budget 3: '):
        plan_run(config, load_matrices(config), pd.DataFrame())


def test_cli_names_an_empty_task_list_in_one_line(tmp_path, capsys):
    path = write_config(tmp_path, trees=[{"name": "Small", "preset": "qwen-3b",
                                          "overrides": {**SMALL_TREE, "tasks": []}}])
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["raygems sweep: error: trees[0].overrides (Small): tasks must not be empty (give at least one "
                   "task name), got []"]
