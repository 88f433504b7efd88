"""Static KV caches and compiled decoding for transformers' `generate` (the fast GPU path).

Why: on the lent H100, HF `generate` with its default dynamic cache spends 55-78 ms per decode step at
any model size from 0.5B to 7B and any batch from 1 to 256: the step is bound by Python and kernel-launch
overhead, 10-150x above the memory-bandwidth floor. With a static cache, transformers compiles the decode
step (`torch.compile`, mode "reduce-overhead": CUDA graphs): 3.2 ms per step at batch 1 and 6.8 ms at
batch 64 for 0.5B, once the 40-60 s compilation is paid (FIELD-NOTES.md).

Keeping that compilation to once per architecture needs stable shapes and stable tensors:
* the caches are made here and passed to `generate` (`past_key_values=`, transformers' documented way of
  reusing a static cache), one per (batch rows, cache length), reset before each use, and kept: the
  compiled graphs see the same cache tensors call after call;
* cache lengths are rounded up to a multiple of `cache_bucket` tokens, so prompts of different lengths
  share a cache (and a compiled graph);
* with compilation on, every batch is padded to the full batch size (rows repeated, their outputs
  dropped), so the decode step has one batch shape;
* the module's weights change only in place (`raygems.backends.weight_swap`).

Each new module (another architecture, or another backend in the same process) is a new compilation of
the same code, which counts against dynamo's recompile limit (8): past it, dynamo silently runs eager. The
limit is raised to `RECOMPILE_LIMIT` in processes that compile here (worker processes hold one backend).
If compiled generation raises, the decoder turns compilation off for good (`disable_compile`) and the
backend retries eagerly, so a compiler problem does not fail every checkpoint; settings() records it.

On CPU, transformers does not compile by default (`compile="auto"`): the static cache alone gives the same
greedy outputs as the dynamic one and is what the CPU tests check; `compile="on"` forces compilation on
any device (tests use the cheap "eager" dynamo backend to check that swapping weights does not recompile).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

#: dynamo recompile limit in processes that compile the decode step (default 8).
RECOMPILE_LIMIT = 64


@dataclass
class StaticDecoder:
    """Static caches for one module (kept across `generate` calls) and its compile settings.

    compile: compile the decode step (transformers' auto-compilation with a static cache).
    compile_backend: the torch.compile backend ("inductor" on GPU; "eager" only traces, for tests).
    cache_bucket: cache lengths are rounded up to a multiple of this many tokens.
    max_caches: caches kept (least recently used dropped first): each holds GPU memory.
    """

    compile: bool
    compile_backend: str = "inductor"
    cache_bucket: int = 256
    max_caches: int = 2
    compile_error: str | None = None
    _caches: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _compile_config: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.cache_bucket, int) or self.cache_bucket < 1:
            raise ValueError(f"cache_bucket must be a positive int, got {self.cache_bucket!r}")
        if self.max_caches < 1:
            raise ValueError(f"max_caches must be >= 1, got {self.max_caches!r}")

    def cache_length(self, prompt_width: int, max_new_tokens: int, max_positions: int | None = None) -> int:
        """Tokens the cache holds: prompt plus new tokens, rounded up to the bucket (but not past the
        model's position limit when the exact need fits under it)."""
        needed = prompt_width + max_new_tokens
        rounded = -(-needed // self.cache_bucket) * self.cache_bucket
        if max_positions and needed <= max_positions < rounded:
            return max_positions
        return rounded

    def cache_for(self, model, batch_rows: int, length: int):
        """A reset static cache for `batch_rows` x `length` tokens (the same object for the same shape)."""
        from transformers import StaticCache

        key = (batch_rows, length)
        cache = self._caches.get(key)
        if cache is None:
            cache = StaticCache(config=model.config, max_cache_len=length)
            self._caches[key] = cache
            while len(self._caches) > self.max_caches:
                self._caches.popitem(last=False)
        else:
            self._caches.move_to_end(key)
            cache.reset()
        return cache

    def configure(self, generation_config) -> None:
        """Turn transformers' auto-compilation on or off in `generation_config` (changed in place)."""
        if not self.compile:
            generation_config.disable_compile = True
            return
        generation_config.disable_compile = False
        generation_config.compile_config = self._compile_settings()

    def disable_compile(self, reason: str) -> None:
        """Stop compiling (after compiled generation failed with `reason`); caches stay valid."""
        self.compile = False
        self.compile_error = reason

    def _compile_settings(self):
        """One CompileConfig object for every call (transformers recompiles when it changes)."""
        if self._compile_config is None:
            import torch._dynamo
            from transformers import CompileConfig

            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)

            if self.compile_backend == "inductor":
                config = CompileConfig()                      # fullgraph off, mode "reduce-overhead"
            else:
                config = CompileConfig(backend=self.compile_backend, mode=None)
            config._compile_all_devices = True                # also on CPU when asked for ("on")
            self._compile_config = config
        return self._compile_config

    def clear(self) -> None:
        """Drop the caches (their memory)."""
        self._caches.clear()

    @property
    def cache_shapes(self) -> list[tuple[int, int]]:
        return list(self._caches)
