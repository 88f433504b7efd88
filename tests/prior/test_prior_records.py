from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.prior.records import (RECORD_COLUMNS, aggregate_duplicates, model_table, normalize_model_type,
                                   read_records, validate_records, write_records)


def test_validate_adds_optional_columns_and_normalises():
    records = validate_records(pd.DataFrame({
        "model_id": ["a/x", "b/y"], "task": ["gsm8k", "gsm8k"], "score": ["0.5", 0.25],
        "params_b": [0, 7], "type": ["🔶 fine-tuned on domain-specific datasets", "chatmodels"],
        "date": ["2024-05-05T12:22:44Z", "not a date"],
    }))
    assert list(records.columns[: len(RECORD_COLUMNS)]) == list(RECORD_COLUMNS)
    assert records["score"].tolist() == [0.5, 0.25]
    assert np.isnan(records.loc[0, "params_b"]) and records.loc[1, "params_b"] == 7   # 0 = unknown
    assert records["type"].tolist() == ["finetuned", "chat"]
    assert records.loc[0, "date"] == "2024-05-05" and records.loc[1, "date"] is None
    assert (records["metric"] == "accuracy").all()


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"model_id": ["a"], "task": ["t"]}), "missing required column"),
    (pd.DataFrame({"model_id": ["a"], "task": ["t"], "score": ["high"]}), "non-numeric score"),
    (pd.DataFrame({"model_id": [None], "task": ["t"], "score": [1.0]}), "empty 'model_id'"),
    (pd.DataFrame({"model_id": ["a"], "task": [""], "score": [1.0]}), "empty 'task'"),
    (pd.DataFrame({"model_id": ["a", "b"], "task": ["t", "t"], "score": [0.5, 1e30]}),
     r"score outside \[0, 1\] \(first: row 1, value 1e\+30\)"),
    (pd.DataFrame({"model_id": ["a"], "task": ["t"], "score": [-0.1]}), r"outside \[0, 1\]"),
])
def test_validate_rejects_bad_rows(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_records(bad)


@pytest.mark.parametrize("raw, expected", [
    ("🤝 base merges and moerges", "merge"), ("🟢 pretrained", "pretrained"),
    ("continuouslypretrained", "continuously_pretrained"), ("🟩 continuously pretrained", "continuously_pretrained"),
    ("finetune", "finetuned"), ("adapter", "finetuned"), ("base", "pretrained"), ("❓other", "other"),
    (None, None), ("?", None), (float("nan"), None),
])
def test_model_types(raw, expected):
    assert normalize_model_type(raw) == expected


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_then_read_round_trip(tmp_path, synthetic_records, suffix):
    path = write_records(synthetic_records.head(30), tmp_path / f"records{suffix}")
    back = read_records([path])
    assert len(back) == 30
    assert back["score"].to_numpy() == pytest.approx(synthetic_records["score"].head(30).to_numpy())
    assert back["model_id"].tolist() == synthetic_records["model_id"].head(30).tolist()


def test_read_records_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "missing.csv")
    (tmp_path / "r.json").write_text("[]")
    with pytest.raises(ValueError, match="unknown format"):
        read_records(tmp_path / "r.json")


def test_duplicates_are_averaged_and_model_table_takes_latest_metadata():
    records = pd.DataFrame({
        "model_id": ["m", "m", "m", "n"], "task": ["t", "t", "u", "t"], "score": [0.2, 0.4, 0.9, 0.5],
        "likes": [1, 5, None, 2], "date": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-01-01"],
    })
    merged = aggregate_duplicates(records)
    assert len(merged) == 3
    assert merged.set_index(["model_id", "task"]).loc[("m", "t"), "score"] == pytest.approx(0.3)
    models = model_table(records).set_index("model_id")
    assert models.loc["m", "likes"] == 5       # latest non-missing value
    assert models.loc["m", "date"] == "2024-03-01"


def test_read_records_names_the_file_with_an_out_of_range_score(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"model_id": ["a", "b"], "task": ["t", "t"], "score": [0.0, 87.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"{path}: 1 row\(s\) have a score outside \[0, 1\] \(first: row 1, value 87.0\)"):
        read_records(path)
