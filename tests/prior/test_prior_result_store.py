from __future__ import annotations

import pandas as pd
import pytest

from raygems.prior import RAYGEMS_METRIC, candidates_from_tree_table, records_from_result_store
from raygems.tasks.registry import scoring_version


def _store_rows() -> pd.DataFrame:
    rows = []
    # model a: system variant 3/4, plain 1/4 -> 0.75; model b: plain 2/2 but only two queries
    for q, (s, p) in enumerate([(1, 0), (1, 0), (1, 1), (0, 0)]):
        rows.append(("org/a", "r1", f"gsm8k:{q}", "gsm8k", "system", s))
        rows.append(("org/a", "r1", f"gsm8k:{q}", "gsm8k", "plain", p))
    rows += [("org/b", "r1", "gsm8k:0", "gsm8k", "plain", 1), ("org/b", "r1", "gsm8k:1", "gsm8k", "plain", 1)]
    # model a at an older revision, fewer queries: ignored in favour of r1
    rows += [("org/a", "r0", "gsm8k:0", "gsm8k", "plain", 0)]
    # model c on another task
    rows += [("org/c", "r1", "mbpp:0", "mbpp", "system", 0), ("org/c", "r1", "mbpp:1", "mbpp", "system", 1)]
    frame = pd.DataFrame(rows, columns=["model_id", "revision", "query_id", "task", "variant", "reward"])
    frame["scoring_version"] = frame["task"].map(scoring_version)     # scored by the tasks' current scorers
    frame["seconds"] = 0.1
    return frame


def _tree(tmp_path) -> pd.DataFrame:
    card = tmp_path / "org" / "a"
    card.mkdir(parents=True)
    (card / "README.md").write_text("---\nbase_model: org/root\n---\n# A\nA maths fine-tune.\n")
    return pd.DataFrame([
        {"model_id": "org/a", "kind": "finetune", "base_model": "org/root", "likes": 4,
         "created_at": "2025-01-02T00:00:00Z", "path": str(card), "depth": 1},
        {"model_id": "org/b", "kind": "merge", "base_model": "org/root", "likes": 0,
         "created_at": "2025-02-02T00:00:00Z", "path": None, "depth": 1},
    ])


def test_scores_are_the_better_variant_and_metadata_comes_from_the_tree(tmp_path):
    store = tmp_path / "store"     # laid out like raygems.runtime.store: results/ and failures/ parts
    (store / "results").mkdir(parents=True)
    (store / "failures").mkdir()
    rows = _store_rows()
    rows.iloc[:5].to_parquet(store / "results" / "part-0.parquet")
    rows.iloc[5:].to_parquet(store / "results" / "part-1.parquet")
    rows.iloc[:2].assign(reward=0).to_parquet(store / "results" / "part-2.parquet")   # re-written keys: first wins
    pd.DataFrame({"model_id": ["org/z"], "revision": ["r"], "stage": ["load"], "reason": ["oom"]}).to_parquet(
        store / "failures" / "part-0.parquet")
    tree = _tree(tmp_path)
    tree.to_parquet(tmp_path / "tree.parquet")
    records = records_from_result_store(store, tmp_path / "tree.parquet").set_index(["model_id", "task"])
    assert records.loc[("org/a", "gsm8k"), "score"] == pytest.approx(0.75)
    assert records.loc[("org/a", "gsm8k"), "best_variant"] == "system"
    assert records.loc[("org/a", "gsm8k"), "revision"] == "r1"
    assert records.loc[("org/a", "gsm8k"), "n_queries"] == 4
    assert records.loc[("org/b", "gsm8k"), "score"] == pytest.approx(1.0)
    assert records.loc[("org/c", "mbpp"), "score"] == pytest.approx(0.5)
    assert (records["metric"] == RAYGEMS_METRIC).all()
    assert records.loc[("org/a", "gsm8k"), "type"] == "finetuned"
    assert records.loc[("org/b", "gsm8k"), "type"] == "merge"
    assert records.loc[("org/a", "gsm8k"), "date"] == "2025-01-02"
    assert records.loc[("org/a", "gsm8k"), "description"] == "# A A maths fine-tune."
    assert pd.isna(records.loc[("org/c", "mbpp"), "type"])                       # not in the tree


def test_min_queries_and_dataframe_input():
    records = records_from_result_store(_store_rows(), min_queries=3)
    assert set(records["model_id"]) == {"org/a"}
    failed = pd.concat([_store_rows(), _store_rows().iloc[[-1]].assign(query_id="mbpp:2", reward=None)])
    assert records_from_result_store(failed).set_index(["model_id", "task"]).loc[("org/c", "mbpp"), "score"] == 0.5
    with pytest.raises(ValueError, match="min_queries"):
        records_from_result_store(_store_rows(), min_queries=0)


def test_bad_stores_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        records_from_result_store(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="missing column"):
        records_from_result_store(_store_rows().drop(columns=["variant"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .parquet"):
        records_from_result_store(tmp_path / "empty")


def test_candidates_from_tree_table(tmp_path):
    candidates = candidates_from_tree_table(_tree(tmp_path))
    assert candidates["model_id"].tolist() == ["org/a", "org/b"]
    assert candidates["type"].tolist() == ["finetune", "merge"]      # normalised later by the prior
    assert candidates["date"].tolist() == ["2025-01-02T00:00:00Z", "2025-02-02T00:00:00Z"]
