"""Generation backends behind one interface (docs/architecture.md, "Backends").

    backend = get_backend("transformers", batch_size=64)      # or "vllm", or a registered name
    backend.load(model_record)                                 # CheckpointError(reason) if broken
    outputs = backend.generate([GenerationRequest(prompt, max_new_tokens=16, stop=("\\n\\n",))])
    backend.settings()                                         # recorded with every result

Backends are imported lazily: `import raygems.backends` needs neither torch nor vLLM.
"""
from __future__ import annotations

from typing import Any

from raygems.backends.base import Backend, CheckpointError, Generation, GenerationRequest
from raygems.registry import Registry

#: Backend name -> class, on the shared registry; the built-in ones are lazy ("module:Class", imported when
#: first asked for). Other packages add theirs with `register_backend`.
BACKENDS: Registry[type[Backend]] = Registry("backend", base=Backend)
BACKENDS.register("transformers", "raygems.backends.transformers_backend:TransformersBackend")
BACKENDS.register("vllm", "raygems.backends.vllm_backend:VLLMBackend")


def register_backend(name: str, target: type[Backend] | str | None = None):
    """Make `get_backend(name)` build `target`: a `Backend` subclass, or "package.module:ClassName" (imported
    when first asked for). Without a target, a class decorator: `@register_backend("mine")`."""
    return BACKENDS.register(name, target)


def available_backends() -> list[str]:
    return sorted(BACKENDS.names())


def get_backend(name: str, **settings: Any) -> Backend:
    """A new, unloaded backend `name` built with `settings` (its constructor's keyword arguments)."""
    return BACKENDS.get(name)(**settings)


__all__ = ["Backend", "CheckpointError", "Generation", "GenerationRequest", "available_backends",
           "get_backend", "register_backend"]
