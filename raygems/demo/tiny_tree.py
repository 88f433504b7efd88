"""The tiny tree: a real model tree small enough to ship inside the package, for the demo and the tests.

The weights were trained once by `raygems.demo.builder` and are shipped in `raygems/demo/tiny_tree_files/`
(about 6 MB). They are shipped rather than trained on each machine because short training runs land in
different places on different CPUs (the float kernels differ between AMD and Intel): with shipped weights the
quality ladder is the same everywhere, up to rounding in greedy decoding.

`install_tiny_tree(root)` writes the tree in the local hub layout (docs/architecture.md) in well under a
second:

* 18 models: the root base (`tiny-org/tiny-base`, most downloads, far from the best), its official instruct
  version, community fine-tunes along the quality ladder, the hidden gem (`quietmath/tiny-arith-pro`, best on
  toy_arith, a dozen downloads), a toy_choice specialist, depth-2 fine-tunes, a merge, a ruined fine-tune,
  three LoRA adapters (their `adapter_config.json` names the base by hub id, as on the hub; the base is found
  in the same local layout), and four broken uploads, one per failure the backends must report: a missing
  tensor, a corrupt (truncated) safetensors file, an architecture transformers does not know, no tokenizer;
* a model card per model (README.md with YAML front matter: base_model, base_model_relation, pipeline_tag,
  library_name, tags) and `.raygems_hub.json` (downloads, likes, created_at, revision) as on the hub.

A second call finds the tree in place (ROOT/.tiny_tree.json records what was installed) and returns at once.

    tree = install_tiny_tree()              # ~/.cache/raygems/tiny-tree (or $RAYGEMS_CACHE/tiny-tree)
    tree.popular_base, tree.hidden_gem, tree.broken
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raygems.demo.tree_spec import (
    BASE,
    BROKEN_FAILURES,
    CHOICE_SPECIALIST,
    GEM,
    INSTRUCT,
    MISSING_TENSOR,
    UNKNOWN_MODEL_TYPE,
    ModelSpec,
    TinyTreeConfig,
    tree_specs,
)
from raygems.hub.types import ModelRecord

#: The weights and files the builder made, shipped with the package.
SHIPPED_FILES = Path(__file__).resolve().with_name("tiny_tree_files")
#: Bump when the installed layout changes (invalidates installed trees).
INSTALLER_VERSION = "1"
MANIFEST = ".tiny_tree.json"            # in an installed tree
FILES_MANIFEST = "MANIFEST.json"         # in a folder of built files
LOCAL_HUB_FILE = ".raygems_hub.json"
LOCK_FILE = ".install.lock"
#: Files shared by every full model (one copy in the built files' `common/` folder).
COMMON_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "chat_template.jinja", "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json")
#: Sources whose weights are built (and shipped); the broken copies are derived when installing.
BUILT_SOURCES = ("main", "finetune", "lora", "noise", "merge")


def default_tiny_tree_root() -> Path:
    """~/.cache/raygems/tiny-tree, or $RAYGEMS_CACHE/tiny-tree."""
    cache = os.environ.get("RAYGEMS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "raygems")
    return Path(cache) / "tiny-tree"


@dataclass(frozen=True)
class TinyTree:
    """An installed tiny tree: where it is, its models, and what it was built to contain."""

    root: Path
    records: tuple[ModelRecord, ...]
    popular_base: str                     # the root base: most downloads, not the best
    instruct: str                         # the official instruct version
    hidden_gem: str                       # built to be the best on toy_arith, with few downloads
    expected_best: dict[str, str]         # task -> model built to be the best on it
    broken: dict[str, str]                # model id -> start of the CheckpointError reason it must give
    built_on: dict[str, Any]              # where and with what the shipped weights were trained
    accuracy_at_build: dict[str, dict[str, float]]   # model id -> task -> accuracy measured when built
    key: str

    @property
    def model_ids(self) -> list[str]:
        return [r.model_id for r in self.records]

    def record(self, model_id: str) -> ModelRecord:
        for record in self.records:
            if record.model_id == model_id:
                return record
        raise KeyError(f"model {model_id!r} is not in the tiny tree at {self.root}")

    def working(self) -> list[ModelRecord]:
        """The models that load and run (everything but the broken checkpoints)."""
        return [r for r in self.records if r.model_id not in self.broken]

    def adapters(self) -> list[ModelRecord]:
        return [r for r in self.records if r.kind == "adapter"]


def install_tiny_tree(root: str | os.PathLike | None = None, *, force: bool = False,
                      files: str | os.PathLike | None = None) -> TinyTree:
    """Write the tiny tree under `root` (default `default_tiny_tree_root()`), or return the one already there.

    `files`: a folder of built files (default: the shipped ones; `python -m raygems.demo.builder build` makes
    others). `force` rewrites the tree even when it is in place. A folder that exists, is not empty and holds
    no tiny tree is refused (nothing is deleted that this installer did not write).
    """
    files = Path(files) if files is not None else SHIPPED_FILES
    built = read_files_manifest(files)
    root = (Path(root) if root is not None else default_tiny_tree_root()).expanduser().resolve()
    key = _install_key(built, root)
    installed = None if force else _load_installed(root, key)
    if installed is not None:
        return installed
    _check_ours(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        installed = None if force else _load_installed(root, key)  # installed by another process meanwhile
        if installed is not None:
            return installed
        _clear(root)
        return _install(root, files, built, key)


def read_files_manifest(files: Path) -> dict[str, Any]:
    """The MANIFEST.json of a folder of built files, with every listed file checked against its sha256."""
    path = files / FILES_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{files} holds no built tiny-tree files ({FILES_MANIFEST} is missing)")
    built = json.loads(path.read_text(encoding="utf-8"))
    for name, digest in built["files"].items():
        file = files / name
        if not file.is_file() or _sha256(file) != digest:
            raise ValueError(f"tiny-tree file {file} is missing or damaged (sha256 differs from {FILES_MANIFEST}); "
                             f"reinstall raygems or rebuild the files with `python -m raygems.demo.builder`")
    return built


def _install_key(built: dict[str, Any], root: Path) -> str:
    payload = json.dumps({"installer": INSTALLER_VERSION, "files": built["files"], "root": str(root)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_installed(root: Path, key: str) -> TinyTree | None:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key:
        return None
    records = tuple(ModelRecord.from_row(row) for row in manifest["records"])
    if not all(r.path and Path(r.path).is_dir() for r in records):
        return None
    return _tree(root, records, manifest["built_on"], manifest["accuracy_at_build"], key)


def _tree(root: Path, records: tuple[ModelRecord, ...], built_on: dict, accuracy: dict, key: str) -> TinyTree:
    return TinyTree(root=root, records=records, popular_base=BASE, instruct=INSTRUCT, hidden_gem=GEM,
                    expected_best={"toy_arith": GEM, "toy_choice": CHOICE_SPECIALIST}, broken=dict(BROKEN_FAILURES),
                    built_on=dict(built_on), accuracy_at_build=dict(accuracy), key=key)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One installer at a time per root (tests in two environments may install concurrently)."""
    import fcntl

    with open(root / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_ours(root: Path) -> None:
    """Refuse a folder that is not empty and was not written by this installer."""
    if not root.is_dir():
        return
    entries = [p for p in root.iterdir() if p.name != LOCK_FILE]
    if entries and not (root / MANIFEST).exists() and not (root / ".installing").exists():
        raise ValueError(f"{root} is not empty and holds no tiny tree: refusing to overwrite it")


def _clear(root: Path) -> None:
    _check_ours(root)
    entries = [p for p in root.iterdir() if p.name != LOCK_FILE]
    (root / ".installing").touch()
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != ".installing":
            path.unlink()


# ---------------------------------------------------------------------------------------------- installing
def _install(root: Path, files: Path, built: dict[str, Any], key: str) -> TinyTree:
    specs = tree_specs(TinyTreeConfig.from_dict(built["config"]))
    by_id = {spec.model_id: spec for spec in specs}
    for spec in specs:
        if spec.source[0] in BUILT_SOURCES:
            _copy_built(files, root / spec.model_id, spec)
    for spec in specs:
        if spec.source[0] == "broken":
            _, copy_of, failure = spec.source
            _break(root / copy_of, root / spec.model_id, failure)
    records = []
    for spec in specs:
        folder = root / spec.model_id
        (folder / "README.md").write_text(model_card(spec), encoding="utf-8")
        revision = folder_revision(folder)
        hub = {"downloads": spec.downloads, "likes": spec.likes, "created_at": spec.created_at, "revision": revision}
        (folder / LOCAL_HUB_FILE).write_text(json.dumps(hub, indent=2) + "\n", encoding="utf-8")
        records.append(ModelRecord(
            model_id=spec.model_id, kind=spec.kind, base_model=spec.parent, revision=revision,
            downloads=spec.downloads, likes=spec.likes, created_at=spec.created_at,
            pipeline_tag="text-generation", library_name=spec.library, depth=_depth(by_id, spec.model_id),
            is_base=spec.is_base, path=str(folder),
            extra={"role": spec.role, "intended_failure": BROKEN_FAILURES.get(spec.model_id)}))
    tree = _tree(root, tuple(records), built["built_on"], built.get("accuracy_at_build", {}), key)
    manifest = {
        "key": key, "installer_version": INSTALLER_VERSION, "root": str(root),
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "built_on": tree.built_on, "accuracy_at_build": tree.accuracy_at_build,
        "records": [{**r.to_row(), "role": r.extra.get("role")} for r in records],
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (root / ".installing").unlink(missing_ok=True)
    return tree


def _copy_built(files: Path, folder: Path, spec: ModelSpec) -> None:
    """A built model's folder: its own weights (and adapter config), plus the shared files for a full model."""
    folder.mkdir(parents=True, exist_ok=True)
    own = files / "models" / spec.model_id
    for path in sorted(own.iterdir()):
        shutil.copyfile(path, folder / path.name)
    if spec.kind != "adapter":
        for name in COMMON_FILES:
            if (files / "common" / name).is_file():
                shutil.copyfile(files / "common" / name, folder / name)


def _depth(by_id: dict[str, ModelSpec], model_id: str) -> int:
    depth, parent = 0, by_id[model_id].parent
    while parent is not None:
        depth, parent = depth + 1, by_id[parent].parent
    return depth


def _break(source: Path, target: Path, failure: str) -> None:
    """A copy of the working checkpoint `source` at `target`, broken in the way `failure` names."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md", LOCAL_HUB_FILE))
    weights = target / "model.safetensors"
    if failure == "missing_tensor":
        from safetensors.numpy import load_file, save_file   # the same bytes as safetensors.torch, without torch

        tensors = load_file(str(weights))
        del tensors[MISSING_TENSOR]
        save_file(tensors, str(weights), metadata={"format": "pt"})
    elif failure == "corrupt":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])  # an interrupted upload
    elif failure == "unsupported_architecture":
        config_path = target / "config.json"
        config = json.loads(config_path.read_text())
        config["model_type"] = UNKNOWN_MODEL_TYPE
        config["architectures"] = ["TinyFooForCausalLM"]
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    elif failure == "missing_tokenizer":
        for name in TOKENIZER_FILES:
            (target / name).unlink(missing_ok=True)
    else:  # pragma: no cover - a typo in tree_specs
        raise ValueError(f"unknown failure {failure!r}")


def model_card(spec: ModelSpec) -> str:
    """README.md as on the hub: YAML front matter (base model and relation, pipeline, library, tags) and text."""
    import yaml

    meta: dict[str, Any] = {}
    if spec.source[0] == "merge":
        meta["base_model"] = [spec.source[1], spec.source[2]]
        meta["base_model_relation"] = "merge"
    elif spec.parent is not None:
        meta["base_model"] = spec.parent
        meta["base_model_relation"] = "adapter" if spec.kind == "adapter" else "finetune"
    meta.update({"pipeline_tag": "text-generation", "library_name": spec.library, "license": "apache-2.0",
                 "tags": ["raygems-tiny-tree", *spec.tags]})
    front = yaml.safe_dump(meta, sort_keys=False).strip()
    return f"---\n{front}\n---\n\n# {spec.model_id}\n\n{spec.description}\n"


def folder_revision(folder: Path) -> str:
    """A commit-like id of the folder's contents (changes whenever a file changes)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LOCAL_HUB_FILE):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
