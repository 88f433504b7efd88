"""Swap a checkpoint's weights into a module that is already built (and compiled) for its architecture.

Why: a search evaluates hundreds of checkpoints of ONE architecture, and the fast GPU path (static KV cache,
compiled decoding; `raygems.backends.static_decoding`) costs 40-60 s of compilation per module. Copying
the next checkpoint's tensors into the existing parameters (`param.copy_(tensor)` under `no_grad`) keeps
every parameter's object, shape, dtype and storage address, so the compiled graphs (and CUDA graphs, which
captured those addresses) stay valid: the compilation is paid once per architecture, per model actor.
Measured on an H100 (FIELD-NOTES.md): 0.5 s to swap a 0.5B checkpoint, next `generate` without
recompilation, outputs following the new weights.

What may be swapped (`architecture_key`): checkpoints whose config.json is identical once the keys that
do not change the forward pass are dropped (name, versions, dtype, token ids used only by generation).
Before any tensor is copied, `plan_copy` checks that the stored tensors cover every parameter and
persistent buffer with the right shape; a checkpoint with a missing tensor is refused with the same
`CheckpointError` reason a full load gives, and the module is left untouched.

LoRA adapters (`read_lora`, `merge_lora`): the base's weights are copied in, then each adapted weight gets
`W + scaling * (B @ A)` (peft's merge, computed in float32). Only plain LoRA on linear layers is merged
this way; DoRA, bias training, `modules_to_save`, embedding LoRA and other variants return None from
`read_lora`, and the backend loads those with peft instead (no swap).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raygems.backends.base import CheckpointError
from raygems.backends.checkpoint import CheckpointFiles, missing_tensor_reason, weight_files

#: config.json keys that do not change what the module computes.
IGNORED_CONFIG_KEYS = frozenset({
    "_name_or_path", "_commit_hash", "transformers_version", "torch_dtype", "dtype", "use_cache",
    "bos_token_id", "eos_token_id", "pad_token_id", "architectures_version",
})

#: LoRA config fields that select a variant this module does not merge (truthy value -> not supported).
UNSUPPORTED_LORA_FIELDS = ("use_dora", "lora_bias", "use_qalora", "use_bdlora", "alora_invocation_tokens",
                           "arrow_config", "kasa_config", "monteclora_config", "velora_config", "megatron_config",
                           "layer_replication", "modules_to_save", "target_parameters", "trainable_token_indices")
#: LoRA config fields that only concern training or initialisation (ignored).
INIT_ONLY_LORA_FIELDS = ("loftq_config", "eva_config", "corda_config", "lora_ga_config")
_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")


def architecture_key(config: dict[str, Any]) -> str:
    """A string equal for two config.json dicts exactly when one module can run both checkpoints."""
    kept = {key: value for key, value in config.items() if key not in IGNORED_CONFIG_KEYS}
    return json.dumps(kept, sort_keys=True, default=str)


@dataclass(frozen=True)
class CopyPlan:
    """Which stored tensor goes into which parameter: {parameter name: (file, stored tensor name)}."""

    folder: Path
    sources: dict[str, tuple[Path, str]]

    def restricted(self, names: set[str]) -> "CopyPlan":
        return CopyPlan(self.folder, {k: v for k, v in self.sources.items() if k in names})


def _targets(module) -> dict[int, list[str]]:
    """Every parameter and persistent buffer of `module`, grouped by tensor (tied weights share one entry),
    each group listing its names (the first is the canonical one)."""
    groups: dict[int, list[str]] = {}
    for name, tensor in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(tensor), []).append(name)
    persistent = set(module.state_dict().keys())
    for name, tensor in module.named_buffers(remove_duplicate=False):
        if name in persistent:
            groups.setdefault(id(tensor), []).append(name)
    return groups


def _stored_shapes(folder: Path, model_id: str | None) -> dict[str, tuple[Path, tuple[int, ...]]]:
    from safetensors import safe_open

    stored: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    stored[key] = (path, tuple(handle.get_slice(key).get_shape()))
        except Exception as exc:
            raise CheckpointError(f"corrupt safetensors file {path.name}", model_id) from exc
    return stored


def plan_copy(module, folder: Path, model_id: str | None = None) -> CopyPlan | None:
    """How to copy the checkpoint in `folder` into `module`; None when it does not fit (no safetensors
    weights, or a tensor of another shape: load it fully instead). CheckpointError when a tensor the
    architecture needs is missing (the reason a full load gives) or a file is corrupt."""
    stored = _stored_shapes(folder, model_id)
    if not stored:
        return None
    named = dict(module.named_parameters(remove_duplicate=False))
    named.update(module.named_buffers(remove_duplicate=False))
    sources: dict[str, tuple[Path, str]] = {}
    missing: list[str] = []
    for names in _targets(module).values():
        present = [name for name in names if name in stored]
        if not present:
            missing.append(names[0])
            continue
        path, shape = stored[present[0]]
        if shape != tuple(named[names[0]].shape):
            return None
        sources[names[0]] = (path, present[0])
    if missing:
        raise CheckpointError(missing_tensor_reason(sorted(missing)), model_id)
    return CopyPlan(folder, sources)


def copy_weights(module, plan: CopyPlan) -> int:
    """Copy the planned tensors into `module`'s tensors in place (casting to their dtype, moving to their
    device); returns the bytes written. Storage addresses are unchanged."""
    import torch
    from safetensors import safe_open

    tensors = dict(module.named_parameters(remove_duplicate=False))
    tensors.update(module.named_buffers(remove_duplicate=False))
    by_file: dict[Path, list[tuple[str, str]]] = {}
    for target, (path, stored) in plan.sources.items():
        by_file.setdefault(path, []).append((target, stored))
    written = 0
    with torch.no_grad():
        for path, pairs in by_file.items():
            with safe_open(str(path), framework="pt") as handle:
                for target, stored in pairs:
                    destination = tensors[target]
                    destination.copy_(handle.get_tensor(stored))
                    written += destination.numel() * destination.element_size()
    return written


# -- LoRA --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoraDelta:
    """One adapted weight: `weight += scaling * transpose(B @ A)`."""

    parameter: str
    lora_a: Any
    lora_b: Any
    scaling: float
    fan_in_fan_out: bool


@dataclass(frozen=True)
class LoraUpdate:
    """A plain LoRA adapter, ready to merge into its base's weights."""

    folder: Path
    deltas: tuple[LoraDelta, ...] = field(default_factory=tuple)

    @property
    def parameters(self) -> set[str]:
        return {delta.parameter for delta in self.deltas}


def _pattern_value(patterns: dict[str, Any], module_name: str, default):
    """peft's `get_pattern_key`: the first pattern matching the end of the module name."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module_name):
            return value
    return default


def lora_support(adapter_config: dict[str, Any]) -> str | None:
    """Why this adapter cannot be merged here (None when it can)."""
    if adapter_config.get("peft_type") != "LORA":
        return f"peft type {adapter_config.get('peft_type')!r} is not LoRA"
    if adapter_config.get("bias", "none") != "none":
        return f"bias={adapter_config.get('bias')!r}"
    for name in UNSUPPORTED_LORA_FIELDS:
        if adapter_config.get(name):
            return f"{name} is set"
    for name, value in adapter_config.items():
        if name.endswith("_config") and name not in INIT_ONLY_LORA_FIELDS and value:
            return f"{name} is set"
    return None


def read_lora(files: CheckpointFiles, module) -> LoraUpdate | None:
    """The adapter in `files` as merge-ready deltas for `module` (built for its base), or None when it is
    not plain LoRA on `module`'s linear weights (the caller then uses peft)."""
    from safetensors.torch import load_file

    config = files.adapter_config or {}
    if lora_support(config) is not None:
        return None
    paths = sorted(files.model_dir.glob("adapter_model*.safetensors"))
    if not paths:
        return None                                  # legacy adapter_model.bin: peft loads it
    stored: dict[str, Any] = {}
    for path in paths:
        try:
            stored.update(load_file(str(path)))
        except Exception as exc:
            raise CheckpointError(f"corrupt safetensors file {path.name}", None) from exc
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in stored.items():
        match = _LORA_KEY.match(key)
        if match is None:
            return None                              # embeddings, magnitudes, saved modules: not plain LoRA
        pairs.setdefault(match["module"], {})[match["which"]] = tensor
    parameters = dict(module.named_parameters())
    rank, alpha = config.get("r", 8), config.get("lora_alpha", 8)
    deltas = []
    for module_name, pair in sorted(pairs.items()):
        weight = parameters.get(f"{module_name}.weight")
        if weight is None or weight.dim() != 2 or set(pair) != {"A", "B"}:
            return None
        lora_a, lora_b = pair["A"], pair["B"]
        r = _pattern_value(config.get("rank_pattern") or {}, module_name, rank)
        a = _pattern_value(config.get("alpha_pattern") or {}, module_name, alpha)
        fan_in_fan_out = bool(config.get("fan_in_fan_out", False))
        product_shape = (lora_b.shape[0], lora_a.shape[1])
        expected = tuple(weight.shape[::-1]) if fan_in_fan_out else tuple(weight.shape)
        if lora_a.shape[0] != r or lora_b.shape[1] != r or product_shape != expected:
            return None
        scaling = a / math.sqrt(r) if config.get("use_rslora") else a / r
        deltas.append(LoraDelta(f"{module_name}.weight", lora_a, lora_b, scaling, fan_in_fan_out))
    if not deltas:
        return None
    return LoraUpdate(files.model_dir, tuple(deltas))


def merge_lora(module, update: LoraUpdate) -> None:
    """Add each delta to its weight in place (computed in float32, stored in the weight's dtype)."""
    import torch

    parameters = dict(module.named_parameters())
    with torch.no_grad():
        for delta in update.deltas:
            weight = parameters[delta.parameter]
            lora_a = delta.lora_a.to(device=weight.device, dtype=torch.float32)
            lora_b = delta.lora_b.to(device=weight.device, dtype=torch.float32)
            product = lora_b @ lora_a
            if delta.fan_in_fan_out:
                product = product.T
            weight.copy_((weight.float() + product * delta.scaling).to(weight.dtype))
