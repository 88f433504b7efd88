"""The hidden-gem report on tables small enough to check by hand, and on the real RouterBench matrix."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from raygems.analysis.gems import accuracy_from_matrix, accuracy_from_results, find_gems, top_count
from raygems.hub.cards import parse_model_card
from raygems.replay import CorrectnessMatrix

TREE = pd.DataFrame({"model_id": ["org/base", "org/inst", "u/a", "u/b", "u/c"],
                     "downloads": [1000, 5000, 10, 3, 0], "revision": ["r0", "r1", "r2", "r3", "r4"]})
ACCURACY = pd.DataFrame({
    "model_id": list(TREE["model_id"]) * 2,
    "task": ["gsm8k"] * 5 + ["mbpp"] * 5,
    "accuracy": [0.50, 0.60, 0.70, 0.65, 0.55,      # gsm8k: u/a beats the popular org/inst
                 0.40, 0.45, 0.30, 0.45, 0.20],     # mbpp: u/b only ties the popular model
})


def test_top_one_percent_is_at_least_one_model():
    assert [top_count(k) for k in (1, 5, 99, 100, 101, 250, 300, 2000)] == [1, 1, 1, 1, 2, 3, 3, 20]
    with pytest.raises(ValueError):
        top_count(0)


def test_five_models_by_hand():
    report = find_gems(TREE, ACCURACY)
    math = report.models[report.models["task"] == "gsm8k"].set_index("model_id")
    assert list(math.index[math["popular"]]) == ["org/inst"]
    assert list(math.index[math["elite"]]) == ["u/a"]
    assert list(report.gems("gsm8k")["model_id"]) == ["u/a"]
    code = report.models[report.models["task"] == "mbpp"].set_index("model_id")
    assert set(code.index[code["elite"]]) == {"org/inst", "u/b"}       # tied at the top: both elite
    assert report.gems("mbpp").empty                                  # 0.45 is not strictly above 0.45
    summary = report.summary.set_index("task")
    assert summary.loc["gsm8k", "best_popular"] == "org/inst"
    assert summary.loc["gsm8k", "gain"] == pytest.approx(0.10)
    assert np.isnan(summary.loc["mbpp", "gain"]) and pd.isna(summary.loc["mbpp", "best_gem"])
    assert list(math["accuracy_rank"]) == [5, 3, 1, 2, 4]


def test_250_models_by_hand():
    ids = [f"m{i:03d}" for i in range(250)]
    tree = pd.DataFrame({"model_id": ids, "downloads": [250 - i for i in range(250)]})
    accuracy = pd.Series(0.5, index=ids)
    accuracy[["m001", "m100", "m200", "m150", "m050"]] = [0.8, 0.9, 0.85, 0.8, 0.79]
    table = pd.DataFrame({"model_id": ids, "task": "t", "accuracy": accuracy.to_numpy()})
    report = find_gems(tree, table)
    models = report.models.set_index("model_id")
    assert report.summary.loc[0, "top_n"] == 3
    assert set(models.index[models["popular"]]) == {"m000", "m001", "m002"}
    assert set(models.index[models["elite"]]) == {"m100", "m200", "m001", "m150"}   # m150 ties the 3rd
    assert list(report.gems("t")["model_id"]) == ["m100", "m200"]               # m150 is not dominant
    assert report.summary.loc[0, "gain"] == pytest.approx(0.1)
    bigger = find_gems(tree, table, top_fraction=0.02)                         # 5 popular, 5 elite
    assert bigger.summary.loc[0, "top_n"] == 5


def test_table1_and_markdown_layout():
    report = find_gems(TREE, ACCURACY)
    table = report.table1()
    assert list(table.index) == ["Base", "Gem", "Gain"] and list(table.columns) == ["gsm8k", "mbpp"]
    assert table.loc["Base", "gsm8k"] == pytest.approx(60.0) and table.loc["Gain", "gsm8k"] == pytest.approx(10.0)
    text = report.to_markdown("Tiny")
    assert "| Tree |  | gsm8k | mbpp |" in text
    assert "| Tiny | Base | 60.0 | 45.0 |" in text
    assert "|  | Gem | 70.0 | – |" in text and "|  | Gain | +10.0 | – |" in text
    assert "| gsm8k | u/a | 70.0 | 10 |" in text
    assert "Table 6" not in text                                               # no cards given


def test_documentation_check_with_cards():
    cards = {"u/a": parse_model_card("| Benchmark | Score |\n|---|---|\n| GSM8K | 70.0 |\n", "u/a")}
    report = find_gems(TREE, ACCURACY, cards=cards)
    assert report.documentation[["task", "model_id", "documentation", "symbol"]].values.tolist() == [
        ["gsm8k", "u/a", "relevant", "✓"]]
    assert report.table6().loc["Documentation"].tolist() == ["✓", "–"]
    cards["u/a"] = parse_model_card("| Task | Score |\n|---|---|\n| SEA-HELM | 44 |\n", "u/a")
    assert find_gems(TREE, ACCURACY, cards=cards).table6().loc["Documentation", "gsm8k"] == "●"
    undocumented = find_gems(TREE, ACCURACY, cards=lambda model_id: parse_model_card("# nothing", model_id))
    assert undocumented.table6().loc["Documentation", "gsm8k"] == "✗"
    assert "Table 6" in undocumented.to_markdown() and "| tree | ✗ | – |" in undocumented.to_markdown()

    def gated(model_id):
        raise PermissionError(f"{model_id} is gated")
    assert find_gems(TREE, ACCURACY, cards=gated).table6().loc["Documentation", "gsm8k"] == "?"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="not in the tree"):
        find_gems(TREE.iloc[:4], ACCURACY)
    with pytest.raises(ValueError, match="twice"):
        find_gems(TREE, pd.concat([ACCURACY, ACCURACY.iloc[[0]]]))
    with pytest.raises(ValueError, match="downloads"):
        find_gems(TREE.drop(columns=["downloads"]), ACCURACY)
    with pytest.raises(KeyError, match="task"):
        find_gems(TREE, ACCURACY).gems("winogrande")


def results_rows():
    rows = []
    def add(model, revision, task, variant, rewards):
        for i, r in enumerate(rewards):
            rows.append({"model_id": model, "revision": revision, "query_id": f"{task}-{i}", "task": task,
                         "variant": variant, "reward": r})
    add("u/x", "rx", "math", "system", [1, 1, 1, 0])
    add("u/x", "rx", "math", "plain", [1, 0, 1, 0])
    add("u/x", "rx", "code", "system", [0, 0])
    add("u/x", "rx", "code", "plain", [1, 1])
    add("u/y", "r1", "math", "plain", [1, 0])
    add("u/y", "r2", "math", "plain", [0, 0, 0])
    return pd.DataFrame(rows)


def test_accuracy_from_results_keeps_the_better_variant_per_task():
    acc = accuracy_from_results(results_rows()).set_index(["model_id", "task"])
    assert acc.loc[("u/x", "math"), "accuracy"] == 0.75 and acc.loc[("u/x", "math"), "variant"] == "system"
    assert acc.loc[("u/x", "code"), "accuracy"] == 1.0 and acc.loc[("u/x", "code"), "variant"] == "plain"
    # overall: each task with its own better variant (math: system 3/4, code: plain 2/2), as the leaderboard counts
    assert acc.loc[("u/x", "overall"), "accuracy"] == pytest.approx(5 / 6)
    assert acc.loc[("u/x", "overall"), "n_queries"] == 6 and acc.loc[("u/x", "overall"), "variant"] == "mixed"
    # u/y without a tree: the revision with the most results (r2)
    assert acc.loc[("u/y", "math"), "accuracy"] == 0.0 and acc.loc[("u/y", "math"), "n_queries"] == 3
    with_tree = accuracy_from_results(results_rows(), tree=pd.DataFrame({"model_id": ["u/x", "u/y"],
                                                                         "revision": ["rx", "r1"]}))
    assert with_tree.set_index(["model_id", "task"]).loc[("u/y", "math"), "accuracy"] == 0.5
    assert "overall" not in set(accuracy_from_results(results_rows(), overall=None)["task"])
    # min_queries: u/x's code scores (2 answers per variant) and u/y's r2 math score (3) drop out at 4.
    strict = accuracy_from_results(results_rows(), min_queries=4).set_index(["model_id", "task"])
    assert set(strict.index) == {("u/x", "math"), ("u/x", "overall")}
    with pytest.raises(ValueError, match="min_queries"):
        accuracy_from_results(results_rows(), min_queries=0)
    with pytest.raises(ValueError, match="or more answers"):
        accuracy_from_results(results_rows(), min_queries=100)


def test_accuracy_from_a_result_store_folder(tmp_path):
    rows = results_rows()
    store = tmp_path / "store"
    store.mkdir()
    rows.iloc[:6].to_parquet(store / "part-0.parquet")
    rows.iloc[6:].to_parquet(store / "part-1.parquet")
    assert accuracy_from_results(store).equals(accuracy_from_results(rows))
    with pytest.raises(FileNotFoundError):
        accuracy_from_results(tmp_path / "none")
    with pytest.raises(ValueError, match="reward"):
        accuracy_from_results(rows.drop(columns=["reward"]))


def test_accuracy_from_a_searchs_store_with_failures(tmp_path):
    from raygems.runtime.store import Failure, ResultStore

    rows = results_rows().assign(generation="", prompt_tokens=0, completion_tokens=0, latency_s=0.0,
                                 backend="replay", backend_settings="{}", pool_hash="h")
    store = ResultStore(tmp_path / "store")          # a search's DIR/store: results/ and failures/
    store.put(rows.iloc[:6])
    store.put(rows.iloc[6:])
    store.put_failure(Failure("u/broken", "main", "load", "corrupt safetensors file"))
    assert accuracy_from_results(tmp_path / "store").equals(accuracy_from_results(results_rows()))


def test_accuracy_from_a_correctness_matrix():
    values = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]], dtype=np.uint8)
    matrix = CorrectnessMatrix(values, ("a", "b", "c"), tuple("qrstu"), ("t1", "t1", "t2", "t2", "t2"))
    acc = accuracy_from_matrix(matrix).pivot(index="model_id", columns="task", values="accuracy")
    assert acc.loc["a", "t1"] == 1.0 and acc.loc["a", "t2"] == pytest.approx(1 / 3)
    assert acc.loc["b", "overall"] == pytest.approx(4 / 5) and acc.loc["c", "t2"] == pytest.approx(1 / 3)


def test_real_routerbench_matrix(shared_dir):
    folder = shared_dir / "data" / "matrices" / "routerbench-0shot-11x3150"
    index = json.loads((folder / "index.json").read_text())
    values = np.load(folder / "matrix_models_x_items.npy")
    models, tasks = index["models"], np.asarray(index["benchmark"])
    downloads = {m: 10 * (i + 1) for i, m in enumerate(models)}          # made up: the matrix has none
    downloads["gpt-3.5-turbo-1106"] = 1_000_000
    tree = pd.DataFrame({"model_id": models, "downloads": [downloads[m] for m in models]})

    report = find_gems(tree, accuracy_from_matrix(folder))
    assert report.tasks == ["arc-challenge", "mbpp", "winogrande", "overall"]
    popular = models.index("gpt-3.5-turbo-1106")
    for task in report.tasks:
        cols = np.ones(len(tasks), bool) if task == "overall" else tasks == task
        acc = values[:, cols].mean(axis=1)
        row = report.summary.set_index("task").loc[task]
        assert row["num_models"] == 11 and row["top_n"] == 1
        assert row["best_popular"] == "gpt-3.5-turbo-1106"
        assert row["best_popular_accuracy"] == pytest.approx(acc[popular])
        assert row["best_model"] == models[int(np.argmax(acc))]
        expected_gems = {m for i, m in enumerate(models) if acc[i] == acc.max() and acc[i] > acc[popular]}
        assert set(report.gems(task)["model_id"]) == expected_gems
        assert row["gain"] == pytest.approx(acc.max() - acc[popular])
    # The paper's Table 1 in numbers: gpt-4 over gpt-3.5 on every task.
    assert (report.table1().loc["Gain"] > 0).all()

    downloads["gpt-4-1106-preview"] = 10_000_000                       # the best model is now the popular one
    tree = pd.DataFrame({"model_id": models, "downloads": [downloads[m] for m in models]})
    assert find_gems(tree, accuracy_from_matrix(folder)).gems().empty
