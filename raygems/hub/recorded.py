"""A local stand-in for the Hugging Face hub API, serving recorded responses over real HTTP.

`RecordedHub` answers the few endpoints raygems uses, from model objects written in the hub API's
schema (the JSON that `GET /api/models` returns) and from repository files kept in a folder:

* `GET /api/models?filter=...&expand=...&sort=...&limit=...`: tag filtering, `expand` field selection,
  and pagination through a `Link: <...>; rel="next"` header, as the hub does;
* `GET /api/models/{repo_id}` and `/api/models/{repo_id}/revision/{rev}`: one model (with `siblings`);
* `GET /api/models/{repo_id}/tree/{rev}`: the repository's files (for `snapshot_download`);
* `HEAD`/`GET /{repo_id}/resolve/{rev}/{path}`: a file, with the `X-Repo-Commit` and `ETag` headers
  `hf_hub_download` reads.

Point `huggingface_hub.HfApi(endpoint=hub.endpoint)` at it and the real client code runs: URL building,
pagination, JSON parsing into `ModelInfo`, its own retries, the download cache. `fail_next` makes the next
requests to a path answer with error statuses (429, 503, ...) to exercise back-off. No network is used:
the server listens on 127.0.0.1 only.

Recorded layout (`RecordedHub.from_dir`): `models.json` (a list of model objects) and
`files/<org>/<name>/<path>` (repository files).
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

#: Fields `GET /api/models` returns when no `expand` is given.
DEFAULT_LIST_FIELDS = ("_id", "id", "likes", "downloads", "private", "tags", "pipeline_tag", "library_name",
                       "createdAt")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k in (name, f"{name}[]")]


class RecordedHub:
    """A threaded HTTP server on 127.0.0.1 that answers like the hub from recorded data.

    Parameters
    ----------
    models: model objects in the hub API schema (`id`, `sha`, `tags`, `downloads`, ...).
    files: repo id -> {path in repo: bytes}.
    page_size: models per listing page (small values exercise pagination).
    """

    def __init__(self, models: Sequence[dict[str, Any]], files: dict[str, dict[str, bytes]] | None = None,
                 page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        ids = [m.get("id") for m in models]
        if None in ids or len(set(ids)) != len(ids):
            raise ValueError("every recorded model needs a unique 'id'")
        self.models = {m["id"]: dict(m) for m in models}
        for model in self.models.values():
            model.setdefault("_id", hashlib.sha1(model["id"].encode()).hexdigest()[:24])
            model.setdefault("sha", hashlib.sha1(("sha:" + model["id"]).encode()).hexdigest())
        self.files = {repo: dict(content) for repo, content in (files or {}).items()}
        self.page_size = page_size
        self.requests: list[RecordedRequest] = []
        self._failures: list[tuple[str, bool, deque]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_dir(cls, directory: str | Path, page_size: int = 1000) -> "RecordedHub":
        directory = Path(directory)
        models = json.loads((directory / "models.json").read_text(encoding="utf-8"))
        files: dict[str, dict[str, bytes]] = {}
        files_root = directory / "files"
        if files_root.is_dir():
            for repo_dir in sorted(p for p in files_root.glob("*/*") if p.is_dir()):
                repo = f"{repo_dir.parent.name}/{repo_dir.name}"
                files[repo] = {p.relative_to(repo_dir).as_posix(): p.read_bytes()
                               for p in sorted(repo_dir.rglob("*")) if p.is_file()}
        return cls(models, files, page_size=page_size)

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("RecordedHub is not started: call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RecordedHub":
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="recorded-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "RecordedHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ fault injection and log
    def fail_next(self, path: str, statuses: Sequence[int], retry_after: float | None = None,
                  exact: bool = False) -> None:
        """The next len(statuses) requests whose path starts with `path` (equals it, if `exact`) get these
        statuses, with a `Retry-After` header when `retry_after` is given."""
        with self._lock:
            self._failures.append((path, exact, deque((int(s), retry_after) for s in statuses)))

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _take_failure(self, path: str) -> tuple[int, float | None] | None:
        with self._lock:
            for prefix, exact, queue in self._failures:
                if queue and (path == prefix if exact else path.startswith(prefix)):
                    return queue.popleft()
        return None

    def _log(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ answers: (status, headers, body)
    def answer(self, method: str, path: str, query: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
        failure = self._take_failure(path)
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return _json(status, {"error": f"recorded failure {status}"}, headers)
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if parts[:2] == ["api", "models"]:
            if len(parts) == 2:
                return self._list_models(query)
            return self._model_endpoint(parts[2:], query)
        if "resolve" in parts:
            return self._resolve(method, parts)
        return _json(404, {"error": f"no route for {path}"})

    def _split_repo(self, parts: list[str]) -> tuple[str | None, list[str]]:
        """('org/name' or legacy 'name', the remaining path parts)."""
        if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in self.models:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        if parts and parts[0] in self.models:
            return parts[0], parts[1:]
        return None, parts

    def _list_models(self, query: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
        get = lambda name: [v for k, v in query if k in (name, f"{name}[]")]  # noqa: E731
        filters = get("filter") + get("other")
        matches = [m for m in self.models.values() if all(_matches(m, f) for f in filters)]
        for author in get("author"):
            matches = [m for m in matches if m["id"].split("/")[0] == author]
        for search in get("search"):
            matches = [m for m in matches if search.lower() in m["id"].lower()]
        sort = (get("sort") or [None])[0]
        if sort:
            # The hub sorts descending; models lacking the field go last.
            matches.sort(key=lambda m: (m.get(sort) is not None, m.get(sort) if m.get(sort) is not None else 0),
                         reverse=True)
        limit = int((get("limit") or [self.page_size])[0])
        page_size = max(1, min(limit, self.page_size))
        start = int((get("cursor") or ["0"])[0])
        page = matches[start:start + page_size]
        expand = get("expand")
        full = (get("full") or ["false"])[0].lower() == "true"
        body = [self._fields(m, expand, full) for m in page]
        headers = {}
        if start + page_size < len(matches):
            rest = [(k, v) for k, v in query if k != "cursor"] + [("cursor", str(start + page_size))]
            headers["Link"] = f'<{self.endpoint}/api/models?{urlencode(rest)}>; rel="next"'
        return _json(200, body, headers)

    def _fields(self, model: dict[str, Any], expand: list[str], full: bool = False) -> dict[str, Any]:
        if full:
            return {k: v for k, v in model.items()}
        wanted = ("_id", "id", *expand) if expand else DEFAULT_LIST_FIELDS
        return {k: model[k] for k in wanted if k in model}

    def _siblings(self, repo: str) -> list[dict[str, str]]:
        return [{"rfilename": p} for p in sorted(self.files.get(repo, {}))]

    def _model_endpoint(self, parts: list[str], query: list[tuple[str, str]]):
        repo, rest = self._split_repo(parts)
        if repo is None:
            return _json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        model = self.models[repo]
        if rest[:1] == ["revision"]:
            if len(rest) < 2 or rest[1] not in ("main", model["sha"]):
                return _json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            rest = rest[2:]
        if not rest:
            expand = [v for k, v in query if k in ("expand", "expand[]")]
            body = self._fields(model, expand) if expand else {**model, "siblings": self._siblings(repo)}
            return _json(200, body)
        if rest[0] == "tree":
            if len(rest) < 2 or rest[1] not in ("main", model["sha"]):
                return _json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            prefix = "/".join(rest[2:])
            entries = [{"type": "file", "oid": _git_blob_id(data), "size": len(data), "path": p}
                       for p, data in sorted(self.files.get(repo, {}).items())
                       if not prefix or p.startswith(prefix + "/") or p == prefix]
            return _json(200, entries)
        return _json(404, {"error": f"no route for {'/'.join(parts)}"})

    def _resolve(self, method: str, parts: list[str]):
        index = parts.index("resolve")
        repo = "/".join(parts[:index])
        if repo not in self.models:
            return _json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        model = self.models[repo]
        if len(parts) < index + 3:
            return _json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        revision, file_path = parts[index + 1], "/".join(parts[index + 2:])
        if revision not in ("main", model["sha"]):
            return _json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        data = self.files.get(repo, {}).get(file_path)
        if data is None:
            return _json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound",
                                                            "X-Repo-Commit": model["sha"]})
        headers = {"X-Repo-Commit": model["sha"], "ETag": f'"{_git_blob_id(data)}"',
                   "Content-Type": "application/octet-stream"}
        return 200, headers, data


def _matches(model: dict[str, Any], value: str) -> bool:
    return value in (model.get("tags") or []) or value in (model.get("pipeline_tag"), model.get("library_name"))


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _make_handler(hub: RecordedHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _respond(self, send_body: bool) -> None:
            split = urlsplit(self.path)
            query = parse_qsl(split.query, keep_blank_values=True)
            hub._log(RecordedRequest(self.command, unquote(split.path), tuple(query)))
            status, headers, body = hub.answer(self.command, split.path, query)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._respond(send_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._respond(send_body=False)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    return Handler


__all__ = ["RecordedHub", "RecordedRequest", "DEFAULT_LIST_FIELDS"]
