"""The toy tasks: real task formats, deterministic embedded items, training items disjoint from them."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from raygems.demo.toy_tasks import NUM_EVAL_ITEMS, generate_items, ideal_completion
from raygems.tasks import get_task, list_tasks


@pytest.mark.parametrize("name", ["toy_arith", "toy_choice"])
def test_registered_and_loads_a_few_hundred_deterministic_items(name):
    assert name in list_tasks()
    task = get_task(name)
    assert task.name == name
    assert 1 <= task.max_new_tokens <= 32 and task.stop
    items = task.load()
    assert len(items) == NUM_EVAL_ITEMS
    assert items == get_task(name).load()  # same items every time, no files
    ids = [q["query_id"] for q in items]
    assert len(set(ids)) == len(ids) and ids[7] == f"{name}/0007"
    for query in items[:20]:
        assert query["task"] == name
        assert [m["role"] for m in query["messages"]] == ["user"]
        assert query["max_new_tokens"] == task.max_new_tokens and tuple(query["stop"]) == task.stop


def test_arith_items_are_gsm8k_style_and_scored_by_the_number_after_hashes():
    task = get_task("toy_arith")
    query = task.load()[3]
    a, b = map(int, re.findall(r"\d+", query["messages"][0]["content"])[:2])
    assert query["reference"] == str(a + b)
    assert query["meta"]["solution"].endswith(f"#### {a + b}")
    assert task.score(query, ideal_completion(query)) == 1
    assert task.score(query, f"#### {a + b}") == 1
    assert task.score(query, f"{a}+{b}={a + b + 1}\n#### {a + b + 1}") == 0
    assert task.score(query, "I do not know") == 0
    assert task.score(query, "") == 0


def test_choice_items_are_arc_style_with_balanced_letters():
    task = get_task("toy_choice")
    items = task.load()
    query = items[0]
    text = query["messages"][0]["content"]
    assert re.search(r"\nA\. 20\nB\. 40\nC\. 60\nD\. 80\n", text)
    a, b = map(int, re.findall(r"closest to (\d+) - (\d+)", text)[0])
    closest = min(range(4), key=lambda k: abs(a - b - (20, 40, 60, 80)[k]))
    assert query["reference"] == "ABCD"[closest]
    assert query["meta"]["labels"] == ["A", "B", "C", "D"]
    wrong = next(label for label in "ABCD" if label != query["reference"])
    assert task.score(query, query["reference"]) == 1
    assert task.score(query, f"Answer: {query['reference']}") == 1
    assert task.score(query, wrong) == 0
    assert task.score(query, "no idea") == 0
    counts = Counter(q["reference"] for q in items)
    assert set(counts) == set("ABCD") and max(counts.values()) < 0.35 * len(items)  # no dominant letter


@pytest.mark.parametrize("name", ["toy_arith", "toy_choice"])
def test_training_items_are_disjoint_from_evaluation_items_and_seeded(name):
    evaluation = get_task(name).load()
    train = generate_items(name, 2000, seed=0)
    assert len(train) == 2000
    assert generate_items(name, 50, seed=0) == train[:50]
    assert generate_items(name, 50, seed=1) != train[:50]

    def key(q):  # the numbers asked about, whatever the wording
        return tuple(re.findall(r"\d+", q["messages"][0]["content"])[:2])

    assert not {key(q) for q in train} & {key(q) for q in evaluation}
    assert not {q["query_id"] for q in train} & {q["query_id"] for q in evaluation}
    assert all(q["task"] == name for q in train)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown toy task 'toy_nope'"):
        generate_items("toy_nope", 3)
    with pytest.raises(ValueError, match="n must be"):
        generate_items("toy_arith", -1)
    with pytest.raises(ValueError, match="num_items"):
        get_task("toy_arith", num_items=0)
    assert len(get_task("toy_choice", num_items=40).load()) == 40
