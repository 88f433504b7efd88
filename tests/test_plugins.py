"""Plug-ins in a live search (`raygems.plugins`): imported when the configuration is made, refused in one line
when the Ray workers would not know them. The live search with plug-ins: tests/runtime/test_live_search_plugins.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from raygems.backends import BACKENDS
from raygems.bandits.registry import METHODS
from raygems.errors import UsageError
from raygems.plugins import check_workers_can_import, import_plugins, plugin_folders
from raygems.runtime.config import SearchConfig
from raygems.tasks.registry import TASKS

PLUGINS = "raygems_example_plugins"
PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"     # (tests/conftest.py gives it to the Ray workers)


@pytest.fixture
def plugin_registries(monkeypatch):
    """The example plug-ins importable here; every registry as it was afterwards (other tests list methods)."""
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))
    saved = {registry: dict(registry._entries) for registry in (METHODS, BACKENDS, TASKS)}
    yield
    for registry, entries in saved.items():
        registry._entries = entries
    sys.modules.pop(PLUGINS, None)


def test_a_plugin_module_that_cannot_be_imported_is_named():
    with pytest.raises(UsageError, match="plug-in module 'no_such_plugin_module' cannot be imported "
                                         r"\(ModuleNotFoundError"):
        import_plugins(["no_such_plugin_module"])


def test_names_from_plugins_are_checked_after_the_plugins_are_imported(plugin_registries, tmp_path):
    config = SearchConfig(tree=str(tmp_path), tasks=("plugin_sums",), method="plugin-uniform",
                          backend="plugin_oracle", plugins=(PLUGINS,))
    assert config.plugins == (PLUGINS,) and "plugin-uniform" in METHODS and "plugin_sums" in TASKS
    assert plugin_folders(config.plugins) == [str(sys.modules[PLUGINS].__file__).rsplit("/", 1)[0]]


def test_a_plugin_not_named_in_plugins_is_refused_in_one_line(plugin_registries, tmp_path):
    import_plugins([PLUGINS])                      # registered in this process only
    for settings, kind, name in (({"method": "plugin-uniform"}, "method", "plugin-uniform"),
                                 ({"backend": "plugin_oracle"}, "backend", "plugin_oracle"),
                                 ({"tasks": ("plugin_sums",)}, "task", "plugin_sums")):
        with pytest.raises(UsageError) as caught:
            SearchConfig(tree=str(tmp_path), **settings)
        message = str(caught.value)
        assert message.startswith(f"{kind} {name!r} is registered by module {PLUGINS!r} in this process only")
        assert f"--plugins {PLUGINS}" in message and "\n" not in message


def test_a_plugin_registered_in_the_script_itself_is_refused():
    class Scripted:
        pass

    Scripted.__module__ = "__main__"
    with pytest.raises(UsageError, match=r"registered in the script you ran \(__main__\)"):
        check_workers_can_import("method", "scripted", Scripted, plugins=("anything",))
    check_workers_can_import("backend", "vllm", "raygems.backends.vllm_backend:VLLMBackend", plugins=())  # built in


def test_plugin_folders_of_a_package_and_of_a_module(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("")
    (tmp_path / "flat_plugin_mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_plugins(["pkg.sub.mod", "pkg", "flat_plugin_mod"])
    try:
        assert plugin_folders(["pkg.sub.mod", "pkg", "flat_plugin_mod"]) == [str(tmp_path.resolve())]
    finally:
        for name in ("pkg.sub.mod", "pkg.sub", "pkg", "flat_plugin_mod"):
            sys.modules.pop(name, None)
