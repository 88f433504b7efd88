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
"""
from __future__ import annotations

import gc
import hashlib
import logging
import time
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
from raygems.hub.types import ModelRecord

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TransformersSettings:
    """How the transformers backend runs.

    device: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
    dtype: "auto" (bfloat16 on a GPU that supports it, else float32), "float32", "bfloat16", "float16".
    batch_size: prompts per `generate` call.
    use_stop_strings: let `generate` end rows at a stop string (the text is cut afterwards either way).
    """

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    use_stop_strings: bool = True

    def __post_init__(self) -> None:
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")


class TransformersBackend(Backend):
    """Batched greedy generation with transformers; see the module docstring for the design."""

    name = "transformers"

    def __init__(self, device: str = "auto", dtype: str = "auto", batch_size: int = 32,
                 use_stop_strings: bool = True) -> None:
        self.config = TransformersSettings(device=device, dtype=dtype, batch_size=batch_size,
                                           use_stop_strings=use_stop_strings)
        self._model = None
        self._tokenizer = None
        self._record: ModelRecord | None = None
        self._files: CheckpointFiles | None = None
        self._adapter_name: str | None = None
        self._device = None
        self._dtype = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def load(self, model: ModelRecord) -> None:
        files = locate(model)
        model_id = model.model_id
        check_tokenizer(files.tokenizer_dir, model_id)
        if files.is_adapter:
            check_adapter(files, model_id)
            if self._files is not None and self._files.is_adapter and self._files.base_dir == files.base_dir:
                self._swap_adapter(files, model_id)
                self._record, self._files = model, files
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
            self.unload()
            raise
        self._model, self._record, self._files = base, model, files

    def unload(self) -> None:
        self._model = None
        self._tokenizer = None
        self._record = None
        self._files = None
        self._adapter_name = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

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
        }
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
        encoded = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        encoded = {k: v.to(self._device) for k, v in encoded.items()}
        generation_config = self._generation_config(max_new_tokens)
        if stop and self.config.use_stop_strings:
            generation_config.stop_strings = list(stop)
        try:
            with torch.inference_mode():
                output = self._model.generate(**encoded, generation_config=generation_config, tokenizer=tokenizer)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            raise CheckpointError(f"generation failed: {type(exc).__name__}: {_first_line(exc)}",
                                  self._record.model_id if self._record else None) from exc
        prompt_width = encoded["input_ids"].shape[1]
        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, prompt_width:].tolist()
        seconds = (time.perf_counter() - started) / len(prompts)
        eos_ids = self._eos_ids()
        return [self._finish(row, n_prompt, stop, eos_ids, seconds)
                for row, n_prompt in zip(new_tokens, prompt_tokens)]

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
        except ValueError as exc:
            raise CheckpointError(f"unsupported architecture: {_first_line(exc)}", model_id) from exc
        except Exception as exc:
            raise CheckpointError(f"cannot load weights: {type(exc).__name__}: {_first_line(exc)}",
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
            raise CheckpointError(f"cannot load adapter: {type(exc).__name__}: {_first_line(exc)}",
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
            raise CheckpointError(f"cannot load adapter: {type(exc).__name__}: {_first_line(exc)}",
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
            raise CheckpointError(f"cannot load tokenizer: {type(exc).__name__}: {_first_line(exc)}",
                                  model_id) from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer


def _adapter_name(folder: Path) -> str:
    # peft adapter names become module attribute keys: keep them simple and unique per folder.
    return "adapter_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
