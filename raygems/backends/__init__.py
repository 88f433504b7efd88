"""Generation backends behind one interface (docs/architecture.md, "Backends").

    backend = get_backend("transformers", batch_size=64)      # or "vllm", or a registered name
    backend.load(model_record)                                 # CheckpointError(reason) if broken
    outputs = backend.generate([GenerationRequest(prompt, max_new_tokens=16, stop=("\\n\\n",))])
    backend.settings()                                         # recorded with every result

Backends are imported lazily: `import raygems.backends` needs neither torch nor vLLM.
"""
from __future__ import annotations

import importlib
from typing import Any

from raygems.backends.base import Backend, CheckpointError, Generation, GenerationRequest

#: Backend name -> "module:Class". Other packages add theirs with `register_backend`.
_BACKENDS: dict[str, str] = {
    "transformers": "raygems.backends.transformers_backend:TransformersBackend",
    "vllm": "raygems.backends.vllm_backend:VLLMBackend",
}


def register_backend(name: str, target: str) -> None:
    """Make `get_backend(name)` build the class at `target` ("package.module:ClassName")."""
    if ":" not in target:
        raise ValueError(f"backend target must look like 'package.module:ClassName', got {target!r}")
    _BACKENDS[name] = target


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str, **settings: Any) -> Backend:
    """A new, unloaded backend `name` built with `settings` (its constructor's keyword arguments)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {available_backends()}")
    module_name, class_name = _BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(**settings)


__all__ = ["Backend", "CheckpointError", "Generation", "GenerationRequest", "available_backends",
           "get_backend", "register_backend"]
