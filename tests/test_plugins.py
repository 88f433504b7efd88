"""Plug-ins in a live search (`raygems.plugins`): imported when the configuration is made, refused in one line
when the Ray workers would not know them. The live search with plug-ins: tests/runtime/test_live_search_plugins.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from raygems.bandits.registry import METHODS
from raygems.errors import UsageError
from raygems.plugins import check_workers_can_import, import_plugins, plugin_folders
from raygems.runtime.config import SearchConfig
from raygems.tasks.registry import TASKS


def test_a_plugin_module_that_cannot_be_imported_is_named():
    with pytest.raises(UsageError, match="plug-in module 'no_such_plugin_module' cannot be imported "
                                         r"\(ModuleNotFoundError"):
        import_plugins(["no_such_plugin_module"])


def test_names_from_plugins_are_checked_after_the_plugins_are_imported(example_plugins, tmp_path):
    config = SearchConfig(tree=str(tmp_path), tasks=("plugin_sums",), method="plugin-uniform",
                          backend="plugin_oracle", plugins=(example_plugins,))
    assert config.plugins == (example_plugins,) and "plugin-uniform" in METHODS and "plugin_sums" in TASKS
    assert plugin_folders(config.plugins) == [str(sys.modules[example_plugins].__file__).rsplit("/", 1)[0]]


def test_a_plugin_not_named_in_plugins_is_refused_in_one_line(example_plugins, tmp_path):
    import_plugins([example_plugins])                      # registered in this process only
    for settings, kind, name in (({"method": "plugin-uniform"}, "method", "plugin-uniform"),
                                 ({"backend": "plugin_oracle"}, "backend", "plugin_oracle"),
                                 ({"tasks": ("plugin_sums",)}, "task", "plugin_sums")):
        with pytest.raises(UsageError) as caught:
            SearchConfig(tree=str(tmp_path), **settings)
        message = str(caught.value)
        assert message.startswith(f"{kind} {name!r} is registered in this process only (it is defined in module "
                                  f"{example_plugins!r}), and no plug-in module is named")
        assert "name that module in plugins (--plugins MODULE" in message and "\n" not in message


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


def test_one_name_is_one_plugin_not_its_letters(tmp_path):
    config = SearchConfig(tree=str(tmp_path), plugins="json", tasks="gsm8k")
    assert config.plugins == ("json",) and config.tasks == ("gsm8k",)


def test_an_unknown_method_says_how_to_bring_ones_own(tmp_path):
    with pytest.raises(ValueError, match=r"unknown method 'mine'.*name the module that registers it in plugins"):
        SearchConfig(tree=str(tmp_path), method="mine")


def test_a_script_that_names_itself_as_a_plugin_is_told_why(tmp_path):
    """Its registrations are made under __main__; importing it again by name would register them twice."""
    import subprocess

    (tmp_path / "selfplug.py").write_text(
        "from raygems import register_method\n"
        "from raygems.bandits.elimination import SequentialHalving\n"
        "from raygems.errors import UsageError\n"
        "from raygems.runtime.config import SearchConfig\n"
        "register_method('self-mine', SequentialHalving)\n"
        "if __name__ == '__main__':\n"
        "    try:\n"
        "        SearchConfig(tree='.', method='self-mine', plugins=('selfplug',))\n"
        "    except UsageError as exc:\n"
        "        print(exc)\n")
    out = subprocess.run([sys.executable, "selfplug.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("plug-in module 'selfplug' is the script you ran: its registrations live in "
                                 "__main__"), out.stdout + out.stderr


def test_raygems_replay_takes_plugins(example_plugins, tmp_path, capsys):
    import numpy as np

    from raygems.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "m.npy", (rng.random((5, 40)) < np.linspace(0.2, 0.8, 5)[:, None]).astype(np.uint8))
    argv = ["replay", "--matrix", str(tmp_path / "m.npy"), "--methods", "plugin-uniform", "--budgets", "4",
            "--reps", "3", "--quiet"]
    assert main(argv) == 2 and "unknown method 'plugin-uniform'" in capsys.readouterr().err
    assert main([*argv, "--plugins", example_plugins]) == 0
    assert "plugin-uniform" in capsys.readouterr().out


def test_only_a_ray_started_here_gets_the_plugin_folders(example_plugins, monkeypatch):
    from raygems.plugins import local_workers_env

    import_plugins([example_plugins])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    folder = Path(sys.modules[example_plugins].__file__).parent
    assert local_workers_env([example_plugins], None) == {"PYTHONPATH": f"{folder}:/elsewhere"}
    assert local_workers_env([example_plugins], "auto") == {} and local_workers_env([], None) == {}
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert local_workers_env([example_plugins], None) == {}
