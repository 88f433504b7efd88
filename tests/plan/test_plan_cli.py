"""`raygems plan` and `raygems search --dry-run`: a table and JSON per method, sizes from local files or hub
metadata (nothing downloaded), one-line errors, and a dry run that starts no Ray and writes nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raygems.cli import main
from raygems.demo.tree_spec import BASE
from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.serve import HubServer

from synthetic_matrix import write_matrix
from tiny_tree_fixture import tiny_tree  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
KEYS = {"wall_s", "gpu_hours", "fetch_bytes", "peak_cache_bytes", "loads", "reloads", "rounds", "budget_used"}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    _, path, models = write_matrix(tmp_path_factory.mktemp("plan-cli"), finetunes=14, adapters=2, per_task=10, seed=3)
    return str(path), str(models)


def plan_json(capsys, argv) -> dict:
    assert main(["plan", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_a_plan_per_method_with_the_cost_keys(capsys, matrix):
    data = plan_json(capsys, ["--matrix", matrix[0], "--models", matrix[1], "--budget", "4",
                              "--method", "recommended,sequential-halving,exhaustive", "--checkpoint-size", "15.2GB",
                              "--max-loaded", "2", "--gpus-per-node", "2", "--download-bandwidth", "1e9"])
    plans = {p["method"]: p for p in data["plans"]}
    assert list(plans) == ["recommended", "sequential-halving", "exhaustive"]
    for plan in plans.values():
        assert KEYS <= set(plan) and plan["wall_s"] > 0
        assert plan["gpu_hours"] == pytest.approx(plan["wall_s"] * 2 / 3600)
        assert plan["fetch_bytes"] >= 16 * 15_200_000_000       # every candidate fetched at least once
    setup = data["setup"]
    assert setup["candidates"] == 16 and setup["queries"] == 50 and setup["fetched_from_hub"]
    assert data["speeds"]["download_bandwidth"] == 1e9
    assert plans["exhaustive"]["queries_paid"] == 16 * 50 and plans["exhaustive"]["rounds"] == 0
    assert plans["recommended"]["budget_used"] <= 4 * 16 < plans["exhaustive"]["queries_paid"]


def test_best_base_is_planned_from_the_models_table(capsys, matrix):
    """best-base evaluates nothing in the search: its plan pays only the final evaluation of the base it picks."""
    data = plan_json(capsys, ["--matrix", matrix[0], "--models", matrix[1], "--budget", "4",
                              "--method", "best-base,recommended"])
    plans = {p["method"]: p for p in data["plans"]}
    assert plans["best-base"]["rounds"] == 0 and plans["best-base"]["budget_used"] == 0
    assert plans["best-base"]["queries_paid"] == data["setup"]["queries"]     # the chosen model, on the whole pool
    assert plans["best-base"]["wall_s"] < plans["recommended"]["wall_s"]


def test_the_table_names_every_method(capsys, matrix):
    assert main(["plan", "--matrix", matrix[0], "--models", matrix[1], "--budget", "4",
                 "--method", "ours,uniform,ours"]) == 0      # (a method given twice is planned once)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("plan: 16 candidates") and "GPU-h" in out[2]
    assert [line.split()[0] for line in out[3:]] == ["ours", "uniform"]


@pytest.mark.parametrize("argv, message", [
    (["--method", "recommended,fastest"], "unknown method 'fastest'"),
    (["--method", ""], "--method '': give one or more methods"),
    (["--download-bandwidth", "inf"], "--download-bandwidth 'inf': give bytes per second"),
    (["--checkpoint-size", "1e30"], "--checkpoint-size '1e30': give a finite size of at most 1 EB"),
    (["--gpus-per-node", "nan"], "gpus_per_node must be a finite number >= 0, got nan"),
    (["--calibrate-from", "/nonexistent/run"], "not a finished run with an events log"),
    (["--download-bandwidth", "fast"], "--download-bandwidth 'fast': give bytes per second"),
    (["--checkpoint-size", "15XB"], "--checkpoint-size '15XB': give a size such as 500GB"),
    (["--nodes", "0"], "nodes, max_loaded and fetch_concurrency must be at least 1"),
])
def test_bad_input_gets_one_line(capsys, matrix, argv, message):
    assert main(["plan", "--matrix", matrix[0], "--models", matrix[1], "--budget", "4", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("raygems plan: error: ") and message in err, err


def test_a_local_tree_is_sized_from_its_files(capsys, tiny_tree):  # noqa: F811
    data = plan_json(capsys, ["--tree", str(tiny_tree.root), "--tasks", "toy_arith,toy_choice", "--per-task", "20",
                              "--budget", "4"])
    setup = data["setup"]
    files = sum(f.stat().st_size for f in Path(tiny_tree.root).rglob("*.safetensors"))
    assert not setup["fetched_from_hub"] and 0.8 * files < setup["checkpoint_bytes"] <= 1.2 * files
    assert setup["queries"] == 40 and setup["decode_steps"] == {"toy_arith": 24, "toy_choice": 8}
    assert data["plans"][0]["fetch_bytes"] == 0


def test_a_hub_tree_is_sized_from_metadata_and_nothing_is_downloaded(capsys, tiny_tree, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(DirectoryCatalog(tiny_tree.root)) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        data = plan_json(capsys, ["--tree", BASE, "--tasks", "toy_arith", "--per-task", "20", "--budget", "4",
                                  "--cache-limit", "2MB", "--download-bandwidth", "1MB"])
        downloads = [r.path for r in hub.requests_to("/") if "/resolve/" in r.path]
    assert downloads == []
    setup, plan = data["setup"], data["plans"][0]
    assert setup["fetched_from_hub"] and setup["checkpoint_bytes"] > 5_000_000
    assert plan["fetch_bytes"] >= setup["checkpoint_bytes"] - 3_000_000      # broken models may fail early
    assert 0 < plan["peak_cache_bytes"] <= 2_000_000 and plan["wall_s"] > plan["fetch_bytes"] / 1e6


def test_search_dry_run_starts_no_ray_and_writes_nothing(matrix, tmp_path):
    out = tmp_path / "never"
    code = ("import sys; sys.modules['ray'] = None\n"          # any `import ray` fails
            "from raygems.cli import main\n"
            f"sys.exit(main(['search', '--matrix', {matrix[0]!r}, '--models', {matrix[1]!r}, '--budget', '4', "
            f"'--out', {str(out)!r}, '--dry-run', '--json']))")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout)["plans"]
    assert [p["method"] for p in plans] == ["recommended"] and plans[0]["budget_used"] <= 64
    assert not out.exists()
