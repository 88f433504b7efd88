"""The task registry: task names -> factories (a ``Task`` class or a function taking ``data_dir``), on the
shared ``raygems.registry.Registry``.

The built-in benchmarks register themselves (``@register_task``) when this registry is first asked: importing
their modules is deferred so that ``import raygems.tasks`` stays cheap. ``raygems.demo.toy_tasks`` (tiny
synthetic tasks) is imported too when it exists.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from raygems.registry import Registry
from raygems.tasks.base import Task

TaskFactory = Callable[..., Task]

_BUILTIN_MODULES = (
    "raygems.tasks.arc_challenge",
    "raygems.tasks.winogrande",
    "raygems.tasks.mmlu",
    "raygems.tasks.gsm8k",
    "raygems.tasks.mbpp",
    "raygems.tasks.routerbench",
)
_OPTIONAL_MODULES = ("raygems.demo.toy_tasks",)


def _import_task_modules() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for module in _OPTIONAL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but something it imports is missing
                raise


TASKS: Registry[TaskFactory] = Registry("task", discover=_import_task_modules)


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register a Task class or factory function under ``name``.

    The factory is called as ``factory(data_dir=..., **options)``. Registering a different factory
    under a taken name raises ValueError (re-registering the same one, e.g. on module reload, is fine).
    """
    return TASKS.register(name)


def list_tasks() -> list[str]:
    """Names of every registered task, sorted."""
    return sorted(TASKS.names())


def task_class_attribute(name: str, attribute: str, default=None):
    """A class attribute of the registered task `name` (`executes_code`, `scoring_version`, ...), read without
    building the task; `default` for an unknown name or a factory function without it."""
    return getattr(TASKS.get(name), attribute, default) if name in TASKS else default


def task_executes_code(name: str) -> bool:
    """Whether scoring task `name` runs model-written code."""
    return bool(task_class_attribute(name, "executes_code", False))


def scoring_version(name: str) -> str:
    """The version of task `name`'s scoring (Task.scoring_version; "1" for tasks raygems does not know)."""
    return str(task_class_attribute(name, "scoring_version", "1"))


def get_task(name: str, data_dir: str | os.PathLike | None = None, **options) -> Task:
    """The task called ``name``. ``data_dir``: a local benchmark directory (original release
    formats); None reads ``$RAYGEMS_DATA_DIR`` or, when that is unset, the Hugging Face hub.
    ``options`` go to the task's constructor (e.g. ``downloader=``, ``revision=`` for hub tasks)."""
    return TASKS.get(name)(data_dir=data_dir, **options)
