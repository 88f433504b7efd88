"""One definition of a model's accuracy and one reader of result rows: the leaderboard's reward book, the gem
report and the prior's records give the same numbers from the same real parquet store, and none of them serves
rows of an older scorer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.analysis.gems import accuracy_from_results
from raygems.prior import records_from_result_store
from raygems.results import KEY, PROMPT_VARIANTS, better_variant, read_results
from raygems.runtime.rewards import RewardBook
from raygems.runtime.store import ResultStore
from raygems.tasks.registry import scoring_version

TASKS = ("toy_arith", "toy_choice")


def test_the_better_variant_has_the_higher_accuracy_then_more_answers_then_the_first_name():
    #                     (plain, system) correct / answered per task
    correct = np.array([[3, 4], [2, 2], [2, 4], [1, 0], [0, 5]])
    answered = np.array([[4, 4], [4, 4], [4, 8], [2, 0], [0, 9]])
    assert better_variant(correct, answered).tolist() == [1, 0, 1, 0, 1]
    #                      system wins | tie: plain | 0.5 each, more answers | no answers never wins (both ways)


def _store(tmp_path, seed: int = 0) -> tuple[ResultStore, pd.DataFrame]:
    """Three models, two tasks, both prompt variants of every query, rewards drawn at random, in several parts."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, skill in (("org/a", 0.8), ("org/b", 0.5), ("org/c", 0.3)):
        for task in TASKS:
            for q in range(12):
                for variant, bonus in zip(PROMPT_VARIANTS, rng.normal(0, 0.2, 2)):
                    rows.append({"model_id": model, "revision": "main", "query_id": f"{task}/{q:04d}", "task": task,
                                 "variant": variant, "reward": int(rng.random() < skill + bonus), "generation": "",
                                 "prompt_tokens": 1, "completion_tokens": 1, "latency_s": 0.0, "backend": "replay",
                                 "backend_settings": "{}", "pool_hash": "h"})
    frame = pd.DataFrame(rows)
    store = ResultStore(tmp_path / "store")
    for part in np.array_split(np.arange(len(frame)), 5):
        store.put(frame.iloc[part])
    return store, frame


def test_the_leaderboard_the_gem_report_and_the_prior_agree(tmp_path):
    store, frame = _store(tmp_path)
    query_ids = sorted(frame["query_id"].unique())
    book = RewardBook(query_ids, [q.split("/")[0] for q in query_ids], num_arms=3)
    models = ["org/a", "org/b", "org/c"]
    for arm, j, variant, reward in store.rewards({(m, "main"): k for k, m in enumerate(models)}, book.query_index):
        book.record(arm, j, variant, reward)
    gems = accuracy_from_results(tmp_path / "store").set_index(["model_id", "task"])
    prior = records_from_result_store(tmp_path / "store").set_index(["model_id", "task"])
    for arm, model in enumerate(models):
        n, accuracy = book.accuracy(arm)
        assert n == len(query_ids)
        assert gems.loc[(model, "overall"), "accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert book.count(arm, range(len(query_ids))) == round(accuracy * n)    # what the algorithm is told
        by_hand = 0
        for task in TASKS:
            rows = frame[(frame["model_id"] == model) & (frame["task"] == task)]
            best = rows.groupby("variant")["reward"].sum().max()
            by_hand += best
            assert gems.loc[(model, task), "accuracy"] == prior.loc[(model, task), "score"] == best / 12
        assert by_hand == round(accuracy * n)


def test_no_reader_serves_rows_of_an_older_scorer_or_a_second_write(tmp_path):
    store, frame = _store(tmp_path)
    assert scoring_version("mbpp") != "1"
    stale = frame[frame["model_id"] == "org/a"].assign(task="mbpp", query_id=lambda f: "mbpp/" + f["query_id"],
                                                       reward=1, scoring_version="1")
    store.put(stale)                                         # MBPP verdicts of a scorer that could be fooled
    store.put(frame.iloc[:4].assign(reward=1 - frame["reward"].iloc[:4]))   # a racing writer: first write wins
    for rows in (store.results(), read_results(tmp_path / "store"), read_results(tmp_path, columns=()),
                 read_results(pd.concat([frame.assign(scoring_version="1"), stale]))):
        assert "mbpp" not in set(rows["task"])
        assert len(rows) == len(frame) and not rows.duplicated(list(KEY)).any()
        first = rows.set_index(list(KEY)).loc[[tuple(k) for k in frame.iloc[:4][list(KEY)].to_numpy()], "reward"]
        assert first.tolist() == frame["reward"].iloc[:4].tolist()
    assert "mbpp" not in set(accuracy_from_results(tmp_path / "store")["task"])
    assert "mbpp" not in set(records_from_result_store(tmp_path / "store")["task"])
    stale_queries = {query: j for j, query in enumerate(stale["query_id"].unique())}
    assert not list(store.rewards({("org/a", "main"): 0}, stale_queries))        # the driver's reader too


def test_bad_rows_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_results(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['reward'\]"):
        read_results(pd.DataFrame({"model_id": ["a"], "revision": ["r"], "query_id": ["q"], "variant": ["plain"],
                                   "task": ["t"]}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .parquet"):
        read_results(tmp_path / "empty")


def test_a_run_directory_reads_only_its_store(tmp_path):
    """An interrupted search (search.json, pool.parquet, tree.parquet, no store/ yet) has no results: its other
    parquet files are not result parts (once, pool.parquet was read as one and the advice was to move it out)."""
    from raygems.results import no_results_yet, result_files

    run = tmp_path / "run"
    run.mkdir()
    (run / "search.json").write_text("{}")
    pd.DataFrame({"query_id": ["q"], "task": ["t"]}).to_parquet(run / "pool.parquet")
    pd.DataFrame({"model_id": ["a"]}).to_parquet(run / "tree.parquet")
    assert result_files(run) == []
    assert read_results(run).empty and list(read_results(run, columns=()).columns)[:2] == ["model_id", "revision"]
    assert "recorded no results yet" in no_results_yet(run)
    (run / "store" / "failures").mkdir(parents=True)                # failures only: still no results
    assert result_files(run) == [] and result_files(run / "store") == []
    with pytest.raises(ValueError, match=r"notes\.txt is not a \.parquet file"):
        (tmp_path / "notes.txt").write_text("x")
        read_results(tmp_path / "notes.txt")


def test_read_results_takes_one_column_by_name_and_refuses_unknown_ones(tmp_path):
    """A name is one column (not one per letter), and a misspelt one is named, not read as an empty column."""
    from raygems.results import read_results
    from raygems.runtime.store import ResultStore

    store = ResultStore(tmp_path)
    store.put([{"model_id": "m", "revision": "main", "query_id": "q", "variant": v, "task": "gsm8k", "reward": 1,
                "generation": "4", "prompt_tokens": 3, "completion_tokens": 1, "latency_s": 0.5, "backend": "x",
                "backend_settings": "{}", "pool_hash": "h", "scoring_version": "1"} for v in ("plain", "system")])
    rows = read_results(tmp_path, columns="latency_s")
    assert "latency_s" in rows.columns and "l" not in rows.columns and (rows["latency_s"] == 0.5).all()
    for columns in ((c for c in ["latency_s"]), pd.Index(["latency_s"])):    # a generator, an index
        assert "latency_s" in read_results(tmp_path, columns=columns).columns
    with pytest.raises(ValueError, match=r"unknown result column\(s\) \['latency'\]"):
        read_results(tmp_path, columns=["latency"])


def test_a_folder_of_other_parquet_files_is_named_as_not_results(tmp_path):
    """A sweep's output folder (results.parquet, per_rep.parquet) given where results are wanted: bad input (one
    line naming the folder and its files), not a store to repair."""
    from raygems.errors import UsageError

    pd.DataFrame({"method": ["ours"], "mean_rank": [1.5]}).to_parquet(tmp_path / "results.parquet")
    pd.DataFrame({"rep": [0]}).to_parquet(tmp_path / "per_rep.parquet")
    with pytest.raises(UsageError, match=r"holds no result rows: its parquet files \(per_rep.parquet, results.parquet\)"):
        read_results(tmp_path)


def test_many_parts_read_in_order_and_the_first_bad_one_is_named(tmp_path):
    """read_parts reads many parts with a few threads: rows come back in the parts' order, and of two parts that
    are not results the first in that order is named, whichever thread met it first."""
    from raygems.errors import SetupError
    from raygems.results import PART_READERS, read_parts

    store = ResultStore(tmp_path)
    row = {"model_id": "org/a", "revision": "main", "task": "toy_arith", "variant": PROMPT_VARIANTS[0], "reward": 1,
           "generation": "", "prompt_tokens": 1, "completion_tokens": 1, "latency_s": 0.0, "backend": "replay",
           "backend_settings": "{}", "pool_hash": "h", "scoring_version": "1"}
    paths = [store.put_rows([{**row, "query_id": f"toy_arith/{k:04d}"}]) for k in range(4 * PART_READERS)]
    frame = read_parts(paths)
    assert frame["query_id"].tolist() == [f"toy_arith/{k:04d}" for k in range(4 * PART_READERS)]
    bad_first, bad_later = tmp_path / "bad-1.parquet", tmp_path / "bad-2.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(bad_first)
    bad_later.write_bytes(b"not parquet")
    with pytest.raises(SetupError, match=f"^{bad_first} is not a result part"):
        read_parts(paths[:3] + [bad_first] + paths[3:] + [bad_later])
