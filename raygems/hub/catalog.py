"""What a local hub server serves: model objects in the hub API's schema and repository files.

A `Catalog` answers two questions for `raygems.hub.serve.HubServer`: the model object of a repository
(what `GET /api/models/{id}` returns, without `siblings`) and the repository's files. `DirectoryCatalog`
reads a directory in the local hub layout (docs/architecture.md) through `LocalTreeSource`, so cards,
`.raygems_hub.json` and the relation inference are the ones the local tree source uses; the tests add a
catalog of recorded JSON (tests/hub/recorded_hub.py).

File identities follow git and git-LFS as the hub uses them: every file has a git blob id; files the hub
keeps in LFS (`stored_in_lfs`: the hub's default `.gitattributes` patterns, or over 10 MiB) also have a
sha256, their blob id is that of the LFS pointer file, and their ETag is the sha256. Digests are computed
on first use and cached while the file's size and modification time stay the same.
"""
from __future__ import annotations

import fnmatch
import hashlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Hashable

from raygems.hub.cards import ModelCard, ModelCardError
from raygems.hub.sources import LOCAL_HUB_FILE, LocalTreeSource

#: Patterns of the hub's default `.gitattributes` (files stored with git-LFS in a new repository).
LFS_PATTERNS = ("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
                "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
                "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
                "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.gguf")

#: The hub refuses regular git files above this size: larger files are in LFS whatever their name.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository: its size, how to read it, and a key that changes with its content."""

    path: str
    size: int
    open: Callable[[], BinaryIO]
    version: Hashable


@dataclass(frozen=True)
class FileDigests:
    """A file's identities as the hub reports them."""

    blob_id: str                 # git blob id (of the LFS pointer file, for LFS files)
    sha256: str | None = None    # LFS files only
    pointer_size: int | None = None

    @property
    def etag(self) -> str:
        """The hub's ETag of a download: the sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 or self.blob_id


class Catalog(ABC):
    """The repositories a hub server serves."""

    @abstractmethod
    def model_ids(self) -> list[str]:
        """Every repository id, in listing order."""

    @abstractmethod
    def model(self, model_id: str) -> dict[str, Any] | None:
        """The model object of `model_id` in the hub API schema (with `id` and `sha`, no `siblings`), or
        None when there is no such repository. Callers must not modify it."""

    @abstractmethod
    def files(self, model_id: str) -> dict[str, RepoFile]:
        """The repository's files at its current revision, by path in the repository."""


def stored_in_lfs(path: str, size: int) -> bool:
    """Whether the hub would keep this file in git-LFS (see the module docstring)."""
    name = path.rsplit("/", 1)[-1]
    return size > LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p)
                                            for p in LFS_PATTERNS)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The text git keeps in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class DigestCache:
    """File digests, computed once per file version (reading the file once)."""

    def __init__(self) -> None:
        self._known: dict[Hashable, FileDigests] = {}
        self._lock = threading.Lock()

    def __call__(self, file: RepoFile) -> FileDigests:
        with self._lock:
            known = self._known.get(file.version)
        if known is None:
            known = _digests(file)
            with self._lock:
                self._known[file.version] = known
        return known


def _digests(file: RepoFile) -> FileDigests:
    lfs = stored_in_lfs(file.path, file.size)
    blob = hashlib.sha1(b"blob %d\0" % file.size)
    sha256 = hashlib.sha256()
    with file.open() as handle:
        while chunk := handle.read(_HASH_CHUNK):
            (sha256 if lfs else blob).update(chunk)
    if not lfs:
        return FileDigests(blob_id=blob.hexdigest())
    pointer = lfs_pointer(sha256.hexdigest(), file.size)
    return FileDigests(blob_id=git_blob_id(pointer), sha256=sha256.hexdigest(), pointer_size=len(pointer))


# ---------------------------------------------------------------------------------------------- directory
class DirectoryCatalog(Catalog):
    """Repositories from a directory in the local hub layout.

    Model objects are built once, when the catalog is made, from the cards and `.raygems_hub.json` files
    (`LocalTreeSource`): `sha` is the recorded revision (or, when none is recorded, a digest of the file
    names, sizes and modification times), `tags` hold the card's tags, its library and pipeline tag,
    `license:<license>`, and the hub's `base_model:<parent>` and `base_model:<relation>:<parent>` tags;
    `childrenModelCount` counts the models listed under this one by LocalTreeSource. A folder whose metadata
    cannot be read is served with what can (`unreadable()` names them and why). Files are listed from disk at each
    request: everything in the model's folder except `.raygems_hub.json` and hidden folders (`.git`, ...).
    """

    def __init__(self, root: str | Path) -> None:
        self.source = LocalTreeSource(root)
        self.root = self.source.root
        self._models = {model_id: self._model_object(model_id) for model_id in self.source.model_ids()}

    def model_ids(self) -> list[str]:
        return list(self._models)

    def model(self, model_id: str) -> dict[str, Any] | None:
        return self._models.get(model_id)

    def files(self, model_id: str) -> dict[str, RepoFile]:
        folder = self.source.folder(model_id)
        files: dict[str, RepoFile] = {}
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if relative == LOCAL_HUB_FILE or any(part.startswith(".") for part in relative.split("/")[:-1]):
                continue
            if not path.is_file():
                continue
            stat = path.stat()
            files[relative] = RepoFile(relative, stat.st_size, lambda path=path: path.open("rb"),
                                       version=(str(path), stat.st_size, stat.st_mtime_ns))
        return files

    def unreadable(self) -> dict[str, str]:
        """model_id -> "<file>: <reason>" for the models whose metadata could not be read (served with what
        could: see LocalTreeSource)."""
        return {m: reason for m in self.model_ids() if (reason := self.source.model(m).unreadable)}

    def _model_object(self, model_id: str) -> dict[str, Any]:
        record = self.source.model(model_id)
        try:
            card = self.source.model_card(model_id)
        except ModelCardError:              # served without card data; its base_model lines still give tags
            card = ModelCard(model_id=model_id)
        relation = self.source.relation(model_id)
        tags = [record.library_name, *card.tags, record.pipeline_tag]
        license_name = card.metadata.get("license")
        if license_name:
            tags.append(f"license:{license_name}")
        for parent in self.source.base_models(model_id):
            tags += [f"base_model:{parent}", f"base_model:{relation}:{parent}"]
        model: dict[str, Any] = {
            "_id": hashlib.sha1(model_id.encode()).hexdigest()[:24],
            "id": model_id,
            "modelId": model_id,
            "author": model_id.split("/")[0],
            "sha": record.revision if record.revision != "main" else self._stat_revision(model_id),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": record.downloads,
            "likes": record.likes,
            "tags": list(dict.fromkeys(t for t in tags if t)),
            "pipeline_tag": record.pipeline_tag,
            "library_name": record.library_name,
            "childrenModelCount": int(record.extra.get("children_count") or 0),
            "cardData": card.metadata,
        }
        if record.created_at:
            model["createdAt"] = hub_timestamp(record.created_at)
        return model

    def _stat_revision(self, model_id: str) -> str:
        digest = hashlib.sha1()
        for file in self.files(model_id).values():
            digest.update(f"{file.path}\0{file.size}\0{file.version[2]}\n".encode())
        return digest.hexdigest()


def hub_timestamp(value: str) -> str:
    """An ISO 8601 time as the hub writes it (UTC, milliseconds, `Z`); a value that is not ISO 8601 is kept."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


__all__ = ["Catalog", "DirectoryCatalog", "RepoFile", "FileDigests", "DigestCache", "stored_in_lfs",
           "git_blob_id", "lfs_pointer", "hub_timestamp", "LFS_PATTERNS", "LFS_SIZE_THRESHOLD"]
