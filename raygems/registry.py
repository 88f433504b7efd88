"""One registry shape for everything raygems looks up by name: search methods, tasks and backends.

    METHODS = Registry("method")
    @METHODS.register("ucb")                                  # a decorator, next to the implementation
    ...
    BACKENDS.register("vllm", "raygems.backends.vllm_backend:VLLMBackend")   # a lazy entry: imported when asked
    BACKENDS.get("vllm")                                      # the class (imported now), or ValueError naming
                                                              # the known names

Modelled on lm-evaluation-harness's typed registry: an entry is an object or a lazy "module:attribute" that is
imported on first use (so that listing backends needs neither torch nor vLLM); a name is taken once, and
registering the same target again (a module reloaded, a lazy entry meeting its object) is not a conflict.
`discover`, when given, is called once before the first lookup: it imports the modules whose decorators fill
the registry (the built-in tasks). Names are listed in registration order.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def as_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """Names given as one name or several: a string is one name (never its letters)."""
    return (value,) if isinstance(value, str) else tuple(value)


class Registry(Generic[T]):
    """Names -> objects of one kind (`kind` names it in messages). `base`: a class every registered class must
    extend (checked when the entry is materialised)."""

    def __init__(self, kind: str, *, base: type | None = None, discover: Callable[[], None] | None = None):
        self.kind = kind
        self.base = base
        self._discover = discover
        self._discovered = discover is None
        self._entries: dict[str, T | str] = {}

    # ------------------------------------------------------------------------------------------ registering
    def register(self, name: str, target: T | str | None = None):
        """Register `target` (an object, or a lazy "package.module:attribute") under `name`; without a target,
        a decorator that registers what it decorates and returns it unchanged."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        if target is None:
            def decorator(obj: T) -> T:
                self._store(name, obj)
                return obj

            return decorator
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"a lazy {self.kind} must look like 'package.module:attribute', got {target!r}")
        self._store(name, target)
        return target

    def _store(self, name: str, target: T | str) -> None:
        current = self._entries.get(name)
        if current is not None and _identity(current) != _identity(target):
            where = _identity(current)
            raise ValueError(f"{self.kind} {name!r} is already registered"
                             + (f" by {where}" if isinstance(where, str) else ""))
        if current is None or not isinstance(target, str):   # an object replaces its own lazy entry
            self._entries[name] = target

    # --------------------------------------------------------------------------------------------- lookups
    def get(self, name: str) -> T:
        """The object registered under `name` (a lazy entry is imported now)."""
        self._ensure_discovered()
        try:
            target = self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self._entries)}") from None
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            self._entries[name] = target
        if self.base is not None and not (isinstance(target, type) and issubclass(target, self.base)):
            raise TypeError(f"{self.kind} {name!r} is {target!r}, which does not extend {self.base.__name__}")
        return target

    def entry(self, name: str) -> T | str | None:
        """What is registered under `name`, as registered (a lazy entry stays a "module:attribute" string, not
        imported); None for an unknown name."""
        self._ensure_discovered()
        return self._entries.get(name) if isinstance(name, str) else None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._ensure_discovered()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        try:
            return name in self._entries
        except TypeError:   # not a name at all
            return False

    def _ensure_discovered(self) -> None:
        if not self._discovered:
            self._discover()
            self._discovered = True


def _identity(target: Any) -> Any:
    """What makes two registrations the same: the "module:attribute" a class or function lives at (so a lazy
    entry and its object, or a reloaded module's object, agree); equality for other objects."""
    if isinstance(target, str):
        return target
    qualname = getattr(target, "__qualname__", None)
    if qualname is not None and isinstance(target, (type, Callable)):
        return f"{target.__module__}:{qualname}"
    return target
