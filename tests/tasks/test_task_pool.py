"""Query pools: seeded stratified sampling, stable ids, content hash, parquet round trip."""
from __future__ import annotations

import importlib.util

import pyarrow.parquet as pq
import pytest

from raygems.tasks import get_task
from raygems.tasks.pool import QueryPool, build_query_pool, content_hash

# The paper's pool (routerbench, 500 per task, seed 0) drawn from shared/data/benchmarks. If a change
# to prompts, references or sampling alters it, results recorded on the old pool are no longer
# comparable: update this only on purpose (and say so in the changelog).
ROUTERBENCH_500_SEED0_HASH = "c67cbd6400e4acdce5492119e49a67fdd0ba42b951b69a2d5c39c7deba2b93f9"


@pytest.fixture(scope="module")
def paper_pool(benchmarks_dir):
    return build_query_pool("routerbench", per_task=500, seed=0, data_dir=benchmarks_dir)


def test_paper_pool_is_500_from_each_task(paper_pool):
    assert len(paper_pool) == 2500
    assert paper_pool.counts() == {"arc_challenge": 500, "winogrande": 500, "mmlu": 500, "mbpp": 500, "gsm8k": 500}
    assert paper_pool.per_task == 500 and paper_pool.seed == 0 and paper_pool.tasks == ("routerbench",)
    assert set(paper_pool.sources) == {"arc_challenge", "winogrande", "mmlu", "mbpp", "gsm8k"}


def test_paper_pool_hash_is_stable(paper_pool):
    assert paper_pool.content_hash == ROUTERBENCH_500_SEED0_HASH


def test_same_seed_same_pool_other_seed_other_pool(benchmarks_dir, paper_pool):
    again = build_query_pool(["arc_challenge", "winogrande", "mmlu", "mbpp", "gsm8k"], seed=0, data_dir=benchmarks_dir)
    assert again.content_hash == paper_pool.content_hash  # the composite and its members listed agree
    other = build_query_pool("routerbench", seed=1, data_dir=benchmarks_dir)
    assert other.content_hash != paper_pool.content_hash
    assert set(other.query_ids) != set(paper_pool.query_ids)


def test_task_order_does_not_change_the_draw(benchmarks_dir):
    a = build_query_pool(["gsm8k", "winogrande"], per_task=50, seed=3, data_dir=benchmarks_dir)
    b = build_query_pool(["winogrande", "gsm8k"], per_task=50, seed=3, data_dir=benchmarks_dir)
    assert set(a.query_ids) == set(b.query_ids) and a.content_hash == b.content_hash


def test_hash_follows_content(paper_pool):
    frame = paper_pool.queries.copy()
    assert content_hash(frame.iloc[::-1]) == paper_pool.content_hash  # row order does not matter
    frame.loc[0, "reference"] = "Z"
    assert content_hash(frame) != paper_pool.content_hash


def test_pool_rows_are_the_task_queries(paper_pool, benchmarks_dir):
    gsm8k = {q["query_id"]: q for q in get_task("gsm8k", data_dir=benchmarks_dir).load()}
    for query_id in paper_pool.query_ids:
        if paper_pool.task_of(query_id) == "gsm8k":
            assert paper_pool.query(query_id) == gsm8k[query_id]
    with pytest.raises(KeyError, match="not in this pool"):
        paper_pool.task_of("gsm8k/9999")


def test_parquet_round_trip(paper_pool, tmp_path, benchmarks_dir):
    path = paper_pool.to_parquet(tmp_path / "pools" / "routerbench.parquet")
    loaded = QueryPool.from_parquet(path)
    assert loaded.content_hash == paper_pool.content_hash
    assert loaded.query_ids == paper_pool.query_ids
    assert loaded.records() == paper_pool.records()
    assert (loaded.per_task, loaded.seed, loaded.tasks) == (500, 0, ("routerbench",))
    some = loaded.query(loaded.query_ids[0])
    assert get_task("routerbench", data_dir=benchmarks_dir).score(some, f"Answer: {some['reference']}") in (0, 1)


def test_edited_parquet_is_refused(paper_pool, tmp_path):
    path = paper_pool.to_parquet(tmp_path / "pool.parquet")
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[3, "reference"] = "Z"
    import pyarrow as pa

    edited = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(edited, path)
    with pytest.raises(ValueError, match="modified"):
        QueryPool.from_parquet(path)
    assert len(QueryPool.from_parquet(path, verify=False)) == 2500


def test_not_a_pool_file(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"a": [1]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not a raygems query pool"):
        QueryPool.from_parquet(tmp_path / "x.parquet")


def test_small_tasks_are_taken_whole_and_all_means_all(benchmarks_dir):
    pool = build_query_pool("mbpp", per_task=10_000, data_dir=benchmarks_dir)
    assert len(pool) == 500
    assert len(build_query_pool("winogrande", per_task=None, data_dir=benchmarks_dir)) == 1267


def test_stratify_by_subject_spreads_mmlu(benchmarks_dir):
    pool = build_query_pool("mmlu", per_task=570, seed=0, data_dir=benchmarks_dir, stratify_by="subject")
    subjects = [r["meta"]["subject"] for r in pool.records()]
    assert len(subjects) == 570 and len(set(subjects)) == 57
    # Proportional: professional_law is the largest subject (1,534 of 14,042 questions).
    assert subjects.count("professional_law") == round(570 * 1534 / 14042)
    composite = build_query_pool("routerbench", per_task=100, data_dir=benchmarks_dir, stratify_by="subject")
    assert composite.counts()["gsm8k"] == 100  # tasks without subjects are drawn without strata


@pytest.mark.parametrize("per_task", [0, -5, 2.5])
def test_bad_per_task(per_task, benchmarks_dir):
    with pytest.raises(ValueError, match="per_task"):
        build_query_pool("gsm8k", per_task=per_task, data_dir=benchmarks_dir)


def test_a_task_listed_twice_is_refused(benchmarks_dir):
    with pytest.raises(ValueError, match="more than once"):
        build_query_pool(["routerbench", "gsm8k"], data_dir=benchmarks_dir)


@pytest.mark.skipif(importlib.util.find_spec("raygems.demo.toy_tasks") is None, reason="no toy tasks")
def test_pool_of_toy_tasks_keeps_their_extra_fields(tmp_path):
    pool = build_query_pool(["toy_arith", "toy_choice"], per_task=20, seed=0)
    loaded = QueryPool.from_parquet(pool.to_parquet(tmp_path / "toy.parquet"))
    records = {r["query_id"]: r for r in get_task("toy_choice").load()}
    for query_id in loaded.query_ids:
        if loaded.task_of(query_id) == "toy_choice":
            query = loaded.query(query_id)
            assert query["meta"] == records[query_id]["meta"]          # options, labels, value survive parquet
            assert get_task("toy_choice").score(query, query["reference"]) == 1


def test_unknown_stratify_field_is_refused_with_the_usable_fields(benchmarks_dir):
    from raygems.errors import UsageError

    with pytest.raises(UsageError, match=r"cannot stratify by 'bogus'.*mmlu: subject"):
        build_query_pool("routerbench", per_task=5, data_dir=benchmarks_dir, stratify_by="bogus")
    with pytest.raises(UsageError, match=r"cannot stratify by 'bogus'.*gsm8k: none"):
        build_query_pool("gsm8k", per_task=5, data_dir=benchmarks_dir, stratify_by="bogus")
    with pytest.raises(UsageError, match="stratify_by must name"):
        build_query_pool("gsm8k", per_task=5, data_dir=benchmarks_dir, stratify_by=" ")


def test_stratification_fields():
    from raygems.tasks.pool import stratification_fields

    queries = [{"meta": {"subject": "s" + str(i % 3), "solution": f"unique {i}", "labels": ["A"]}} for i in range(12)]
    assert stratification_fields(queries) == ["subject"]
    assert stratification_fields([]) == []
