"""The one registry shape (raygems.registry): decorators, lazy "module:attribute" entries, conflicts, discovery."""
from __future__ import annotations

import sys

import pytest

from raygems.registry import Registry


class Base:
    pass


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A real module on disk that nobody has imported yet."""
    (tmp_path / "raygems_test_plugin.py").write_text(
        "from tests_registry_base import Base\n\nclass Plugin(Base):\n    pass\n\nclass Stranger:\n    pass\n")
    (tmp_path / "tests_registry_base.py").write_text("class Base:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "raygems_test_plugin"
    for name in ("raygems_test_plugin", "tests_registry_base"):
        sys.modules.pop(name, None)


def test_decorator_registers_and_returns_the_object():
    things = Registry("thing")

    @things.register("first")
    class First:
        pass

    assert First.__name__ == "First"
    assert things.get("first") is First
    assert things.names() == ["first"] and "first" in things and "second" not in things


def test_lazy_entry_is_imported_on_first_get_only(plugin_module):
    things = Registry("thing")
    things.register("plugin", f"{plugin_module}:Plugin")
    assert things.names() == ["plugin"]
    assert plugin_module not in sys.modules
    plugin = things.get("plugin")
    assert plugin_module in sys.modules and plugin.__name__ == "Plugin"
    assert things.get("plugin") is plugin


def test_base_class_is_checked_when_the_entry_is_materialised(plugin_module):
    base = __import__("tests_registry_base").Base
    things = Registry("thing", base=base)
    things.register("plugin", f"{plugin_module}:Plugin")
    things.register("stranger", f"{plugin_module}:Stranger")
    assert things.get("plugin").__name__ == "Plugin"
    with pytest.raises(TypeError, match="thing 'stranger' .* does not extend Base"):
        things.get("stranger")


def test_unknown_names_are_refused_naming_the_known_ones_in_order():
    things = Registry("widget")
    things.register("b", Base)
    things.register("a", dict)
    with pytest.raises(ValueError, match=r"unknown widget 'c'; known widgets: b, a$"):
        things.get("c")


def test_a_taken_name_is_refused_for_another_target_but_not_for_the_same_one(plugin_module):
    things = Registry("thing")
    things.register("x", Base)
    things.register("x", Base)                               # the same object again: fine
    with pytest.raises(ValueError, match=f"thing 'x' is already registered by {__name__}:Base"):
        things.register("x", dict)
    things.register("lazy", f"{plugin_module}:Plugin")
    plugin = __import__(plugin_module).Plugin
    things.register("lazy", plugin)                          # the object its lazy entry names: fine
    assert things.get("lazy") is plugin
    with pytest.raises(ValueError, match="already registered"):
        things.register("lazy", f"{plugin_module}:Stranger")


@pytest.mark.parametrize("bad", ["", " x", "x ", None, 3])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError, match="thing name must be a non-empty string"):
        Registry("thing").register(bad, Base)


def test_a_lazy_entry_must_name_module_and_attribute():
    with pytest.raises(ValueError, match="'package.module:attribute'"):
        Registry("thing").register("x", "just_a_module")


def test_discover_runs_once_before_the_first_lookup():
    calls = []

    def discover():
        calls.append(1)
        things.register("found", Base)

    things = Registry("thing", discover=discover)
    things.register("given", dict)          # registering does not discover (discovery itself registers)
    assert calls == []
    assert things.names() == ["given", "found"]
    assert things.get("found") is Base and "found" in things
    assert calls == [1]
