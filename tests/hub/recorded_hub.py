"""Recorded hub responses as a catalog for `raygems.hub.serve.HubServer` (test machinery).

`RecordedCatalog` holds model objects written in the hub API's schema (the JSON that `GET /api/models`
returns) and repository files kept in memory; the server answers from them as it answers from a local hub
directory, so the real `huggingface_hub` client code runs against hand-written data: URL building,
pagination, JSON parsing into `ModelInfo`, its own retries, the download cache, and (with the server's
`fail_next`) raygems' back-off.

Recorded layout (`RecordedCatalog.from_dir`): `models.json` (a list of model objects) and
`files/<org>/<name>/<path>` (repository files).
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

from raygems.hub.catalog import Catalog, RepoFile


class RecordedCatalog(Catalog):
    """Models from recorded hub JSON; files from memory.

    Parameters
    ----------
    models: model objects in the hub API schema (`id`, `sha`, `tags`, `downloads`, ...); `_id` and `sha`
        are made up from the id when missing.
    files: repo id -> {path in repo: bytes}.
    """

    def __init__(self, models: Sequence[dict[str, Any]], files: dict[str, dict[str, bytes]] | None = None) -> None:
        ids = [m.get("id") for m in models]
        if None in ids or len(set(ids)) != len(ids):
            raise ValueError("every recorded model needs a unique 'id'")
        self.models = {m["id"]: dict(m) for m in models}
        for model in self.models.values():
            model.setdefault("_id", hashlib.sha1(model["id"].encode()).hexdigest()[:24])
            model.setdefault("sha", hashlib.sha1(("sha:" + model["id"]).encode()).hexdigest())
        self.contents = {repo: dict(content) for repo, content in (files or {}).items()}

    @classmethod
    def from_dir(cls, directory: str | Path) -> "RecordedCatalog":
        directory = Path(directory)
        models = json.loads((directory / "models.json").read_text(encoding="utf-8"))
        files: dict[str, dict[str, bytes]] = {}
        files_root = directory / "files"
        if files_root.is_dir():
            for repo_dir in sorted(p for p in files_root.glob("*/*") if p.is_dir()):
                repo = f"{repo_dir.parent.name}/{repo_dir.name}"
                files[repo] = {p.relative_to(repo_dir).as_posix(): p.read_bytes()
                               for p in sorted(repo_dir.rglob("*")) if p.is_file()}
        return cls(models, files)

    def model_ids(self) -> list[str]:
        return list(self.models)

    def model(self, model_id: str) -> dict[str, Any] | None:
        return self.models.get(model_id)

    def files(self, model_id: str) -> dict[str, RepoFile]:
        return {path: RepoFile(path, len(data), lambda data=data: io.BytesIO(data),
                               version=("recorded", model_id, path))
                for path, data in sorted(self.contents.get(model_id, {}).items())}
