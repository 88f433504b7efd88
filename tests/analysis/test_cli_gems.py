"""`raygems gems` end to end on small parquet files: a result store, a matrix, local model cards."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.cli import main
from raygems.replay import CorrectnessMatrix
from raygems.tasks.registry import scoring_version

TREE = pd.DataFrame({"model_id": ["org/base", "org/inst", "u/a", "u/b"], "kind": ["base", "finetune", "finetune",
                                                                                   "adapter"],
                     "base_model": [None, "org/base", "org/inst", "org/base"], "revision": ["r0", "r1", "r2", "r3"],
                     "downloads": [1000, 5000, 10, 3], "likes": [1, 2, 0, 0], "created_at": [None] * 4,
                     "pipeline_tag": [None] * 4, "library_name": [None] * 4, "depth": [0, 1, 2, 1],
                     "is_base": [True, True, False, False], "path": [None] * 4})
# per model, per task: correct answers out of 10 queries
SCORES = {"org/base": {"gsm8k": 5, "mbpp": 4}, "org/inst": {"gsm8k": 6, "mbpp": 7},
          "u/a": {"gsm8k": 9, "mbpp": 2}, "u/b": {"gsm8k": 4, "mbpp": 8}}


@pytest.fixture
def files(tmp_path):
    tree_path = tmp_path / "acme.parquet"
    TREE.to_parquet(tree_path)
    rows = []
    for model, per_task in SCORES.items():
        for task, correct in per_task.items():
            for q in range(10):
                for variant, bonus in (("system", 0), ("plain", -1)):      # the system prompt is better
                    rows.append({"model_id": model, "revision": TREE.set_index("model_id").at[model, "revision"],
                                 "query_id": f"{task}-{q}", "task": task, "variant": variant,
                                 "reward": float(q < correct + bonus)})
    store = tmp_path / "store"
    store.mkdir()
    rows = pd.DataFrame(rows)
    rows["scoring_version"] = rows["task"].map(scoring_version)     # scored by the tasks' current scorers
    rows.to_parquet(store / "results-0.parquet")
    cards = tmp_path / "cards"
    (cards / "u" / "a").mkdir(parents=True)
    (cards / "u" / "a" / "README.md").write_text("---\nbase_model: org/inst\n---\n- GSM8K: 90.0\n")
    (cards / "u" / "b").mkdir(parents=True)
    (cards / "u" / "b" / "README.md").write_text("---\nbase_model: org/base\n---\n# no evaluations\n")
    return tree_path, store, cards


def test_gems_from_a_result_store_with_cards(files, tmp_path, capsys):
    tree_path, store, cards = files
    out = tmp_path / "report"
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--cards-from", str(cards),
                 "--out", str(out), "--plots"]) == 0
    printed = capsys.readouterr().out
    assert "| acme | Base | 60.0 | 70.0 | 65.0 |" in printed                   # org/inst is the popular model
    assert "| acme | ✓ | ✗ | – |" in printed                                   # u/a documented, u/b not
    summary = pd.read_parquet(out / "summary.parquet").set_index("task")
    assert summary.loc["gsm8k", "best_gem"] == "u/a" and summary.loc["mbpp", "best_gem"] == "u/b"
    assert summary.loc["overall", "best_gem"] != summary.loc["overall", "best_gem"]   # no overall gem: NaN
    assert pd.read_csv(out / "table1.csv", index_col=0).loc["Gain", "gsm8k"] == pytest.approx(30.0)
    docs = pd.read_parquet(out / "documentation.parquet")
    assert docs[["model_id", "symbol"]].values.tolist() == [["u/a", "✓"], ["u/b", "✗"]]
    assert (out / "report.md").read_text().startswith("Table 1")
    for task in ("gsm8k", "mbpp", "overall"):
        assert (out / f"atlas_{task}.png").stat().st_size > 5000
        assert (out / f"cumulative_{task}.png").exists()


def test_gems_from_a_matrix(files, tmp_path, capsys):
    tree_path, _, _ = files
    values = np.array([[1] * 5 + [0] * 5, [1] * 6 + [0] * 4, [1] * 9 + [0], [1] * 4 + [0] * 6], dtype=np.uint8)
    matrix = CorrectnessMatrix(values, tuple(TREE["model_id"]), tuple(f"q{i}" for i in range(10)), ("gsm8k",) * 10)
    path = matrix.to_parquet(tmp_path / "matrix.parquet")
    assert main(["gems", "--tree", str(tree_path), "--matrix", str(path), "--name", "M"]) == 0
    printed = capsys.readouterr().out
    assert "| M | Base | 60.0 |" in printed and "|  | Gem | 90.0 |" in printed
    assert "| gsm8k | u/a | 90.0 | 10 |" in printed
    assert "overall" not in printed                                             # one task: no aggregate


def test_usage_errors(files, tmp_path, capsys):
    tree_path, store, _ = files
    assert main(["gems", "--tree", str(tmp_path / "none.parquet"), "--results", str(store)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--plots"]) == 2
    assert "--plots needs --out" in capsys.readouterr().err
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--cards-from", "nowhere"]) == 2
    with pytest.raises(SystemExit):
        main(["gems", "--tree", str(tree_path)])                               # --results or --matrix
    other = TREE.assign(model_id=TREE["model_id"] + "-renamed")
    other.to_parquet(tmp_path / "other.parquet")
    assert main(["gems", "--tree", str(tmp_path / "other.parquet"), "--results", str(store)]) == 2
    assert "not in the tree" in capsys.readouterr().err
