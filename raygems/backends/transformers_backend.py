"""Generation with Hugging Face transformers (CPU or GPU): batched greedy decoding, LoRA adapters via peft.

Why each choice:
* LEFT padding, so that every row of a batch ends at the same position and the new tokens follow the
  prompt directly; with it, a prompt gets the same greedy completion batched or alone.
* Requests are grouped by (max_new_tokens, stop strings) and, inside a group, sorted by prompt length
  before being cut into batches of `batch_size`: similar lengths waste less compute on padding.
* Stop strings: transformers' `stop_strings` ends a row early; the text is then cut before the first stop
  string (as vLLM does), so both backends return the same text.
* Missing tensors: transformers only warns about them (and initialises them at random), so the load asks
  for the loading info and fails with `CheckpointError` when any tensor is missing.
* Adapters: the base model stays loaded when the next model is another adapter of the same base
  (only the small adapter is swapped).
* The fast GPU path (`fast_decode="static"`, or `"auto"` = on CUDA only; off by default until it has been
  measured on a GPU, see docs/performance.md): a static KV cache with compiled
  decoding (`raygems.backends.static_decoding`), and checkpoints of the same architecture copied into the
  already-built module (`raygems.backends.weight_swap`; LoRA adapters merged into the base's weights), so
  the 40-60 s compilation is paid once per architecture, not once per checkpoint. With it, `unload()`
  keeps that module (and its GPU memory) for the next checkpoint; `release()` frees everything. Because
  the module survives, the runtime keeps one backend per worker process (`raygems.backends.reuse`).
"""
from __future__ import annotations

import gc
import hashlib
import itertools
import logging
import re
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raygems.backends.base import Backend, CheckpointError, Generation, GenerationRequest, truncate_at_stop
from raygems.backends.checkpoint import (
    CheckpointFiles,
    check_adapter,
    check_tokenizer,
    check_weights,
    locate,
    missing_tensor_reason,
    read_config,
)
from raygems.backends.static_decoding import StaticDecoder
from raygems.backends.weight_swap import LoraUpdate, architecture_key, copy_weights, merge_lora, plan_copy, read_lora
from raygems.errors import one_line
from raygems.hub.types import ModelRecord

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
FAST_DECODE = ("auto", "static", "off")
COMPILE = ("auto", "on", "off")


@dataclass(frozen=True)
class TransformersSettings:
    """How the transformers backend runs.

    device: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
    dtype: "auto" (bfloat16 on a GPU that supports it, else float32), "float32", "bfloat16", "float16".
    batch_size: prompts per `generate` call.
    use_stop_strings: let `generate` end rows at a stop string (the text is cut afterwards either way).
    fast_decode: "static" = the fast path (static KV cache, compiled decoding where `compile` says, weights
        of same-architecture checkpoints swapped into the built module); "off" = dynamic cache, a fresh
        module per checkpoint (the default, until the fast path is measured on a GPU); "auto" = "static" on
        CUDA, "off" on CPU.
    compile: compile the decode step on the fast path: "auto" (on CUDA only), "on" (any device), "off".
    compile_backend: torch.compile backend for "on"/"auto" ("inductor"; "eager" only traces: tests).
    cache_bucket: static cache lengths are rounded up to a multiple of this many tokens (fewer shapes,
        fewer compilations).
    """

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    use_stop_strings: bool = True
    fast_decode: str = "off"
    compile: str = "auto"
    compile_backend: str = "inductor"
    cache_bucket: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not (self.device in DEVICES or re.fullmatch(r"cuda:\d+", self.device)):
            raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.fast_decode not in FAST_DECODE:
            raise ValueError(f"fast_decode must be one of {FAST_DECODE}, got {self.fast_decode!r}")
        if self.compile not in COMPILE:
            raise ValueError(f"compile must be one of {COMPILE}, got {self.compile!r}")
        if not isinstance(self.compile_backend, str) or not self.compile_backend:
            raise ValueError(f"compile_backend must be a torch.compile backend name, got {self.compile_backend!r}")
        if not isinstance(self.cache_bucket, int) or self.cache_bucket < 1:
            raise ValueError(f"cache_bucket must be a positive int, got {self.cache_bucket!r}")

    def resolved_device(self) -> str:
        """The device "auto" stands for here ("cuda" when CUDA is available, else "cpu")."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def fast_path(self) -> bool:
        """Whether the fast path (static cache, weight swapping) is on for the resolved device."""
        if self.fast_decode == "auto":
            return self.resolved_device().startswith("cuda")
        return self.fast_decode == "static"

    def compiled(self) -> bool:
        """Whether decoding is compiled (the fast path only)."""
        if not self.fast_path() or self.compile == "off":
            return False
        return self.compile == "on" or self.resolved_device().startswith("cuda")


class TransformersBackend(Backend):
    """Batched greedy generation with transformers; see the module docstring for the design."""

    name = "transformers"
    #: A load failed in this process since the last checkpoint drop (of any backend object): the next drop
    #: collects garbage (`_drop_checkpoint`).
    _load_failed = False

    def __init__(self, device: str = "auto", dtype: str = "auto", batch_size: int = 32,
                 use_stop_strings: bool = True, fast_decode: str = "off", compile: str = "auto",
                 compile_backend: str = "inductor", cache_bucket: int = 256) -> None:
        self.config = TransformersSettings(device=device, dtype=dtype, batch_size=batch_size,
                                           use_stop_strings=use_stop_strings, fast_decode=fast_decode,
                                           compile=compile, compile_backend=compile_backend,
                                           cache_bucket=cache_bucket)
        self._model = None
        self._tokenizer = None
        self._record: ModelRecord | None = None
        self._files: CheckpointFiles | None = None
        self._adapter_name: str | None = None
        self._device = None
        self._dtype = None
        self._shell: _Shell | None = None          # fast path: the built module kept across checkpoints
        self._decoder = None                        # fast path: StaticDecoder (caches, compile settings)
        self._fast_active = False                   # the loaded checkpoint runs on the fast path
        self.last_load: dict[str, Any] = {}         # how the last load went ("swap", "full", ...; seconds)

    # -- lifecycle ------------------------------------------------------------------------------------
    @classmethod
    def warm_up(cls) -> None:
        import torch  # noqa: F401  (~1.4 s, and transformers' auto classes ~1 s, on the 2-core machine)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # noqa: F401
        # what every model class imports (loading, generation, masks: ~1.6 s), else paid by the first load
        from transformers import GenerationMixin, PreTrainedModel  # noqa: F401

    def load(self, model: ModelRecord) -> None:
        try:
            self._load(model)
        except BaseException:
            TransformersBackend._load_failed = True    # see _drop_checkpoint
            raise

    def _load(self, model: ModelRecord) -> None:
        started = time.perf_counter()
        files = locate(model)
        model_id = model.model_id
        check_tokenizer(files.tokenizer_dir, model_id)
        if files.is_adapter:
            check_adapter(files, model_id)
        if self.config.fast_path():
            how = self._load_fast(model, files)
            self.last_load = {"how": how, "seconds": time.perf_counter() - started}
            return
        if files.is_adapter:
            if self._files is not None and self._files.is_adapter and self._files.base_dir == files.base_dir:
                self._swap_adapter(files, model_id)
                self._record, self._files = model, files
                self.last_load = {"how": "adapter swap", "seconds": time.perf_counter() - started}
                return
        self.unload()
        self._resolve_device_and_dtype()
        base = self._load_full_model(files.weights_dir, model_id)
        try:
            if files.is_adapter:
                base = self._wrap_with_adapter(base, files, model_id)
            self._tokenizer = self._load_tokenizer(files.tokenizer_dir, model_id)
        except BaseException:
            del base
            self._forget_checkpoint()
            raise
        self._model, self._record, self._files = base, model, files
        self.last_load = {"how": "full", "seconds": time.perf_counter() - started}

    def unload(self) -> None:
        """Forget the loaded checkpoint and let its weights go (`_drop_checkpoint`). On the fast path the built
        module stays (weights and compiled decoding, ready for the next checkpoint of its architecture);
        `release()` frees it too."""
        self._drop_checkpoint(_weak_refs(self._model, keep=self._kept_module))

    def release(self) -> None:
        """Free everything: the checkpoint, and on the fast path the kept module and its caches."""
        watched = _weak_refs(self._model) + _weak_refs(self._kept_module)
        self._shell = None
        if self._decoder is not None:
            self._decoder.clear()
        self._decoder = None
        self._drop_checkpoint(watched)

    @property
    def _kept_module(self):
        """The fast path's built module, kept across checkpoints (None: none)."""
        return self._shell.module if self._shell is not None else None

    def _drop_checkpoint(self, watched: list[weakref.ref]) -> None:
        """Forget the checkpoint. Its weights go with the last reference to them: reference counting frees a
        model at once, so a garbage collection (~0.2 s in a worker that has imported torch and transformers, on
        every model switch if it always ran) runs only when some of the `watched` objects (the dropped weights)
        are still alive, held by a reference cycle, or when a load failed since the last drop in this process:
        what a failed load built can sit in cycles with its exception's frames, out of reach of any reference
        kept here, and the runtime loads the next checkpoint on a new backend object. Then the GPU's cached
        blocks go too."""
        failed, TransformersBackend._load_failed = TransformersBackend._load_failed, False
        self._forget_checkpoint()
        if not watched and not failed:
            return
        if failed or any(ref() is not None for ref in watched):
            gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def reuse_per_process(self) -> bool:
        """True when this backend keeps state worth reusing for the next checkpoint (the fast path): the
        runtime then keeps one instance per worker process (`raygems.backends.reuse`)."""
        return self.config.fast_path()

    def _forget_checkpoint(self) -> None:
        self._model = None
        self._tokenizer = None
        self._record = None
        self._files = None
        self._adapter_name = None
        self._fast_active = False

    # -- the fast path: one built module per architecture, checkpoints swapped in ------------------------
    def _load_fast(self, model: ModelRecord, files: CheckpointFiles) -> str:
        """Load `model` on the fast path; returns how: "swap" (weights copied into the kept module), "full"
        (a new module: first checkpoint or another architecture), "peft" (an adapter that is not plain
        LoRA: loaded with peft, without the kept module)."""
        model_id = model.model_id
        folder = files.weights_dir
        key = architecture_key(read_config(folder, model_id))
        self.unload()
        shell = self._shell if self._shell is not None and self._shell.key == key else None
        lora: LoraUpdate | None = None
        if shell is not None and files.is_adapter:
            lora = read_lora(files, shell.module)
            if lora is None:
                shell = None
        how = "swap"
        if shell is None or not self._refill(shell, folder, model_id):
            self.release()
            self._resolve_device_and_dtype()
            shell = _Shell(self._load_full_model(folder, model_id), key, folder)
            how = "full"
            if files.is_adapter:
                lora = read_lora(files, shell.module)
                if lora is None:
                    return self._load_peft_adapter(shell.module, model, files)
        self._shell = shell
        if self._decoder is None:
            self._decoder = StaticDecoder(compile=self.config.compiled(), compile_backend=self.config.compile_backend,
                                          cache_bucket=self.config.cache_bucket)
        if lora is not None:
            try:
                merge_lora(shell.module, lora)
            except Exception as exc:
                shell.source = None
                raise CheckpointError(f"cannot merge adapter: {one_line(exc)}",
                                      model_id) from exc
            shell.merged = frozenset(lora.parameters)
        shell.module.generation_config = self._checkpoint_generation_config(folder, model_id)
        shell.module.config._name_or_path = str(files.model_dir)
        self._tokenizer = self._load_tokenizer(files.tokenizer_dir, model_id)
        self._model, self._record, self._files = shell.module, model, files
        self._fast_active = True
        return how

    def _refill(self, shell: "_Shell", folder: Path, model_id: str) -> bool:
        """Put the weights stored in `folder` into the kept module; False when they do not fit it (the
        caller loads a new module). The module holds no complete checkpoint while copying: a failure
        marks it so, and the next refill copies every tensor again."""
        if shell.source == folder and not shell.merged:
            return True                                  # it holds exactly these weights already
        plan = plan_copy(shell.module, folder, model_id)  # CheckpointError for a missing tensor
        if plan is None:
            return False
        if shell.source == folder:
            plan = plan.restricted(set(shell.merged))    # undo the last adapter merge only
        shell.source = None
        try:
            copy_weights(shell.module, plan)
        except Exception as exc:
            raise CheckpointError(f"cannot load weights: {one_line(exc)}",
                                  model_id) from exc
        shell.source, shell.merged = folder, frozenset()
        return True

    def _load_peft_adapter(self, base, model: ModelRecord, files: CheckpointFiles) -> str:
        """An adapter that cannot be merged here: peft wraps `base` (no kept module, dynamic cache)."""
        self.release()
        self._model = self._wrap_with_adapter(base, files, model.model_id)
        self._tokenizer = self._load_tokenizer(files.tokenizer_dir, model.model_id)
        self._record, self._files = model, files
        return "peft"

    def _checkpoint_generation_config(self, folder: Path, model_id: str):
        """The generation config a fresh load of `folder` would get (its file, else its model config)."""
        from transformers import AutoConfig, GenerationConfig

        try:
            return GenerationConfig.from_pretrained(str(folder))
        except OSError:
            try:
                return GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(folder)))
            except Exception as exc:
                raise CheckpointError(f"cannot read config: {one_line(exc)}",
                                      model_id) from exc

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def generation_config(self):
        """The loaded model's generation config (for `raygems.tasks.model_system_prompt`), or None."""
        return getattr(self._model, "generation_config", None) if self._model is not None else None

    @property
    def model(self):
        """The loaded torch module (a PeftModel for adapters)."""
        return self._model

    def settings(self) -> dict[str, Any]:
        import torch
        import transformers

        settings: dict[str, Any] = {
            "backend": self.name,
            "version": transformers.__version__,
            "torch": torch.__version__,
            "device": str(self._device) if self._device is not None else self.config.device,
            "dtype": str(self._dtype).replace("torch.", "") if self._dtype is not None else self.config.dtype,
            "batch_size": self.config.batch_size,
            "decoding": "greedy",
            "padding_side": "left",
            "max_new_tokens_policy": "per request (the task's max_new_tokens)",
            "stop_strings": "cut before the first stop string"
                            + (", rows end early in generate" if self.config.use_stop_strings else ""),
            "torch_threads": torch.get_num_threads(),
            "fast_decode": self.config.fast_decode,
        }
        static = self._fast_active if self._model is not None else self.config.fast_path()
        settings["kv_cache"] = "static" if static else "dynamic"
        if static:
            compiled = self._decoder.compile if self._decoder is not None else self.config.compiled()
            settings["compiled"] = compiled
            if compiled:
                settings["compile_backend"] = self.config.compile_backend
                settings["batch_padding"] = "rows repeated up to batch_size"
            if self._decoder is not None and self._decoder.compile_error:
                settings["compile_error"] = self._decoder.compile_error
            settings["cache_bucket"] = self.config.cache_bucket
            settings["weights"] = "copied into the kept module (LoRA merged into the base weights)"
        try:
            import peft

            settings["peft"] = peft.__version__
        except ImportError:  # pragma: no cover
            pass
        return settings

    # -- generation -----------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self._require_loaded(self._model)
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.max_new_tokens, request.stop), []).append(index)
        for (max_new_tokens, stop), indices in groups.items():
            lengths = {i: len(self._encode(requests[i].prompt)) for i in indices}
            ordered = sorted(indices, key=lambda i: -lengths[i])
            for start in range(0, len(ordered), self.config.batch_size):
                batch = ordered[start:start + self.config.batch_size]
                outputs = self._generate_batch([requests[i].prompt for i in batch], max_new_tokens, stop)
                for i, generation in zip(batch, outputs):
                    results[i] = generation
        return results  # type: ignore[return-value]

    def _encode(self, prompt: str) -> list[int]:
        # Rendered prompts already carry the template's special tokens: add none.
        return self._tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def _generate_batch(self, prompts: list[str], max_new_tokens: int, stop: tuple[str, ...]) -> list[Generation]:
        import torch

        tokenizer = self._tokenizer
        started = time.perf_counter()
        rows = len(prompts)
        decoder = self._decoder if self._fast_active else None
        if decoder is not None and decoder.compile and rows < self.config.batch_size:
            # one batch shape for the compiled decode step: repeat the last prompt, drop its outputs
            prompts = list(prompts) + [prompts[-1]] * (self.config.batch_size - rows)
        encoded = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        encoded = {k: v.to(self._device) for k, v in encoded.items()}
        generation_config = self._generation_config(max_new_tokens)
        if stop and self.config.use_stop_strings:
            generation_config.stop_strings = list(stop)
        try:
            try:
                output = self._run_generate(encoded, generation_config, decoder, max_new_tokens)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:
                if decoder is None or not decoder.compile:
                    raise
                # a compiler problem must not fail every checkpoint: go on without compiling
                reason = one_line(exc)
                logging.getLogger(__name__).warning("compiled generation failed (%s); decoding eagerly from now on",
                                                    reason)
                decoder.disable_compile(reason)
                output = self._run_generate(encoded, generation_config, decoder, max_new_tokens)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            raise CheckpointError(f"generation failed: {one_line(exc)}",
                                  self._record.model_id if self._record else None) from exc
        prompt_width = encoded["input_ids"].shape[1]
        prompt_tokens = encoded["attention_mask"][:rows].sum(dim=1).tolist()
        new_tokens = output[:rows, prompt_width:].tolist()
        seconds = (time.perf_counter() - started) / rows
        eos_ids = self._eos_ids()
        return [self._finish(row, n_prompt, stop, eos_ids, seconds)
                for row, n_prompt in zip(new_tokens, prompt_tokens)]

    def _run_generate(self, encoded: dict, generation_config, decoder: StaticDecoder | None, max_new_tokens: int):
        """One `generate` call; on the fast path with the static cache for this batch's shape."""
        import torch

        with torch.inference_mode():
            extra: dict[str, Any] = {}
            if decoder is not None:
                decoder.configure(generation_config)
                length = decoder.cache_length(encoded["input_ids"].shape[1], max_new_tokens,
                                              getattr(self._model.config, "max_position_embeddings", None))
                extra["past_key_values"] = decoder.cache_for(self._model, encoded["input_ids"].shape[0], length)
            return self._model.generate(**encoded, generation_config=generation_config, tokenizer=self._tokenizer,
                                        **extra)

    def _finish(self, ids: list[int], prompt_tokens: int, stop: tuple[str, ...], eos_ids: set[int],
                seconds: float) -> Generation:
        """Cut a generated row at the end token and at the first stop string; count its tokens."""
        end = next((k for k, token in enumerate(ids) if token in eos_ids), None)
        content = ids if end is None else ids[:end]
        counted = len(ids) if end is None else end + 1
        text, stopped = truncate_at_stop(self._decode(content), stop)
        if stopped:
            counted = self._tokens_until_stop(content, stop)
        return Generation(text=text, prompt_tokens=int(prompt_tokens), completion_tokens=counted, seconds=seconds)

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def _tokens_until_stop(self, ids: list[int], stop: tuple[str, ...]) -> int:
        """The fewest leading tokens whose text contains a stop string (binary search: containment
        only grows with more tokens)."""
        low, high = 1, len(ids)
        while low < high:
            middle = (low + high) // 2
            if truncate_at_stop(self._decode(ids[:middle]), stop)[1]:
                high = middle
            else:
                low = middle + 1
        return low

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self._model.generation_config.eos_token_id, self._tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(source if isinstance(source, (list, tuple)) else [source])
        if self._tokenizer.pad_token_id is not None:
            ids.add(self._tokenizer.pad_token_id)  # rows that finished early are filled with it
        return ids

    def _generation_config(self, max_new_tokens: int):
        """The model's generation config made greedy (its sampling settings removed)."""
        import copy

        config = copy.deepcopy(self._model.generation_config)
        config.do_sample = False
        config.num_beams = 1
        config.temperature = None
        config.top_p = None
        config.top_k = None
        config.min_p = None
        config.repetition_penalty = None
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        config.pad_token_id = self._tokenizer.pad_token_id
        config.stop_strings = None
        if config.eos_token_id is None:
            config.eos_token_id = self._tokenizer.eos_token_id
        return config

    # -- loading --------------------------------------------------------------------------------------
    def _resolve_device_and_dtype(self) -> None:
        import torch

        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
        dtype = self.config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
        self._device = torch.device(device)
        self._dtype = getattr(torch, dtype)

    def _load_full_model(self, folder: Path, model_id: str):
        from transformers import AutoModelForCausalLM

        read_config(folder, model_id)
        check_weights(folder, model_id)
        # Missing tensors are reported below as an error, not as a warning; the tensor-parallel notice
        # ("layers were not sharded") concerns multi-GPU sharding only.
        loggers = [logging.getLogger(name) for name in ("transformers.modeling_utils",
                                                         "transformers.distributed.tensor_parallel")]
        previous = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            model, info = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=self._dtype, output_loading_info=True, trust_remote_code=False)
        except CheckpointError:
            raise
        except Exception as exc:   # the architecture was checked before (read_config): these are the weights
            raise CheckpointError(f"cannot load weights: {one_line(exc)}",
                                  model_id) from exc
        finally:
            for logger, level in zip(loggers, previous):
                logger.setLevel(level)
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            raise CheckpointError(missing_tensor_reason(missing), model_id)
        return model.to(self._device).eval()

    def _wrap_with_adapter(self, base, files: CheckpointFiles, model_id: str):
        from peft import PeftModel

        name = _adapter_name(files.model_dir)
        try:
            model = PeftModel.from_pretrained(base, str(files.model_dir), adapter_name=name)
        except Exception as exc:
            raise CheckpointError(f"cannot load adapter: {one_line(exc)}",
                                  model_id) from exc
        self._adapter_name = name
        return model.to(self._device).eval()

    def _swap_adapter(self, files: CheckpointFiles, model_id: str) -> None:
        """Replace the loaded adapter by another adapter of the same base model (the base stays)."""
        name = _adapter_name(files.model_dir)
        if name == self._adapter_name:
            return
        try:
            self._model.load_adapter(str(files.model_dir), adapter_name=name)
        except Exception as exc:
            raise CheckpointError(f"cannot load adapter: {one_line(exc)}",
                                  model_id) from exc
        self._model.set_adapter(name)
        if self._adapter_name is not None:
            self._model.delete_adapter(self._adapter_name)
        self._adapter_name = name
        self._model.to(self._device).eval()
        if files.tokenizer_dir != self._files.tokenizer_dir:
            self._tokenizer = self._load_tokenizer(files.tokenizer_dir, model_id)

    def _load_tokenizer(self, folder: Path, model_id: str):
        from transformers import AutoTokenizer

        check_tokenizer(folder, model_id)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
        except Exception as exc:
            raise CheckpointError(f"cannot load tokenizer: {one_line(exc)}",
                                  model_id) from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer


@dataclass
class _Shell:
    """The fast path's kept module: its architecture key, the folder whose weights it holds (None while
    incomplete), and the weights a merged LoRA adapter changed (restored before the next checkpoint)."""

    module: Any
    key: str
    source: Path | None
    merged: frozenset = frozenset()


def _weak_refs(module, keep=None) -> list[weakref.ref]:
    """Weak references to `module` and its tensors (parameters and buffers), except those of `keep` (a module
    that stays loaded): when all of them are dead, the weights are freed."""
    if module is None:
        return []
    kept = {id(t) for t in itertools.chain(keep.parameters(), keep.buffers())} if keep is not None else set()
    refs = [weakref.ref(t) for t in itertools.chain(module.parameters(), module.buffers()) if id(t) not in kept]
    if module is not keep:
        refs.append(weakref.ref(module))
    return refs


def _adapter_name(folder: Path) -> str:
    # peft adapter names become module attribute keys: keep them simple and unique per folder.
    return "adapter_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]


