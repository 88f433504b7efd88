"""The result store: append-only parquet parts, atomic writes, first write wins, pandas-friendly."""
from __future__ import annotations

import pandas as pd
import pytest

from raygems.results import KEY
from raygems.runtime.store import Failure, ResultStore


def rows(model="org/a", queries=("q1", "q2"), reward=1):
    return [{"model_id": model, "revision": "main", "query_id": q, "variant": v, "task": "gsm8k",
             "reward": reward, "generation": "#### 4", "prompt_tokens": 10, "completion_tokens": 3,
             "latency_s": 0.01, "backend": "replay", "backend_settings": "{}", "pool_hash": "abc",
             "scoring_version": "1"}
            for q in queries for v in ("system", "plain")]


def test_put_and_read_back(tmp_path):
    store = ResultStore(tmp_path)
    assert store.results().empty
    assert store.put(rows()) == 4
    assert store.put(rows(model="org/b", reward=0)) == 4
    frame = store.results()
    assert len(frame) == 8 and set(frame["model_id"]) == {"org/a", "org/b"}
    assert set(pd.read_parquet(tmp_path / "results")["query_id"]) == {"q1", "q2"}   # plain pandas works
    known = list(store.rewards({("org/a", "main"): 0}, {"q2": 5, "q9": 9}))
    assert sorted(known) == [(0, 5, 0, 1), (0, 5, 1, 1)]             # arm, query index, variant, reward


def test_writes_are_atomic_files(tmp_path):
    store = ResultStore(tmp_path)
    store.put(rows())
    files = list((tmp_path / "results").iterdir())
    assert len(files) == 1 and files[0].name.startswith("part-") and files[0].suffix == ".parquet"
    # a torn write (a temp file left by a crash) is invisible to readers
    (tmp_path / "results" / ".part-9.parquet.tmp").write_bytes(b"garbage")
    assert len(store.results()) == 4


def test_first_write_wins_and_duplicates_in_one_write_are_refused(tmp_path):
    store = ResultStore(tmp_path)
    store.put(rows(reward=1))
    store.put(rows(reward=0))   # two writers raced: the first recorded answer is kept
    frame = store.results()
    assert len(frame) == 4 and (frame["reward"] == 1).all()
    with pytest.raises(ValueError, match="twice"):
        store.put(rows() + rows())
    with pytest.raises(ValueError, match="lack column"):
        store.put([{"model_id": "x"}])


def test_compact_keeps_everything(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(5):
        store.put(rows(queries=(f"q{i}",)))
    before = store.results().sort_values(list(KEY)).reset_index(drop=True)
    store.compact()
    assert len(list((tmp_path / "results").glob("part-*.parquet"))) == 1
    after = ResultStore(tmp_path).results().sort_values(list(KEY)).reset_index(drop=True)
    pd.testing.assert_frame_equal(before.drop(columns="recorded_at"), after.drop(columns="recorded_at"))


def test_compact_keeps_the_rescored_row_of_a_key_an_older_scorer_wrote_first(tmp_path):
    """An old MBPP verdict (not served) and the same pair scored again by the current scorer: after compacting,
    the paid re-score is still served (keeping only the first row of each key would delete it, and every later
    run would pay for it again)."""
    from raygems.results import read_results
    from raygems.tasks.registry import scoring_version

    current = scoring_version("mbpp")
    assert current != "1"
    store = ResultStore(tmp_path)
    old = [{**row, "task": "mbpp", "query_id": "mbpp/1", "scoring_version": "1"} for row in rows(queries=("q",))]
    store.put(old)
    store.put([{**row, "reward": 0, "scoring_version": current} for row in old])
    assert len(read_results(tmp_path)) == 2
    store.compact()
    assert len(list((tmp_path / "results").glob("part-*.parquet"))) == 1
    served = read_results(tmp_path)
    assert len(served) == 2 and (served["scoring_version"] == current).all() and (served["reward"] == 0).all()
    assert len(pd.read_parquet(tmp_path / "results")) == 4            # the old verdicts stay on disk


def test_compact_reads_parts_written_without_the_optional_columns(tmp_path):
    """A part of an older raygems (no recorded_at, no backend columns) compacts with the others, as missing values."""
    store = ResultStore(tmp_path)
    store.put(rows(queries=("q1",)))
    (tmp_path / "results").mkdir(exist_ok=True)
    pd.DataFrame(rows(queries=("q2",)))[["model_id", "revision", "query_id", "variant", "task", "reward"]] \
        .to_parquet(tmp_path / "results" / "part-00000000000000000001-old.parquet")
    assert len(store.results()) == 4
    store.compact()
    after = ResultStore(tmp_path).results()
    assert len(after) == 4 and set(after["query_id"]) == {"q1", "q2"}
    assert after.loc[after["query_id"] == "q2", "backend"].isna().all()


def test_failures(tmp_path):
    store = ResultStore(tmp_path)
    assert store.failure_of("org/x", "main") is None
    store.put_failure(Failure("org/x", "main", "load", "missing tensor w"))
    assert store.failure_of("org/x", "main") == Failure("org/x", "main", "load", "missing tensor w")
    assert list(store.failures()["reason"]) == ["missing tensor w"]


def test_rows_scored_by_another_scorer_version_are_not_served(tmp_path):
    """MBPP rows written before `scoring_version` existed (an old store: maybe never run, maybe passed by the
    0.1 sandbox that wrong programs could game) are kept on disk but not served; other tasks' old rows are."""
    from raygems.tasks.registry import scoring_version

    old = pd.DataFrame([{**row, "task": task, "query_id": f"{task}/{row['query_id']}"}
                        for task in ("gsm8k", "mbpp") for row in rows()])
    (tmp_path / "results").mkdir()
    old.astype({"reward": "int8"}).to_parquet(tmp_path / "results" / "part-00000000000000000001-old.parquet")
    store = ResultStore(tmp_path)
    assert set(store.results()["task"]) == {"gsm8k"}
    index = {"mbpp/q1": 0, "gsm8k/q1": 1}
    assert [row[1] for row in store.rewards({("org/a", "main"): 0}, index)] == [1, 1]   # gsm8k's only
    assert scoring_version("mbpp") != "1" and scoring_version("gsm8k") == "1"
    store.put([{**row, "task": "mbpp", "query_id": f"mbpp/{row['query_id']}", "scoring_version": scoring_version("mbpp")}
               for row in rows()])
    fresh = ResultStore(tmp_path)
    assert len(fresh.results()) == 8 and len(list(fresh.rewards({("org/a", "main"): 0}, index))) == 4
    assert len(pd.read_parquet(tmp_path / "results")) == 12      # nothing deleted

