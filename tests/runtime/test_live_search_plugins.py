"""A live search whose method, task and backend are all plug-ins (tests/plugins/raygems_example_plugins.py): the
driver and the model actors import the module named in `plugins`, and the search finds the best model."""
from __future__ import annotations

from pathlib import Path

import pytest

import raygems
from raygems.runtime.search import SearchConfig, run_search

from tiny_tree_fixture import tiny_tree, tiny_tree_root  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.usefixtures("ray_session")]


def test_a_search_of_plugins_runs_them_in_the_ray_workers(tiny_tree, example_plugins, tmp_path):
    config = SearchConfig(tree=str(tiny_tree.root), tasks=("plugin_sums",), per_task=40, budget=8,
                          method="plugin-uniform", backend="plugin_oracle", plugins=(example_plugins,),
                          out=str(tmp_path / "run"), progress=False)
    result = run_search(config)
    summary = result.summary
    assert summary["chosen_model"] == "quietmath/tiny-arith-pro"          # the plug-in backend's best model
    assert summary["queries_paid"] > 0
    rows = raygems.read_results(tmp_path / "run")
    assert set(rows["task"]) == {"plugin_sums"} and set(rows["backend"]) == {"plugin_oracle"}


def test_failures_that_are_not_the_checkpoints_own_are_not_said_to_be_recorded(tiny_tree, example_plugins, tmp_path):
    """A backend that crashes on every model it loads: those failures are not the checkpoints' (a rerun tries them
    again, nothing is recorded); the three folders without config.json fail at load, recorded. The one line says
    which is which."""
    from raygems.errors import SetupError

    config = SearchConfig(tree=str(tiny_tree.root), tasks=("plugin_sums",), per_task=40, budget=8,
                          method="plugin-uniform", backend="plugin_oracle", backend_settings={"crash": True},
                          plugins=(example_plugins,), out=str(tmp_path / "run"), progress=False)
    with pytest.raises(SetupError) as raised:
        run_search(config)
    message = str(raised.value)
    from raygems.runtime.store import ResultStore

    recorded = ResultStore(tmp_path / "run" / "store").failures()      # the folders without config.json
    assert len(recorded) == 3 and set(recorded["stage"]) == {"load"}
    assert message.startswith("every candidate failed (14 at evaluate, 3 at load; e.g. ") and "\n" not in message
    assert "RuntimeError: the plug-in backend crashed" in message
    assert message.endswith(f"the 3 checkpoints' own failures are recorded in {tmp_path / 'run' / 'store' / 'failures'}"
                            f"; a rerun tries the other 14 again")


def test_a_name_registered_only_where_the_search_started_is_one_line_from_the_driver(tiny_tree, example_plugins,
                                                                                    tmp_path):
    """A built-in class under a new name, registered in this process only: the workers import the plug-ins and
    still do not know the name; the driver says so before anything is evaluated."""
    from raygems import register_method
    from raygems.bandits.elimination import SequentialHalving
    from raygems.errors import UsageError

    register_method("caller-only-halving", SequentialHalving)
    config = SearchConfig(tree=str(tiny_tree.root), tasks=("plugin_sums",), per_task=40, budget=8,
                          method="caller-only-halving", backend="plugin_oracle", plugins=(example_plugins,),
                          out=str(tmp_path / "run"), progress=False)
    with pytest.raises(UsageError) as raised:
        run_search(config)
    assert str(raised.value) == ("method 'caller-only-halving' is not registered in the search's Ray workers (it "
                                 "was, in the process that started the search): register it in a module and name "
                                 "that module in plugins (--plugins MODULE; raygems.plugins)")
    assert not (tmp_path / "run" / "store" / "results").exists() or not any((tmp_path / "run" / "store" /
                                                                              "results").iterdir())


def test_a_model_actor_that_cannot_start_stops_the_search_in_one_line(tmp_path, monkeypatch):
    """A plug-in the model actors cannot import (tests/plugins/raygems_actor_breaker.py): every model actor would
    fail the same way on every node, so the search stops with the reason instead of replacing them forever."""
    from raygems.errors import SetupError

    from runtime_helpers import write_matrix

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "plugins"))    # (the Ray workers have it too)
    _, matrix, models = write_matrix(tmp_path / "recorded", finetunes=6, adapters=0, per_task=4)
    config = SearchConfig(matrix=str(matrix), models=str(models), budget=4, plugins=("raygems_actor_breaker",),
                          out=str(tmp_path / "run"), progress=False)
    with pytest.raises(SetupError) as raised:
        run_search(config)
    message = str(raised.value)
    assert message.startswith("a model actor could not start: ") and "\n" not in message
    assert "libmissing.so.1" in message
