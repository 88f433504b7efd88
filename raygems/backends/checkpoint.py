"""Find a model's files and tell, cheaply and before any weights are loaded, why a checkpoint is broken.

Hub trees hold checkpoints that do not load: missing tensors, truncated or corrupt safetensors files,
architectures the inference library does not know, repositories without a tokenizer. The backends call
these checks first so that such a model fails fast with a short reason (`CheckpointError`) instead of a
long traceback, a silent random initialisation (transformers only *warns* about missing tensors), or a
crashed inference engine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raygems.backends.base import CheckpointError
from raygems.hub.types import ModelRecord

#: Files any one of which makes a folder hold a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class CheckpointFiles:
    """Where a model's files are. For an adapter, `base_dir` holds the base model it applies to."""

    model_dir: Path
    is_adapter: bool
    base_dir: Path | None = None
    adapter_config: dict[str, Any] | None = None

    @property
    def weights_dir(self) -> Path:
        """The folder with the full model's weights (the base for an adapter)."""
        return self.base_dir if self.is_adapter else self.model_dir  # type: ignore[return-value]

    @property
    def tokenizer_dir(self) -> Path:
        """The adapter's own tokenizer when it ships one, else the base model's."""
        if self.is_adapter and not has_tokenizer(self.model_dir):
            return self.base_dir  # type: ignore[return-value]
        return self.model_dir


def resolve_model_dir(model: ModelRecord) -> Path:
    """The local folder holding `model` (its `path`). Backends load local folders only: a hub checkpoint is
    downloaded first, by the one download path (`raygems.hub.download`, which the live search's fetch stage,
    `raygems.runtime.fetch`, drives), into the local hub layout (an adapter's base beside it)."""
    if not model.path:
        raise CheckpointError(f"no local copy of {model.model_id}: download it first (raygems.hub.download)",
                              model.model_id)
    folder = Path(model.path)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}", model.model_id)
    return folder


def read_adapter_config(folder: Path, model_id: str | None = None) -> dict[str, Any] | None:
    """The folder's adapter_config.json (None: not an adapter). CheckpointError when it cannot be read, is not a
    JSON object, or names no base model (a text in `base_model_name_or_path`)."""
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        return None
    try:
        adapter_config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt {ADAPTER_CONFIG}", model_id) from exc
    if not isinstance(adapter_config, dict):
        raise CheckpointError(f"corrupt {ADAPTER_CONFIG} (not a JSON object)", model_id)
    base = adapter_config.get("base_model_name_or_path")
    if not base or not isinstance(base, str):
        raise CheckpointError(f"{ADAPTER_CONFIG} names no base model", model_id)
    return adapter_config


def locate(model: ModelRecord) -> CheckpointFiles:
    """Resolve `model` to its folders; for a LoRA adapter also the base model's folder."""
    folder = resolve_model_dir(model)
    adapter_config = read_adapter_config(folder, model.model_id)
    if adapter_config is None:
        return CheckpointFiles(model_dir=folder, is_adapter=False)
    base = adapter_config["base_model_name_or_path"]
    base_dir = Path(base)
    if not base_dir.is_absolute() or not base_dir.is_dir():
        if names_a_local_base(base):
            raise CheckpointError(f"adapter base model not found: {base}", model.model_id)
        base_dir = _local_layout_base(folder, base)     # a hub id: the base sits beside the adapter
        if base_dir is None:
            raise CheckpointError(f"adapter base model not found: {base} (not beside the adapter in its local tree)",
                                  model.model_id)
    return CheckpointFiles(model_dir=folder, is_adapter=True, base_dir=base_dir, adapter_config=adapter_config)


def names_a_local_base(base: str) -> bool:
    """Whether an adapter's `base_model_name_or_path` is a local folder (absolute, or relative from '.'), not a hub
    model id."""
    return Path(base).is_absolute() or base.startswith(".")


def _local_layout_base(adapter_dir: Path, base_id: str) -> Path | None:
    """In the local hub layout (ROOT/<org>/<name>/, docs/architecture.md) an adapter names its base by hub id,
    as on the hub, and the base sits in the same ROOT: ROOT/<base org>/<base name>. None elsewhere."""
    parts = base_id.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    candidate = adapter_dir.resolve().parent.parent / parts[0] / parts[1]
    return candidate if (candidate / "config.json").is_file() else None


def has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_tokenizer(folder: Path, model_id: str | None = None) -> None:
    if not has_tokenizer(folder):
        raise CheckpointError("missing tokenizer", model_id)


def read_config(folder: Path, model_id: str | None = None) -> dict[str, Any]:
    """config.json as a dict; CheckpointError when it is missing, unreadable or of an unknown architecture."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError("missing config.json", model_id)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError("corrupt config.json", model_id) from exc
    model_type = config.get("model_type")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise CheckpointError(f"unsupported architecture {model_type!r}", model_id)
    return config


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a full model (single file or shards)."""
    files = sorted(folder.glob("*.safetensors"))
    return [f for f in files if not f.name.startswith("adapter_")]


def safetensors_keys(files: list[Path], model_id: str | None = None) -> set[str]:
    """Tensor names stored in `files`, reading only their headers. A file whose header cannot be parsed
    or whose tensors do not fit in the file is reported as corrupt."""
    from safetensors import safe_open

    keys: set[str] = set()
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                keys.update(handle.keys())
        except Exception as exc:
            raise CheckpointError(f"corrupt safetensors file {path.name}", model_id) from exc
    return keys


def check_weights(folder: Path, model_id: str | None = None) -> set[str]:
    """The stored tensor names; CheckpointError when there are no weights or a file is corrupt."""
    files = weight_files(folder)
    if not files:
        if any(folder.glob("pytorch_model*.bin")):
            return set()  # legacy pickled weights: checked when loaded
        raise CheckpointError("missing weights (no *.safetensors file)", model_id)
    return safetensors_keys(files, model_id)


def expected_tensor_names(folder: Path, model_id: str | None = None) -> set[str]:
    """Parameter and persistent-buffer names the architecture needs (tied copies counted once), from a
    model built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(folder))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except ValueError as exc:
        raise CheckpointError(f"unsupported architecture {_model_type(folder)!r}", model_id) from exc
    names = {name for name, _ in model.named_parameters(remove_duplicate=True)}
    persistent = set(model.state_dict().keys())
    names |= {name for name, _ in model.named_buffers() if name in persistent}
    return names


def check_full_checkpoint(folder: Path, model_id: str | None = None, *, check_tensors: bool = True) -> None:
    """Every cheap check for a full model: config and architecture, weights files, tokenizer, and (with
    `check_tensors`) that every tensor the architecture needs is stored."""
    read_config(folder, model_id)
    stored = check_weights(folder, model_id)
    check_tokenizer(folder, model_id)
    if check_tensors and stored:
        missing = sorted(expected_tensor_names(folder, model_id) - stored)
        if missing:
            raise CheckpointError(missing_tensor_reason(missing), model_id)


def check_adapter(files: CheckpointFiles, model_id: str | None = None) -> None:
    """An adapter's own files: its weights must parse and hold LoRA tensors."""
    folder = files.model_dir
    stored = safetensors_keys(sorted(folder.glob("adapter_model*.safetensors")), model_id) \
        if any(folder.glob("adapter_model*.safetensors")) else None
    if stored is None and not (folder / "adapter_model.bin").is_file():
        raise CheckpointError("missing adapter weights", model_id)
    if stored is not None and not stored:
        raise CheckpointError("adapter weights hold no tensor", model_id)


def missing_tensor_reason(missing: list[str]) -> str:
    more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"missing tensor {missing[0]}{more}"


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None
