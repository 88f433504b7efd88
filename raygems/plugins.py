"""Plug-ins in a live search: the modules that register methods, tasks or backends, imported in every process.

A method, task or backend registered in your process (`register_method`, `register_task`, `register_backend`)
exists there only: the search's driver and model actors are Ray workers, other processes with registries of
their own. Name the modules that register them:

    SearchConfig(..., method="mine", plugins=("mypackage.plugins",))
    raygems search ... --method mine --plugins mypackage.plugins

raygems imports them when the configuration is made (their registrations are what the method, backend and
task names are checked against), then in the driver and in every model actor. A module must be importable
there: installed, or on the workers' path. A local Ray that the search starts itself gets the folders the
plug-ins were imported from on its workers' PYTHONPATH; on a cluster, install the package on its nodes or ship
it with a Ray runtime_env (`working_dir`, `py_modules`). `plugins` is saved with the search: `--resume` imports
them again (a `--plugins` given with `--resume` replaces the saved list).

A name the workers would not know is refused in one line: at once when that is plain (registered in the script
you ran, `__main__`; or by code outside raygems while no plug-in module is named), else by the driver, which
checks the method, backend and tasks after importing the plug-ins, before anything is evaluated.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import site
import sys
from collections.abc import Iterable
from pathlib import Path

from raygems.errors import UsageError, one_line

#: The package whose own registrations every worker has.
BUILT_IN = "raygems"
#: How to fix a name the workers do not know (the end of every such message).
HOW_TO_FIX = "register it in a module and name that module in plugins (--plugins MODULE; raygems.plugins)"


def import_plugins(modules: Iterable[str]) -> None:
    """Import each plug-in module (again: a no-op); UsageError naming one that cannot be imported, or that is the
    script being run (its registrations are already made, under `__main__`)."""
    for name in modules:
        if _is_the_script(name):
            raise UsageError(f"plug-in module {name!r} is the script you ran: its registrations live in __main__, "
                             f"which the search's Ray workers cannot import; move them into a module of their own "
                             f"and name that one in plugins")
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure of a user's module is one line naming it
            raise UsageError(f"plug-in module {name!r} cannot be imported ({one_line(exc)})") from None


def plugin_folders(modules: Iterable[str]) -> list[str]:
    """The folders the plug-in modules were imported from (the sys.path entries: for a local Ray's workers'
    PYTHONPATH), less site-packages (the workers have it, after the standard library)."""
    installed = {str(Path(p).absolute()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    folders: list[str] = []
    for name in modules:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path is None:
            continue
        root = Path(path).absolute().parent            # not resolved: the path it was imported by
        for _ in range(name.count(".") + (1 if hasattr(module, "__path__") else 0)):
            root = root.parent
        if str(root) not in folders and str(root) not in installed:
            folders.append(str(root))
    return folders


def local_workers_env(plugins: Iterable[str], address: str | None) -> dict[str, str]:
    """The environment variables for the workers of a Ray this process is about to start (`address` None, no
    RAY_ADDRESS): PYTHONPATH with the plug-ins' folders first; nothing for a cluster it joins (its nodes have
    their own paths) or when no folder is needed."""
    if address or os.environ.get("RAY_ADDRESS"):
        return {}
    folders = plugin_folders(plugins)
    if not folders:
        return {}
    return {"PYTHONPATH": os.pathsep.join([*folders, *filter(None, [os.environ.get("PYTHONPATH")])])}


def check_workers_can_import(kind: str, name: str, target: object, plugins: tuple[str, ...]) -> None:
    """UsageError when `target`, registered as `kind` `name` in this process, is plainly unknown to the Ray
    workers: defined in `__main__`, or outside raygems while no plug-in module is named. (A name the workers do
    not know for another reason is found by the driver: `check_known`.)"""
    module = target.partition(":")[0] if isinstance(target, str) else getattr(target, "__module__", None) or ""
    if module.split(".")[0] == BUILT_IN:
        return
    if module == "__main__":
        raise UsageError(f"{kind} {name!r} is registered in the script you ran (__main__), which the search's Ray "
                         f"workers cannot import: {HOW_TO_FIX}")
    if not plugins:
        raise UsageError(f"{kind} {name!r} is registered in this process only (it is defined in module "
                         f"{module!r}), and no plug-in module is named: {HOW_TO_FIX}")


def check_known(kind: str, name: str, registry) -> None:
    """In a Ray worker, after its plug-ins are imported: UsageError when `name` is not a registered `kind`."""
    if name not in registry:
        raise UsageError(f"{kind} {name!r} is not registered in the search's Ray workers (it was, in the process "
                         f"that started the search): {HOW_TO_FIX}")


def _is_the_script(name: str) -> bool:
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script is None or name in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None)
    return origin is not None and Path(origin).absolute() == Path(script).absolute()
