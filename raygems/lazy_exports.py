"""Lazy re-exports for packages (PEP 562): `from raygems.hub import list_tree` imports `raygems.hub.listing` only
then, so importing a package (in a Ray worker, or `import raygems`) costs nothing it does not use.

    _EXPORTS = {"list_tree": "raygems.hub.listing", ...}
    __all__ = sorted(_EXPORTS)
    __getattr__ = lazy_exports(__name__, _EXPORTS)
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: a name of `exports` (name -> the module defining it) is imported on
    first use and kept in the package's namespace; any other name is an AttributeError."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
