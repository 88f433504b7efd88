"""The task registry: names, factories, the lazily imported toy tasks, the RouterBench composite."""
from __future__ import annotations

import importlib.util

import pytest

from raygems.tasks import Task, get_task, list_tasks, register_task
from raygems.tasks import registry

REAL_TASKS = {"arc_challenge": 50, "winogrande": 50, "mmlu": 50, "gsm8k": 512, "mbpp": 512, "routerbench": 512}


@pytest.fixture
def isolated_registry(monkeypatch):
    registry.list_tasks()   # the built-in tasks registered first, then a copy to add to
    monkeypatch.setattr(registry.TASKS, "_entries", dict(registry.TASKS._entries))
    return registry.TASKS


def test_list_tasks_has_the_benchmarks_and_the_composite():
    names = list_tasks()
    assert set(REAL_TASKS) <= set(names)
    assert names == sorted(names)


@pytest.mark.skipif(importlib.util.find_spec("raygems.demo.toy_tasks") is None, reason="no toy tasks")
def test_toy_tasks_appear_when_their_module_exists():
    assert {"toy_arith", "toy_choice"} <= set(list_tasks())


@pytest.mark.parametrize("name,max_new_tokens", sorted(REAL_TASKS.items()))
def test_task_attributes(name, max_new_tokens):
    task = get_task(name)
    assert isinstance(task, Task)
    assert task.name == name
    assert task.max_new_tokens == max_new_tokens
    assert isinstance(task.stop, tuple) and all(isinstance(s, str) and s for s in task.stop)


def test_get_task_does_no_work_in_the_constructor(tmp_path):
    task = get_task("gsm8k", data_dir=tmp_path / "missing")  # nothing is read yet
    with pytest.raises(FileNotFoundError, match="gsm8k"):
        task.load()


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'gsm9k'.*gsm8k"):
        get_task("gsm9k")


def test_register_task_class_and_function(isolated_registry):
    @register_task("my_class_task")
    class MyTask(Task):
        name = "my_class_task"

        def __init__(self, data_dir=None):
            self.data_dir = data_dir

        def load(self):
            return []

        def score(self, query, completion):
            return 0

    @register_task("my_function_task")
    def make(data_dir=None):
        return MyTask(data_dir=data_dir)

    assert isinstance(get_task("my_class_task", data_dir="x"), MyTask)
    assert get_task("my_function_task", data_dir="y").data_dir == "y"
    assert {"my_class_task", "my_function_task"} <= set(list_tasks())


def test_a_task_class_without_a_constructor_of_its_own(isolated_registry):
    """What a plug-in author writes first: name, load and score; get_task passes data_dir to Task's constructor."""
    @register_task("tiny_plugin_task")
    class TinyTask(Task):
        name = "tiny_plugin_task"

        def load(self):
            return [{"query_id": "0", "task": self.name, "source_id": "0", "messages": [], "reference": "4"}]

        def score(self, query, completion):
            return int(completion.strip() == query["reference"])

    task = get_task("tiny_plugin_task", data_dir="somewhere")
    assert task.data_dir == "somewhere" and task.score(task.load()[0], " 4") == 1
    assert get_task("tiny_plugin_task").data_dir is None


def test_register_task_refuses_a_second_factory_for_a_name(isolated_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_task("gsm8k")(lambda data_dir=None: None)


@pytest.mark.parametrize("bad", ["", "  x", None, 3])
def test_register_task_rejects_bad_names(bad):
    with pytest.raises(ValueError, match="task name"):
        register_task(bad)


def test_routerbench_is_the_five_tasks(benchmarks_dir):
    task = get_task("routerbench", data_dir=benchmarks_dir)
    queries = task.load()
    counts = {}
    for query in queries:
        counts[query["task"]] = counts.get(query["task"], 0) + 1
    assert counts == {"arc_challenge": 1172, "winogrande": 1267, "mmlu": 14042, "mbpp": 500, "gsm8k": 1319}
    by_task = {q["task"]: q for q in queries}
    assert task.score(by_task["gsm8k"], f"#### {by_task['gsm8k']['reference']}") == 1
    assert task.score(by_task["arc_challenge"], f"Answer: {by_task['arc_challenge']['reference']}") == 1
    assert by_task["gsm8k"]["max_new_tokens"] == 512 and by_task["mmlu"]["max_new_tokens"] == 50
    with pytest.raises(ValueError, match="not a RouterBench task"):
        task.subtask("toy_arith")
