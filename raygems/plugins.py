"""Plug-ins in a live search: the modules that register methods, tasks or backends, imported in every process.

A method, task or backend registered in your process (`register_method`, `register_task`, `register_backend`)
exists there only: the search's driver and model actors are Ray workers, other processes with registries of
their own. Name the modules that register them:

    SearchConfig(..., method="mine", plugins=("mypackage.plugins",))
    raygems search ... --method mine --plugins mypackage.plugins

raygems imports them when the configuration is made (their registrations are what the method, backend and
task names are checked against), then in the driver and in every model actor. A module must be importable
there: installed, or on the workers' path. A local Ray that the search starts gets the folders the plug-ins
were imported from on its workers' PYTHONPATH; on a cluster, install the package on its nodes or ship it with a
Ray runtime_env (`working_dir`, `py_modules`). A plug-in registered in a script (`__main__`), or in a module
not named in plugins, is refused before anything starts, in one line that says this. `plugins` is a runtime
setting (not saved with the search): give it again with `--resume`.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

from raygems.errors import UsageError, one_line

#: The package whose own registrations every worker has.
BUILT_IN = "raygems"


def import_plugins(modules: Iterable[str]) -> None:
    """Import each plug-in module (again: a no-op); UsageError naming one that cannot be imported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure of a user's module is one line naming it
            raise UsageError(f"plug-in module {name!r} cannot be imported ({one_line(exc)})") from None


def plugin_folders(modules: Iterable[str]) -> list[str]:
    """The sys.path folders the plug-in modules were imported from (for a local Ray's workers' PYTHONPATH)."""
    folders: list[str] = []
    for name in modules:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path is None:
            continue
        root = Path(path).resolve().parent
        for _ in range(name.count(".") + (1 if Path(path).name == "__init__.py" else 0)):
            root = root.parent
        if str(root) not in folders:
            folders.append(str(root))
    return folders


def check_workers_can_import(kind: str, name: str, target: object, plugins: tuple[str, ...]) -> None:
    """UsageError when `target`, registered as `kind` `name` in this process, would be unknown to the Ray
    workers: it lives in `__main__`, or outside raygems while no plug-in module is named."""
    module = target.partition(":")[0] if isinstance(target, str) else getattr(target, "__module__", None) or ""
    if module.split(".")[0] == BUILT_IN:
        return
    if module == "__main__":
        raise UsageError(f"{kind} {name!r} is registered in the script you ran (__main__), which the search's Ray "
                         f"workers cannot import: move it into a module and name that module in plugins "
                         f"(--plugins MODULE; raygems.plugins)")
    if not plugins:
        raise UsageError(f"{kind} {name!r} is registered by module {module!r} in this process only: name the "
                         f"module that registers it in plugins (--plugins {module}) so the search's Ray workers "
                         f"import it too (raygems.plugins)")
