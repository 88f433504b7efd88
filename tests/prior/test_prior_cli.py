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
