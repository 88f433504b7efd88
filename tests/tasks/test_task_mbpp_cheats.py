"""MBPP answers that try to pass without solving the problem score 0, each beside the honest answer to the
same problem scoring 1; correct answers written in unusual ways still score 1. The corpus and what
defeats each cheat: tests/tasks/mbpp_cheats.py (23 of the 32 scored 1 with the scorer that ran the asserts
inside the program's own interpreter: FOOLED_THE_OLD_SCORER)."""
from __future__ import annotations

import time

import pytest

from mbpp_cheats import CHEATS, DEFENCE, HONEST_VARIANTS, ISSUE_CHEATS, PROBLEMS, program
from raygems.tasks import get_task
from raygems.tasks.mbpp import MBPP
from sandbox_checks import boot_ticks, leftover_cgroups, orphaned_zombies, processes_mentioning


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def task():
    return MBPP(allow_code_execution=True)


@pytest.fixture(scope="module")
def queries(task):
    return {key: task.to_query(problem.item(9000 + i)) for i, (key, problem) in enumerate(PROBLEMS.items())}


def test_the_corpus():
    assert len(CHEATS) >= 25
    assert sorted(name for names in DEFENCE.values() for name in names) == sorted(CHEATS)
    assert len({problem for problem, _ in CHEATS.values()}) == len(PROBLEMS) == 7


@pytest.mark.parametrize("name", list(CHEATS))
def test_cheat_scores_zero_and_the_honest_answer_one(task, queries, name, sandbox_tmp):
    problem_key, template = CHEATS[name]
    problem, query = PROBLEMS[problem_key], queries[problem_key]
    assert task.score(query, fenced(problem.solution)) == 1
    started, started_ticks = time.monotonic(), boot_ticks()
    result = task.run(query, fenced(program(template, problem.name)))
    assert not result.passed and result.reason != "ok", result
    assert task.score(query, fenced(program(template, problem.name))) == 0
    assert time.monotonic() - started < 10
    assert processes_mentioning(str(sandbox_tmp)) == [] and orphaned_zombies(started_ticks) == []
    assert leftover_cgroups() == []


@pytest.mark.parametrize("name", list(HONEST_VARIANTS))
def test_correct_answers_written_oddly_score_one(task, queries, name):
    problem_key, code = HONEST_VARIANTS[name]
    result = task.run(queries[problem_key], fenced(code))
    assert result.passed and result.reason == "ok", result


def test_python_equality_between_builtin_types_is_what_the_test_says(task, queries):
    """1 == 1.0 == True on the host as in the original test; a list is not the tuple expected."""
    query = queries["similar_elements"]
    as_list = "def similar_elements(a, b):\n    return sorted(set(a) & set(b))"
    assert task.run(query, fenced(as_list)).reason == "assert-failed"


def test_a_lying_value_is_read_as_its_base_type(task, queries):
    """A str subclass whose __str__, __repr__, __iter__ and __eq__ say "heo" arrives as the "wrong" it holds."""
    name = "str subclass that lies in __str__, __repr__, __iter__ and __eq__"
    result = task.run(queries["remove_occ"], fenced(program(CHEATS[name][1], "remove_Occ")))
    assert result.reason == "assert-failed" and result.detail == 'assert remove_Occ("hello","l") == "heo"'


@pytest.fixture(scope="module")
def mbpp_11(benchmarks_dir):
    return next(q for q in get_task("mbpp", data_dir=benchmarks_dir).load() if q["query_id"] == "mbpp/11")


@pytest.mark.parametrize("name", ISSUE_CHEATS)
def test_the_issues_cheats_on_the_real_mbpp_11(task, mbpp_11, name):
    assert task.score(mbpp_11, fenced(mbpp_11["meta"]["solution"])) == 1
    assert task.score(mbpp_11, fenced(program(CHEATS[name][1], "remove_Occ"))) == 0
