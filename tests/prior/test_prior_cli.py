from __future__ import annotations

import json

import pandas as pd
import pytest

from raygems.cli import main


@pytest.fixture()
def records_csv(tmp_path, synthetic_records):
    path = tmp_path / "records.csv"
    synthetic_records.drop(columns=["expected_logit"]).to_csv(path, index=False)
    return path


def test_fit_then_rank(tmp_path, records_csv, synthetic_records, capsys):
    extra = tmp_path / "more.parquet"
    synthetic_records.head(6).assign(task="delta").to_parquet(extra)
    assert main(["prior", "fit", "--records", str(records_csv), str(extra), "--out", str(tmp_path / "prior"),
                 "--steps", "60", "--quiet"]) == 0
    assert (tmp_path / "prior" / "config.json").is_file() and (tmp_path / "prior" / "weights.pt").is_file()
    candidates = synthetic_records.drop_duplicates("model_id").head(25)[["model_id", "params_b", "architecture"]]
    candidates.to_parquet(tmp_path / "candidates.parquet")
    out = tmp_path / "ranked.json"
    assert main(["prior", "rank", "--model", str(tmp_path / "prior"), "--candidates",
                 str(tmp_path / "candidates.parquet"), "--task", "alpha", "--json", str(out)]) == 0
    ranked = json.loads(out.read_text())
    assert [set(entry) for entry in ranked] == [{"model_id", "score"}] * 25
    assert sorted(e["model_id"] for e in ranked) == sorted(candidates["model_id"])
    scores = [e["score"] for e in ranked]
    assert scores == sorted(scores, reverse=True)
    candidates.to_csv(tmp_path / "candidates.csv", index=False)
    assert main(["prior", "rank", "--model", str(tmp_path / "prior"), "--candidates", str(tmp_path / "candidates.csv"),
                 "--task", "new_task", "--json", str(out), "--top", "3"]) == 0
    assert len(json.loads(out.read_text())) == 3
    assert "new to this prior" in capsys.readouterr().out


def test_convert_leaderboard_and_result_store(tmp_path, shared_dir):
    board = shared_dir / "data/leaderboard"
    out = tmp_path / "records.parquet"
    assert main(["prior", "convert", "--leaderboard-v2", str(board / "huggingface_v2_2025-03-21.csv"),
                 "--out", str(out)]) == 0
    records = pd.read_parquet(out)
    assert records["task"].nunique() == 6 and records["model_id"].nunique() > 4000


def test_convert_result_store(tmp_path):
    store = pd.DataFrame({"model_id": ["a", "a", "b"], "revision": "r", "query_id": ["q1", "q2", "q1"],
                          "task": "gsm8k", "variant": "plain", "reward": [1, 0, 1]})
    store.to_parquet(tmp_path / "store.parquet")
    assert main(["prior", "convert", "--result-store", str(tmp_path / "store.parquet"),
                 "--out", str(tmp_path / "r.csv")]) == 0
    records = pd.read_csv(tmp_path / "r.csv").set_index("model_id")
    assert records.loc["a", "score"] == 0.5 and records.loc["b", "score"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["prior"], "choose an action"),
    (["prior", "convert", "--out", "x.parquet"], "at least one"),
    (["prior", "fit", "--records", "/nonexistent/r.csv", "--out", "o"], "does not exist"),
    (["prior", "rank", "--model", "/nonexistent", "--candidates", "/nonexistent.csv", "--task", "t", "--json", "o"],
     "does not exist"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory, synthetic_records):
    """A prior fitted in a few steps by `raygems prior fit`, and a candidates file for `rank`."""
    root = tmp_path_factory.mktemp("tiny_prior")
    records = synthetic_records[synthetic_records["model_id"].isin(synthetic_records["model_id"].unique()[:40])]
    records.drop(columns=["expected_logit"]).to_csv(root / "records.csv", index=False)
    assert main(["prior", "fit", "--records", str(root / "records.csv"), "--out", str(root / "prior"),
                 "--steps", "10", "--quiet"]) == 0
    records.drop_duplicates("model_id").head(5)[["model_id", "params_b"]].to_csv(root / "candidates.csv", index=False)
    return root


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("name, content, message", [
    ("weights.pt", "this is not a torch file", "weights.pt: not a readable prior weights file"),
    ("weights.pt", "", "weights.pt: not a readable prior weights file"),
    ("config.json", "{not json", "config.json: not a valid prior config file (corrupt JSON"),
    ("config.json", '{"format": "raygems-model-prior", "version": 1, "config": {"bogus": 1}}',
     "config.json: malformed prior config"),
])
def test_corrupt_prior_files_are_named(tiny_prior, tmp_path, capsys, name, content, message):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_prior / "prior", broken)
    (broken / name).write_text(content)
    assert main(["prior", "rank", "--model", str(broken), "--candidates", str(tiny_prior / "candidates.csv"),
                 "--task", "alpha", "--json", str(tmp_path / "r.json")]) == 2
    line = _one_error_line(capsys)
    assert str(broken / name) in line and message in line


def test_weights_of_another_prior_are_refused(tiny_prior, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_prior / "prior", broken)
    import torch
    torch.save({"something": torch.zeros(2)}, broken / "weights.pt")
    assert main(["prior", "rank", "--model", str(broken), "--candidates", str(tiny_prior / "candidates.csv"),
                 "--task", "alpha", "--json", str(tmp_path / "r.json")]) == 2
    assert "weights do not fit the network described in" in _one_error_line(capsys)


def test_unknown_metric_is_refused(tiny_prior, tmp_path, capsys):
    argv = ["prior", "rank", "--model", str(tiny_prior / "prior"), "--candidates", str(tiny_prior / "candidates.csv"),
            "--json", str(tmp_path / "r.json")]
    assert main([*argv, "--task", "alpha", "--metric", "bogus"]) == 2
    assert "--metric 'bogus'" in _one_error_line(capsys)
    assert main([*argv, "--task", "new_task", "--metric", "bogus"]) == 2
    assert "--metric 'bogus'" in _one_error_line(capsys)
    assert not (tmp_path / "r.json").exists()
    assert main([*argv, "--task", "alpha", "--metric", "acc"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--calibration-fraction", "1.5"], "--calibration-fraction must be in [0, 1), got 1.5"),
])
def test_bad_fit_flags_are_named(tiny_prior, tmp_path, capsys, extra, message):
    assert main(["prior", "fit", "--records", str(tiny_prior / "records.csv"), "--out", str(tmp_path / "p"),
                 *extra]) == 2
    assert message in _one_error_line(capsys)


def test_fit_checks_out_before_training(tiny_prior, tmp_path, capsys, monkeypatch):
    from raygems.prior import ModelPrior

    monkeypatch.setattr(ModelPrior, "fit", lambda *a, **k: pytest.fail("trained before checking --out"))
    existing = tmp_path / "afile.txt"
    existing.write_text("x")
    assert main(["prior", "fit", "--records", str(tiny_prior / "records.csv"), "--out", str(existing)]) == 2
    assert f"--out {existing}: is an existing file" in _one_error_line(capsys)


def test_fit_rejects_scores_outside_0_1(tmp_path, capsys):
    path = tmp_path / "r.csv"
    pd.DataFrame({"model_id": ["a", "b", "c"], "task": "t", "score": [0.1, 0.2, 1e30]}).to_csv(path, index=False)
    assert main(["prior", "fit", "--records", str(path), "--out", str(tmp_path / "p")]) == 2
    line = _one_error_line(capsys)
    assert str(path) in line and "outside [0, 1]" in line and "row 2" in line


def test_fit_on_bare_records_prints_no_warnings(tmp_path, synthetic_records, capfd):
    path = tmp_path / "bare.csv"
    synthetic_records[["model_id", "task", "score"]].head(90).to_csv(path, index=False)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["prior", "fit", "--records", str(path), "--out", str(tmp_path / "p"), "--steps", "5",
                     "--quiet"]) == 0
    assert "Warning" not in capfd.readouterr().err
