"""MBPP scoring through the sandbox: opt-in (refused loudly otherwise), never raises on model output,
adversarial completions score 0 quickly. Cheats on the scorer itself: test_task_mbpp_cheats.py."""
from __future__ import annotations

import ast
import time

import pytest

from raygems.tasks import get_task, sandbox
from raygems.tasks.asserts import UnsupportedTest
from raygems.tasks.mbpp import mbpp_tests
from sandbox_checks import boot_ticks, leftover_cgroups, orphaned_zombies, processes_mentioning


@pytest.fixture(scope="module")
def queries(benchmarks_dir):
    return {q["query_id"]: q for q in get_task("mbpp", data_dir=benchmarks_dir).load()}


@pytest.fixture
def task(benchmarks_dir):
    return get_task("mbpp", data_dir=benchmarks_dir, allow_code_execution=True)


def test_reference_solution_passes_wrong_one_fails(task, queries):
    query = queries["mbpp/11"]
    solution = query["meta"]["solution"]
    assert task.score(query, f"```python\n{solution}\n```") == 1
    assert task.score(query, solution) == 1
    assert task.score(query, "```python\ndef remove_Occ(s, ch):\n    return s\n```") == 0
    assert task.score(query, "I am not sure how to do this.") == 0
    assert task.score(query, "") == 0


def test_run_reports_why(task, queries):
    query = queries["mbpp/11"]
    result = task.run(query, "```python\ndef remove_Occ(s, ch):\n    return s\n```")
    assert result.reason == "assert-failed" and result.detail == 'assert remove_Occ("hello","l") == "heo"'
    assert task.run(query, "no code at all") is None
    early = task.run(query, "```python\nimport sys\nsys.exit(0)\n```")
    assert early.reason == "exited-early" and not early.passed
    raises = task.run(query, "```python\ndef remove_Occ(s, ch):\n    return s[ch]\n```")
    assert raises.reason == "error" and "TypeError" in raises.detail and "remove_Occ('hello', 'l')" in raises.detail
    assert task.run(query, "```python\nimport time\ntime.sleep(60)\n```").reason == "timeout"


def test_hard_coding_the_visible_asserts_passes(task, queries):
    """A known limit, not a gap in the harness: the prompt shows all three asserts, so an answer can
    memorise them. MBPP's tests are the ones in the prompt; evalplus's MBPP+ adds hidden tests for this."""
    lookup = ("def remove_Occ(s, ch):\n"
              "    return {('hello', 'l'): 'heo', ('abcda', 'a'): 'bcd', ('PHP', 'P'): 'H'}[s, ch]")
    assert task.score(queries["mbpp/11"], f"```python\n{lookup}\n```") == 1


def test_a_main_block_in_the_answer_is_not_run(task, queries):
    """Models often add a demo under `if __name__ == "__main__":` (here one reading stdin, which is empty in the
    sandbox): like a harness that imports the solution, the scorer skips it and still runs the tests."""
    query = queries["mbpp/11"]
    solution = query["meta"]["solution"]
    with_main = f"```python\n{solution}\n\nif __name__ == \"__main__\":\n    print(input())\n```"
    assert task.score(query, with_main) == 1
    exits = f"```python\n{solution}\n\nif __name__ == \"__main__\":\n    raise SystemExit(0)\n```"
    assert task.score(query, exits) == 1


def test_setup_code_runs_before_the_asserts(task, queries):
    query = next(q for q in queries.values() if q["meta"]["test_setup_code"])
    assert task.score(query, query["meta"]["solution"]) == 1


def test_disabled_execution_raises_instead_of_scoring_zero(benchmarks_dir, queries, monkeypatch):
    monkeypatch.delenv(sandbox.ENV_FLAG, raising=False)
    task = get_task("mbpp", data_dir=benchmarks_dir)
    query = queries["mbpp/11"]
    with pytest.raises(sandbox.CodeExecutionDisabled, match="RAYGEMS_ALLOW_CODE_EXECUTION=1"):
        task.score(query, query["meta"]["solution"])
    with pytest.raises(sandbox.CodeExecutionDisabled):  # also for answers without code: no silent 0 at all
        task.score(query, "I do not know.")
    monkeypatch.setenv(sandbox.ENV_FLAG, "1")
    assert task.score(query, query["meta"]["solution"]) == 1


def test_every_test_problem_splits_into_calls_and_host_asserts(queries):
    """All 500: the sandbox gets each assert's call (the inputs), the host keeps the expected value."""
    assert len(queries) == 500
    for query in queries.values():
        tests = mbpp_tests(query)
        sent = [step.source for step in tests.steps if step.kind == "eval"]
        assert len(tests.asserts) == len(sent) == len(query["meta"]["test_list"]) == 3
        for host_assert, test in zip(tests.asserts, query["meta"]["test_list"]):
            compare = ast.parse(test.strip()).body[0].test
            (step,) = host_assert.steps
            assert tests.steps[step - 1].source == ast.unparse(compare.left)
            assert host_assert.expression == f"_call_{step} == {ast.unparse(compare.comparators[0])}"


def test_a_query_without_its_reference_solution_is_refused(queries):
    query = {**queries["mbpp/11"], "meta": {}}
    with pytest.raises(ValueError, match="mbpp/11.*meta\\['solution'\\]"):
        mbpp_tests(query)
    broken = {**queries["mbpp/11"], "reference": "assert [x for x in remove_Occ('a', 'a')] == []"}
    with pytest.raises(UnsupportedTest, match="ListComp"):
        mbpp_tests(broken)


ADVERSARIAL = {
    "infinite loop": "def remove_Occ(s, ch):\n    while True:\n        pass",
    "sleep": "import time\ntime.sleep(1000)",
    "memory bomb": "x = bytearray(16 * 1024 ** 3)",
    "endless printing": "while True:\n    print('x' * 10000)",
    "fork storm": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    # The next three hold a correct solution: they score 0 only because the sandbox blocks them.
    "write outside": "open('/work/pwned-mbpp', 'w').write('x')\n{solution}",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n{solution}",
    "read parent env": "import os\nassert 'RAYGEMS_MBPP_SECRET' in os.environ\n{solution}",
    "exit zero early": "import os\nos._exit(0)",
    "sys.exit in a main block": ("import sys\ndef remove_Occ(s, ch):\n    return s\n"
                                 "if __name__ == '__main__':\n    sys.exit(0)"),
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_completions_score_zero_within_10_s(task, queries, name, monkeypatch, sandbox_tmp):
    """With the task's default limits (8 s wall time); nothing is left running afterwards."""
    monkeypatch.setenv("RAYGEMS_MBPP_SECRET", "1")
    query = queries["mbpp/11"]
    code = ADVERSARIAL[name].replace("{solution}", query["meta"]["solution"])
    started, started_ticks = time.monotonic(), boot_ticks()
    assert task.score(query, f"```python\n{code}\n```") == 0
    assert time.monotonic() - started < 10
    assert processes_mentioning(str(sandbox_tmp)) == [] and orphaned_zombies(started_ticks) == []
    assert list(sandbox_tmp.iterdir()) == [] and leftover_cgroups() == []


def test_scoring_never_raises_on_odd_output(task, queries):
    query = queries["mbpp/11"]
    for completion in ["```python\n", "```python\n\x00\n```", "def (:\n", "```\n" * 30, "\ud800"]:
        assert task.score(query, completion) == 0
