"""Comparing two folders of built tiny-tree files: the same kind of tree, and how far their weights are apart.

A build on another machine, or after a change to the builder, must give the same kind of tree as the shipped
files (the same models, files, tensor names, shapes and dtypes, the same configs and tokenizer); its trained
values may differ (float kernels differ between CPUs), and `weight_differences` says by how much.
"""
from __future__ import annotations

import json
from pathlib import Path

from raygems.demo.tiny_tree import FILES_MANIFEST

#: Fields of a config file that name the library version that wrote it, not the model.
VERSION_FIELDS = ("transformers_version",)


def structure_differences(first: Path, second: Path) -> list[str]:
    """Every way in which two built-file folders differ other than in trained values (empty: none)."""
    a, b = _files(first), _files(second)
    problems = [f"only in {first}: {name}" for name in sorted(set(a) - set(b))]
    problems += [f"only in {second}: {name}" for name in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        left, right = first / name, second / name
        if name.endswith(".safetensors"):
            if _tensor_layout(left) != _tensor_layout(right):
                problems.append(f"{name}: tensor names, shapes or dtypes differ")
        elif name.endswith(".json"):
            if _config(left) != _config(right):
                problems.append(f"{name}: contents differ")
        elif left.read_bytes() != right.read_bytes():
            problems.append(f"{name}: contents differ")
    return problems


def weight_differences(first: Path, second: Path) -> dict[str, float]:
    """Per weights file present in both: the largest absolute difference of any value (0.0: identical)."""
    from safetensors.torch import load_file

    out = {}
    for name in sorted(set(_files(first)) & set(_files(second))):
        if not name.endswith(".safetensors"):
            continue
        left, right = load_file(str(first / name)), load_file(str(second / name))
        if set(left) != set(right):
            out[name] = float("inf")
            continue
        out[name] = max(float((left[k].double() - right[k].double()).abs().max()) if left[k].shape == right[k].shape
                        else float("inf") for k in left)
    return out


def _files(folder: Path) -> list[str]:
    return list(json.loads((folder / FILES_MANIFEST).read_text())["files"])


def _tensor_layout(path: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
                for name in handle.keys()}


def _config(path: Path) -> object:
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in VERSION_FIELDS}
    return data
