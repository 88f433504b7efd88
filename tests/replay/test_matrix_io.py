"""Correctness matrices in and out, and the clear errors bad input gets."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from raygems.bandits import list_methods
from raygems.cli import main
from raygems.replay import CorrectnessMatrix, MatrixError, from_long, load_matrix


def small_matrix(k=4, q=6, seed=0) -> CorrectnessMatrix:
    rng = np.random.default_rng(seed)
    values = (rng.random((k, q)) < 0.5).astype(np.uint8)
    return CorrectnessMatrix(values, tuple(f"org/m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)),
                             tuple(["gsm8k"] * (q // 2) + ["mbpp"] * (q - q // 2)))


def test_long_parquet_round_trip(tmp_path):
    m = small_matrix()
    path = m.to_parquet(tmp_path / "m.parquet")
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["model_id", "query_id", "task", "correct"]
    back = load_matrix(path)
    assert np.array_equal(back.values, m.values)
    assert back.model_ids == m.model_ids and back.query_ids == m.query_ids and back.tasks == m.tasks


def test_wide_npy_round_trip_with_index(tmp_path):
    m = small_matrix()
    path = m.to_npy(tmp_path / "matrix_models_x_items.npy")
    assert json.loads((tmp_path / "index.json").read_text())["models"] == list(m.model_ids)
    for target in (path, tmp_path):  # the file, or the folder that holds it
        back = load_matrix(target)
        assert np.array_equal(back.values, m.values) and back.tasks == m.tasks


def test_npy_without_index_gets_generated_ids(tmp_path):
    np.save(tmp_path / "x.npy", np.eye(3, dtype=np.uint8))
    m = load_matrix(tmp_path / "x.npy")
    assert m.model_ids == ("model_0", "model_1", "model_2") and m.tasks is None


@pytest.mark.parametrize("values, message", [
    (np.array([[0, 1], [2, 0]]), "binary"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
    (np.array([[0, 1]]), "at least 2 models"),
])
def test_bad_matrices_are_rejected_with_a_reason(values, message):
    k, q = values.shape
    with pytest.raises(MatrixError, match=message):
        CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)))


def test_long_format_errors_name_the_problem():
    good = small_matrix().to_long()
    with pytest.raises(MatrixError, match="missing column"):
        from_long(good.drop(columns=["correct"]))
    bad = good.copy()
    bad.loc[3, "correct"] = 5
    with pytest.raises(MatrixError, match="must be 0 or 1, got 5"):
        from_long(bad)
    with pytest.raises(MatrixError, match="duplicate result"):
        from_long(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(MatrixError, match="incomplete matrix: model 'org/m0' lacks results for 1"):
        from_long(good.iloc[1:])
    nameless = good.astype({"model_id": object})
    nameless.loc[4, "model_id"] = None
    with pytest.raises(MatrixError, match="a row without a model_id \\(row 5\\)"):
        from_long(nameless)
    shuffled = good.sample(frac=1.0, random_state=0).astype({"correct": bool})      # any row order, bool answers
    back = from_long(shuffled)
    order = [list(back.model_ids).index(m) for m in small_matrix().model_ids]
    assert np.array_equal(back.values[order][:, [list(back.query_ids).index(q) for q in small_matrix().query_ids]],
                          small_matrix().values)
    assert back.model_ids == tuple(dict.fromkeys(shuffled["model_id"]))          # rows in order of first appearance
    nan = good.astype({"correct": float})
    nan.loc[0, "correct"] = np.nan
    with pytest.raises(MatrixError, match="NaN"):
        from_long(nan)


def test_models_table_alignment(tmp_path):
    m = small_matrix()
    table = pd.DataFrame({"model_id": list(reversed(m.model_ids)), "downloads": [1, 2, 3, 4],
                          "is_base": [True, False, False, False]})
    aligned = m.with_models(table).models
    assert list(aligned["model_id"]) == list(m.model_ids)
    assert list(aligned["downloads"]) == [4, 3, 2, 1]
    with pytest.raises(MatrixError, match="lacks 1 model"):
        m.with_models(table.iloc[1:])


def test_is_base_is_read_strictly(tmp_path):
    m = small_matrix()
    spellings = ["yes", "No", "TRUE", "false"]
    table = pd.DataFrame({"model_id": list(m.model_ids), "downloads": [5, 900, 70, 1000], "is_base": spellings})
    table.to_csv(tmp_path / "models.csv", index=False)
    loaded = load_matrix(m.to_parquet(tmp_path / "m.parquet"), models=tmp_path / "models.csv")
    assert loaded.models["is_base"].tolist() == [True, False, True, False]
    assert loaded.popular_base() == 2                         # "No" is not a base, as it says
    for flags, expected in (([1, 0, 0, 1], [True, False, False, True]),
                            ([1.0, 0.0, None, 0.0], [True, False, False, False]),      # missing: not a base
                            ([True, False, np.nan, True], [True, False, False, True]),
                            (["1", " yes ", "0", "NO"], [True, True, False, False])):
        assert m.with_models(table.assign(is_base=flags)).models["is_base"].tolist() == expected, flags
    for bad, shown in (("maybe", "'maybe'"), (2, "2"), ("", "''")):
        flags = ["yes", "no", bad, "no"]
        with pytest.raises(MatrixError, match=rf"is_base {shown} in row 3 \(model 'org/m2'\) is not true/false"):
            m.with_models(table.assign(is_base=flags))
    table.assign(is_base=["yes", "no", "sometimes", "no"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(MatrixError, match=f"{tmp_path / 'bad.csv'}: is_base 'sometimes' in row 3"):
        load_matrix(tmp_path / "m.parquet", models=tmp_path / "bad.csv")


def test_downloads_must_be_numbers(tmp_path):
    m = small_matrix()
    table = pd.DataFrame({"model_id": list(m.model_ids), "downloads": ["5", "many", 70, 1], "is_base": False})
    table.to_csv(tmp_path / "models.csv", index=False)
    with pytest.raises(MatrixError, match=f"{tmp_path / 'models.csv'}: downloads 'many' in row 2 \\(model 'org/m1'\\)"):
        load_matrix(m.to_parquet(tmp_path / "m.parquet"), models=tmp_path / "models.csv")
    with pytest.raises(MatrixError, match="downloads -3 in row 4"):
        m.with_models(table.assign(downloads=[1, 2, 3, -3]))
    with pytest.raises(MatrixError, match="no downloads for model 'org/m1'"):
        m.with_models(table.assign(downloads=[1, None, 3, 4]))
    assert m.with_models(table.assign(downloads=["5", "6", 7, 8.0])).models["downloads"].tolist() == [5, 6, 7, 8]


def test_popular_base_is_the_most_downloaded_flagged_model():
    m = small_matrix()
    table = pd.DataFrame({"model_id": list(m.model_ids), "downloads": [5, 900, 70, 1000],
                          "is_base": [True, False, True, False]})
    assert m.with_models(table).popular_base() == 2           # 1000 and 900 downloads, but not official
    assert m.with_models(table.assign(is_base=False)).popular_base() == 3   # none official: the most downloaded
    assert m.popular_base() is None                           # no models table


def test_cli_errors_are_clear(tmp_path, capsys):
    m = small_matrix()
    path = m.to_parquet(tmp_path / "m.parquet")
    cases = [
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--budgets", "0"], "at least 1, got 0"),
        (["--budgets", "7"], "exceeds the pool of 6 queries"),
        (["--methods", "best-base"], "best-base needs a models table"),
    ]
    for extra, message in cases:
        code = main(["replay", "--matrix", str(path), "--reps", "2", "--quiet"] + extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err, (extra, err)
    for argv, message in [                # a flag that would be ignored is named, not dropped
        (["--matrix", ""], "--matrix is empty"), (["--tree", " "], "--tree is empty"),
        (["--matrix", str(path), "--tree", "qwen-3b"], "--tree qwen-3b names a synthetic tree"),
        (["--models", str(path)], f"--models {path}: a models table goes with --matrix"),
    ]:
        assert main(["replay", "--reps", "2", "--quiet"] + argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[0, 3], [1, 1]], dtype=np.uint8))
    assert main(["replay", "--matrix", str(bad), "--quiet"]) == 2
    assert "binary" in capsys.readouterr().err
    assert main(["replay", "--matrix", str(tmp_path / "missing.parquet"), "--quiet"]) == 2
    assert "no correctness matrix" in capsys.readouterr().err


def test_cli_json_contract(tmp_path, capsys):
    m = small_matrix(k=8, q=40)
    path = m.to_parquet(tmp_path / "m.parquet")
    models = tmp_path / "models.csv"
    pd.DataFrame({"model_id": m.model_ids, "downloads": range(8), "is_base": [True] + [False] * 7}).to_csv(models)
    out = tmp_path / "out.json"
    code = main(["replay", "--matrix", str(path), "--methods", "all", "--budgets", "5,10,5", "--reps", "10",
                 "--seed", "0", "--models", str(models), "--json", str(out), "--quiet"])
    assert code == 0
    rows = json.loads(out.read_text())
    methods = list_methods()
    assert {r["method"] for r in rows} == set(methods)
    assert len(rows) == len(methods) * 2
    for row in rows:
        assert set(row) == {"method", "budget", "reps", "mean_rank", "std_rank", "mean_accuracy", "p_top1",
                            "p_top3", "budget_fraction", "seconds"}
        assert row["reps"] == 10 and 1 <= row["mean_rank"] <= 8
    printed = capsys.readouterr().out
    assert "mean_rank" in printed and "ours" in printed


def test_a_matrix_prints_its_shape_and_a_few_ids_not_all_of_them():
    ids = [f"q{i}" for i in range(5000)]
    matrix = CorrectnessMatrix(np.eye(4, 5000, dtype=np.uint8), ("a", "b", "c", "d"), tuple(ids),
                               tasks=tuple(["gsm8k", "mbpp"] * 2500))
    text = repr(matrix)
    assert text.startswith("CorrectnessMatrix(4 models x 5000 queries, accuracy 0.000; models=('a', 'b', 'c', ... (4))")
    assert "tasks=('gsm8k', 'mbpp')" in text and "q4999" not in text and len(text) < 200
