"""The generation interface every backend implements (docs/architecture.md, "Backends").

A backend loads one model at a time (a full checkpoint, or a LoRA adapter on top of its base), generates
greedy completions for already-rendered prompts, and reports the settings that produced them. A checkpoint
that cannot be fetched, loaded or run raises `CheckpointError` with a short human reason; the search
records that reason in `failed_models` and carries on with the other models.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from raygems.hub.types import ModelRecord


class CheckpointError(Exception):
    """A checkpoint that cannot be fetched, loaded or run. `reason` is short and human readable, e.g.
    "missing tensor model.layers.0.mlp.up_proj.weight", "corrupt safetensors file",
    "unsupported architecture 'foo'", "missing tokenizer"."""

    def __init__(self, reason: str, model_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.model_id = model_id

    def __reduce__(self):  # keep the reason when the error crosses a process boundary (Ray)
        return (type(self), (self.reason, self.model_id))


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. `prompt` is already rendered (chat template applied)."""

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(self.prompt).__name__}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            raise TypeError(f"stop must be a tuple of strings, got the string {self.stop!r}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Generation:
    """One completion: the text (cut before the first stop string), token counts, and the seconds spent.

    `completion_tokens` counts the generated tokens up to and including the end-of-sequence token or the
    token that completed a stop string. `seconds` is the wall time of the batch that produced it,
    divided evenly among the batch's requests (so the seconds of a run add up to its wall time).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class Backend(ABC):
    """Generation behind one interface: everything the runtime calls is declared here. Lifecycle: `load(model)`,
    `generate(...)` any number of times, `unload()`; `release()` when the backend itself is done with. Calling
    `load` again replaces the loaded model (a backend may keep what the new model shares with the old one, such
    as the base model under two LoRA adapters, or an engine and a compiled module: see `reuse_per_process`)."""

    name: str = ""
    #: Whether the runtime keeps one instance per worker process for checkpoint after checkpoint
    #: (`raygems.backends.reuse`): true for a backend whose state outlives a checkpoint and is worth keeping (an
    #: inference engine, a compiled module). A subclass may make it a property of its settings.
    reuse_per_process: bool = False

    @classmethod
    def warm_up(cls) -> None:
        """Import what loading a checkpoint will need. A model actor calls it right after it has told the driver
        its node, so that the imports overlap the first downloads instead of lengthening the first load
        (default: nothing)."""

    @abstractmethod
    def load(self, model: ModelRecord) -> None:
        """Load `model`; raise CheckpointError(reason) when it cannot be fetched or loaded."""

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Greedy completions, one per request, in order; CheckpointError when the model cannot run."""

    @abstractmethod
    def unload(self) -> None:
        """Release the loaded model (and its memory)."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What produced the generations (backend, versions, dtype, device, batching, ...): recorded
        with every result, because greedy outputs can differ between backends and settings."""

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The loaded model's tokenizer (for `raygems.tasks.prompting.render_prompt`)."""

    @property
    def generation_config(self) -> Any:
        """The loaded model's generation config (a transformers `GenerationConfig`, a config or a dict), where
        `raygems.tasks.prompting.model_system_prompt` looks for the model's own system prompt; None: none."""
        return None

    def release(self) -> None:
        """Free everything, including what the backend keeps across checkpoints (an engine, a compiled module);
        the runtime calls it when a kept backend is replaced. Without such state it is `unload()`."""
        self.unload()

    # -- helpers shared by the implementations ------------------------------------------------------
    def _require_loaded(self, loaded: object) -> None:
        if loaded is None:
            raise RuntimeError(f"{type(self).__name__}: call load(model) before generate()")


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; return (text, whether a stop string was found)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
