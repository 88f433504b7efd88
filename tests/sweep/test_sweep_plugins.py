"""A sweep of a plug-in method (tests/plugins/raygems_example_plugins.py, named under `plugins:`): every Tune trial
imports the module, and its numbers are a direct replay's. (tests/conftest.py: the `example_plugins` fixture.)"""
from __future__ import annotations

import pytest

from raygems.populations import generate_tree
from raygems.replay import replay_budgets
from raygems.sweep import SweepConfig, SweepConfigError, run_sweep
from raygems.sweep.store import load_results

from sweep_helpers import SMALL_TREE, write_config


def test_plugins_that_are_not_module_names_or_do_not_import_are_named(tmp_path):
    with pytest.raises(SweepConfigError, match="plugins must be a module name or a list of them, got 5"):
        SweepConfig.from_yaml(write_config(tmp_path, plugins=5))
    with pytest.raises(SweepConfigError, match="plug-in module 'no_such_plugin_module' cannot be imported"):
        SweepConfig.from_yaml(write_config(tmp_path, plugins=["no_such_plugin_module"]))


@pytest.mark.slow
def test_a_sweep_of_a_plugin_method_equals_a_direct_replay(ray_session, example_plugins, tmp_path):
    config = SweepConfig.from_yaml(write_config(tmp_path, plugins=example_plugins, methods=["plugin-uniform"],
                                                reps=4, references=[]))
    assert config.plugins == (example_plugins,)
    outcome = run_sweep(config, tmp_path / "out", progress=False)
    assert not outcome.errors
    rows = load_results(tmp_path / "out")
    rows = rows[rows["method"] == "plugin-uniform"].sort_values("budget")
    direct = replay_budgets(generate_tree("qwen-3b", **SMALL_TREE).matrix, "plugin-uniform", [3, 6], 4, 0)
    assert rows["mean_rank"].tolist() == [r.summary()["mean_rank"] for r in direct]
