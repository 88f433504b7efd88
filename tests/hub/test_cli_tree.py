"""`raygems tree` end to end: against the recorded hub server and against a local directory."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from recorded_hub_helpers import ROOT_ID, hub_online, recorded_hub  # noqa: F401 - fixtures
from test_local_tree_source import local_tree  # noqa: F401 - fixture

from raygems.cli import main


def test_tree_from_the_hub_to_parquet(recorded_hub, tmp_path, capsys):
    out = tmp_path / "tree.parquet"
    status = main(["tree", ROOT_ID, "--out", str(out), "--endpoint", recorded_hub.endpoint, "--no-progress",
                   "--kinds", "finetune,adapter,quantized,merge"])
    assert status == 0
    tree = pd.read_parquet(out)
    assert len(tree) == 15 and tree["depth"].max() == 3
    assert set(tree.columns) >= {"model_id", "kind", "base_model", "revision", "downloads", "likes", "created_at",
                                 "pipeline_tag", "library_name", "depth", "is_base"}
    assert str(out) in capsys.readouterr().out


def test_tree_with_the_paper_selection(recorded_hub, tmp_path):
    out = tmp_path / "selection.parquet"
    assert main(["tree", ROOT_ID, "--out", str(out), "--endpoint", recorded_hub.endpoint, "--no-progress",
                 "--select", "--top", "2", "--random", "1", "--seed", "0"]) == 0
    chosen = pd.read_parquet(out)
    counts = chosen.groupby("selection").size().to_dict()
    assert counts == {"root": 1, "top": 4, "random": 2}        # finetune and adapter: 2 top + 1 random each
    top_finetunes = chosen[(chosen["kind"] == "finetune") & (chosen["selection"] == "top")]["model_id"]
    assert set(top_finetunes) == {"acme-ai/Acme-1B-Instruct", "acme-ai/Acme-1B-Coder"}


def test_tree_from_a_local_directory(local_tree, tmp_path, capsys):
    out = tmp_path / "local.parquet"
    assert main(["tree", "tiny/base", "--source", str(local_tree), "--out", str(out), "--no-progress"]) == 0
    tree = pd.read_parquet(out)
    assert set(tree["kind"]) == {"base", "finetune", "adapter"}
    # BASE_ID may also be the directory itself when it has one root ...
    lone = tmp_path / "lone"
    (lone / "a").mkdir(parents=True)
    import shutil

    for model in ("tiny/base", "tiny/base-instruct", "ann/lora"):
        shutil.copytree(local_tree / model, lone / model)
    shutil.rmtree(lone / "a")
    assert main(["tree", str(lone), "--out", str(tmp_path / "lone.parquet"), "--no-progress"]) == 0
    assert set(pd.read_parquet(tmp_path / "lone.parquet")["model_id"]) == {"tiny/base", "tiny/base-instruct",
                                                                             "ann/lora"}
    # ... and is refused, with the roots named, when it has several.
    assert main(["tree", str(local_tree), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "root models" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--kinds", "finetune,cousin"], "--kinds"),
    (["--max-depth", "-2"], "--max-depth"),
])
def test_bad_arguments(local_tree, tmp_path, capsys, argv, message):
    status = main(["tree", "tiny/base", "--source", str(local_tree), "--out", str(tmp_path / "t.parquet"), *argv])
    assert status == 2 and message in capsys.readouterr().err


def test_unknown_local_model_is_a_one_line_error(local_tree, tmp_path, capsys):
    assert main(["tree", "no/such", "--source", str(local_tree), "--out", str(tmp_path / "t.parquet"),
                 "--no-progress"]) == 2
    assert "not in the local tree" in capsys.readouterr().err


def test_help_runs_as_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "raygems", "tree", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "--select" in done.stdout and "--max-depth" in done.stdout
