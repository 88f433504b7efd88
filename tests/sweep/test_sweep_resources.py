"""A trial that no node of the Ray cluster can hold is refused in one line once Ray is up, instead of Tune
waiting for it forever (the config check itself refuses NaN and amounts <= 0: test_sweep_config.py)."""
from __future__ import annotations

import pytest

from raygems.cli import main
from raygems.sweep import SweepConfigError
from raygems.sweep.runner import check_trial_resources, cluster_nodes

from sweep_helpers import write_config

NODES = [{"CPU": 8.0, "memory": 3e10, "model_slot": 2.0}, {"CPU": 4.0, "GPU": 1.0, "memory": 1e10}]


@pytest.mark.parametrize("requested, message", [
    ({"cpu": 9}, "resources_per_trial.cpu = 9, but no node of the Ray cluster has that much: the largest has 8 "
                 "CPU (2 node(s) with 12 CPU and 1 GPU in all)"),
    ({"cpu": 1, "gpu": 2}, "resources_per_trial.gpu = 2, but no node of the Ray cluster has that much: the largest "
                           "has 1 GPU"),
    ({"model_slot": 3}, "resources_per_trial.model_slot = 3, but no node"),
    ({"accelerator_tpu": 1}, "resources_per_trial.accelerator_tpu = 1, but the Ray cluster has no accelerator_tpu"),
])
def test_what_no_node_holds_is_refused_naming_the_value_and_the_cluster(requested, message):
    with pytest.raises(SweepConfigError) as refused:
        check_trial_resources(requested, NODES)
    assert message in str(refused.value)


def test_what_one_node_holds_passes():
    check_trial_resources({"cpu": 8, "memory": 2e10, "model_slot": 2}, NODES)
    check_trial_resources({"CPU": 4, "GPU": 1}, NODES)


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("resources, message", [
    ({"cpu": 1, "gpu": 1}, "resources_per_trial.gpu = 1, but the Ray cluster has no GPU (1 node(s) with 4 CPU"),
    ({"cpu": 64}, "resources_per_trial.cpu = 64, but no node of the Ray cluster has that much: the largest has 4 CPU"),
])
def test_the_cli_refuses_in_one_line_before_writing_anything(tmp_path, capsys, resources, message):
    assert [node["CPU"] for node in cluster_nodes()] == [4.0]           # tests/conftest.py's local cluster
    out = tmp_path / "out"
    assert main(["sweep", str(write_config(tmp_path, resources_per_trial=resources)), "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("raygems sweep: error: "), err
    assert message in err and not list(out.glob("*.parquet"))
