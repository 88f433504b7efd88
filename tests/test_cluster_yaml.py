"""cluster.yaml: valid for Ray's autoscaler, elastic GPU workers, and installs what the project pins."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def pinned_ray_version() -> str:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [re.fullmatch(r"ray(\[[^\]]*\])?==(\S+)", d.replace(" ", "")) for d in dependencies]
    pins = [m.group(2) for m in pins if m]
    assert len(pins) == 1, f"pyproject.toml should pin ray exactly once, found {pins}"
    return pins[0]


def test_valid_against_rays_schema(cluster):
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)


def test_valid_after_rays_own_preparation(cluster):
    """What `ray up` does before launching: merge the AWS defaults, then validate."""
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(json.loads(json.dumps(cluster)))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_cpu_head_and_elastic_gpu_workers(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert len(workers) >= 2
    for name, worker in workers.items():
        assert worker["min_workers"] == 0, name                     # scale to zero when idle
        assert worker["max_workers"] > 0, name                      # and up when a search needs GPUs
        assert worker["resources"]["GPU"] >= 1, name
        assert worker["resources"]["model_slot"] >= worker["resources"]["GPU"], name
    assert cluster["max_workers"] >= max(w["max_workers"] for w in workers.values())
    assert cluster["idle_timeout_minutes"] > 0


def test_setup_installs_the_pinned_ray_and_raygems_with_vllm(cluster):
    version = pinned_ray_version()
    import ray

    assert ray.__version__ == version
    commands = " ".join(cluster["setup_commands"])
    ray_pins = re.findall(r"ray(?:\[[^\]]*\])?==([0-9][^\s\"']*)", commands)
    assert ray_pins == [version]
    assert re.search(r"raygems\[[^\]]*\bvllm\b[^\]]*\]", commands), "setup must install raygems with [vllm]"
    # The install path is the repository copied to every node.
    assert cluster["file_mounts"]["~/raygems"] == "."
    assert "$HOME/raygems[vllm]" in commands


def test_every_node_uses_the_same_image(cluster):
    images = {t["node_config"]["ImageId"] for t in cluster["available_node_types"].values()}
    assert len(images) == 1
