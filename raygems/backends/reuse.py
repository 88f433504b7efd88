"""One backend per worker process, kept across checkpoints when it holds state worth keeping.

Why: a model actor is a loaded-model slot that evaluates checkpoint after checkpoint. A backend on the fast
GPU path (`TransformersBackend(fast_decode="static")`) keeps its compiled module between checkpoints and
swaps the next checkpoint's weights into it; building a new backend per checkpoint would throw that
compilation (40-60 s) away each time; vLLM keeps its engine, so the adapters of one base do not restart it.
Backends say they want this with a true `Backend.reuse_per_process` (vLLM always, transformers on the fast path);
the others (the plain transformers path) are built fresh per checkpoint.

The process keeps at most one such backend: asking for other settings releases the kept one first (its
GPU memory is the slot's).
"""
from __future__ import annotations

import json
from typing import Any

from raygems.backends import Backend, get_backend

_kept: tuple[str, Backend] | None = None


def _key(name: str, settings: dict[str, Any]) -> str:
    return json.dumps([name, settings], sort_keys=True, default=str)


def process_backend(name: str, settings: dict[str, Any] | None = None) -> Backend:
    """The backend `name` with `settings` for this process: the kept instance when one with the same
    name and settings exists and wants reuse, else a new one (kept if it wants reuse)."""
    global _kept
    settings = dict(settings or {})
    key = _key(name, settings)
    if _kept is not None and _kept[0] == key:
        return _kept[1]
    backend = get_backend(name, **settings)
    if backend.reuse_per_process:
        release_process_backend()
        _kept = (key, backend)
    return backend


def release_process_backend() -> None:
    """Free the kept backend, if any (its module, caches and memory)."""
    global _kept
    if _kept is None:
        return
    backend = _kept[1]
    _kept = None
    backend.release()


def kept_backend() -> Backend | None:
    """The backend this process keeps, if any (for tests and benchmarks)."""
    return None if _kept is None else _kept[1]
