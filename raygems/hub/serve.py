"""A local Hugging Face hub: the hub API's model endpoints and file downloads, over real HTTP on 127.0.0.1.

    python -m raygems.hub.serve ./tiny-tree --port 8123 [--bandwidth 20e6] [--latency 0.05]
    HF_ENDPOINT=http://127.0.0.1:8123 raygems tree tiny-org/tiny-base --out tree.parquet

`HubServer` answers from a `Catalog` (raygems.hub.catalog: a directory in the local hub layout, streamed
from disk; the tests also serve recorded JSON) the endpoints huggingface_hub's client uses for reading:

* `GET /api/models?filter=...&expand=...&sort=...&limit=...&full=...`: `list_models`, with tag filters
  (`base_model:<relation>:<id>`), `expand` field selection and pagination through `Link` headers;
* `GET /api/models/{id}[/revision/{rev}]`: `model_info`, with `expand` or, for `files_metadata=True`
  (`blobs=true`), `siblings` with `size`, `blobId` and `lfs` as the hub sends them;
* `GET /api/models/{id}/tree/{rev}[/{path}]?recursive=...`: `list_repo_tree` (what `snapshot_download` reads);
* `HEAD`/`GET /{id}/resolve/{rev}/{path}`: `hf_hub_download`, with `X-Repo-Commit`, `ETag`,
  `Content-Length`, `Accept-Ranges` and single-range `Range` requests (206/416), which the client uses to
  resume a download whose connection broke.

Unknown repositories, revisions and files get the hub's 404s (`X-Error-Code` RepoNotFound,
RevisionNotFound, EntryNotFound), which the client raises as RepositoryNotFoundError,
RevisionNotFoundError and EntryNotFoundError.

`bandwidth` (bytes/s) is one token bucket shared by every connection: the server models one node's download
link, so parallel downloads share the rate instead of each getting it. `latency` (seconds) delays every
answer. For tests, `fail_next` makes the next requests to a path answer with error statuses and `cut_next`
drops the connection after part of a download; `requests` logs what was asked.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from raygems.hub.catalog import Catalog, DigestCache, RepoFile

#: Fields `GET /api/models` returns when no `expand` is given.
DEFAULT_LIST_FIELDS = ("_id", "id", "likes", "downloads", "private", "tags", "pipeline_tag", "library_name",
                       "createdAt")

#: The hub's page size for model and tree listings.
HUB_PAGE_SIZE = 1000

#: Bytes written per send (smaller under a low bandwidth, so the rate is smooth).
CHUNK_SIZE = 64 * 1024

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclasses.dataclass(frozen=True)
class HubRequest:
    """One request as the server saw it, and the status it got."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k in (name, f"{name}[]")]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclasses.dataclass
class Answer:
    """What to send: a status, headers, and a body (bytes, or a byte range of a repository file)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    file: RepoFile | None = None
    start: int = 0
    end: int = 0                  # exclusive
    cut_after: int | None = None  # drop the connection after this many body bytes

    @property
    def length(self) -> int:
        return self.end - self.start if self.file is not None else len(self.body)


class TokenBucket:
    """A byte rate shared by all connections: `take(n)` returns when the link has carried n more bytes.

    The bucket holds at most `burst` bytes; a take larger than what it holds runs it into debt, and the
    taker waits until the debt is paid back at `rate`, so the total rate of concurrent takers is `rate`.
    """

    def __init__(self, rate: float, burst: float, stop: threading.Event) -> None:
        if rate <= 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self._stop = stop

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - n
            self._stamp = now
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._stop.wait(wait)


@dataclasses.dataclass
class _Injection:
    prefix: str
    exact: bool
    queue: deque = dataclasses.field(default_factory=deque)

    def take(self, path: str) -> Any:
        if self.queue and (path == self.prefix if self.exact else path.startswith(self.prefix)):
            return self.queue.popleft()
        return None


class HubServer:
    """A threaded HTTP server on 127.0.0.1 that answers like the hub from a `Catalog`.

    Parameters
    ----------
    catalog: the repositories served.
    port: the port to listen on (0: a free one; see `endpoint`).
    page_size: models (and tree entries) per listing page; small values exercise pagination.
    bandwidth: bytes/s over all connections together (None: unlimited).
    latency: seconds every request waits before it is answered.
    log_size: how many requests `requests` keeps (the latest ones).
    """

    def __init__(self, catalog: Catalog, port: int = 0, page_size: int = HUB_PAGE_SIZE,
                 bandwidth: float | None = None, latency: float = 0.0, log_size: int = 100_000) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        if not 0 <= latency < math.inf:           # also refuses nan; inf would make every answer wait forever
            raise ValueError(f"latency must be a finite number >= 0 seconds, got {latency}")
        if bandwidth is not None and not 0 < bandwidth < math.inf:
            raise ValueError(f"bandwidth must be a finite number > 0 bytes/s (None: unlimited), got {bandwidth}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.catalog = catalog
        self.port = port
        self.page_size = page_size
        self.latency = float(latency)
        self._stopping = threading.Event()
        self.chunk_size = CHUNK_SIZE if bandwidth is None else int(max(1024, min(CHUNK_SIZE, bandwidth / 20)))
        self.bucket = None if bandwidth is None else TokenBucket(bandwidth, self.chunk_size, self._stopping)
        self.requests: deque[HubRequest] = deque(maxlen=log_size)
        self.digests = DigestCache()
        self._failures: list[_Injection] = []
        self._cuts: list[_Injection] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the hub server is not started: call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        if self._server is None:
            self._stopping.clear()
            try:
                self._server = _Server(("127.0.0.1", self.port), _make_handler(self))
            except OSError as exc:             # the port is taken (or not ours to take): say which
                reason = exc.strerror or str(exc) or type(exc).__name__
                raise OSError(exc.errno, f"cannot listen on 127.0.0.1 port {self.port}: {reason}") from None
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="hub-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end open connections (downloads in flight break off) and join their threads."""
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.close_connections(timeout=10)
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ fault injection and log
    def fail_next(self, path: str, statuses: Sequence[int], retry_after: float | None = None,
                  exact: bool = False) -> None:
        """The next len(statuses) requests whose path starts with `path` (equals it, if `exact`) get these
        statuses, with a `Retry-After` header when `retry_after` is given."""
        with self._lock:
            self._failures.append(_Injection(path, exact, deque((int(s), retry_after) for s in statuses)))

    def cut_next(self, path: str, after_bytes: int, times: int = 1) -> None:
        """The next `times` downloads (GET .../resolve/...) whose path starts with `path` send their headers in
        full, then close the connection after `after_bytes` bytes of the body (a connection that broke)."""
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes}")
        with self._lock:
            self._cuts.append(_Injection(path, False, deque([int(after_bytes)] * times)))

    def hash_files(self) -> tuple[int, int]:
        """Compute every file's digests now (files, bytes). A download's HEAD needs the file's ETag (for LFS
        files its sha256), and huggingface_hub gives up on a HEAD after 10 s: hashing a multi-GB file on
        first request would take longer, and would bias a bandwidth measurement."""
        count = size = 0
        for model_id in self.catalog.model_ids():
            for file in self.catalog.files(model_id).values():
                if self._stopping.is_set():
                    return count, size
                self.digests(file)
                count, size = count + 1, size + file.size
        return count, size

    def requests_to(self, path_prefix: str) -> list[HubRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _take(self, injections: list[_Injection], path: str) -> Any:
        with self._lock:
            for injection in injections:
                taken = injection.take(path)
                if taken is not None:
                    return taken
        return None

    def _log(self, request: HubRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ answers
    def answer(self, request: HubRequest) -> Answer:
        failure = self._take(self._failures, request.path)
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return _json(status, {"error": f"injected failure {status}"}, headers)
        parts = [p for p in request.path.strip("/").split("/") if p]
        if parts[:2] == ["api", "models"]:
            if len(parts) == 2:
                return self._list_models(request)
            return self._model_endpoint(parts[2:], request)
        repo, rest = self._split_repo(parts)
        if repo is not None and rest[:1] == ["resolve"]:
            return self._resolve(request, repo, rest[1:])
        if repo is None and "resolve" in parts:
            return _repo_not_found()
        return _json(404, {"error": f"no route for {request.path}"})

    def _split_repo(self, parts: list[str]) -> tuple[str | None, list[str]]:
        """('org/name' or legacy 'name', the remaining path parts)."""
        if len(parts) >= 2 and self.catalog.model(f"{parts[0]}/{parts[1]}") is not None:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        if parts and self.catalog.model(parts[0]) is not None:
            return parts[0], parts[1:]
        return None, parts

    def _list_models(self, request: HubRequest) -> Answer:
        get = request.params
        filters = get("filter") + get("other")
        models = (self.catalog.model(m) for m in self.catalog.model_ids())
        matches = [m for m in models if all(_matches(m, f) for f in filters)]
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
        bad = _bad_expand(expand)
        if bad:
            return _json(400, {"error": f"invalid expand value(s) {bad}"})
        full = _true((get("full") or ["false"])[0])
        body = [self._fields(m, expand, siblings=full) for m in page]
        headers = {}
        if start + page_size < len(matches):
            headers["Link"] = self._next_link(request, start + page_size)
        return _json(200, body, headers)

    def _next_link(self, request: HubRequest, cursor: int) -> str:
        rest = [(k, v) for k, v in request.query if k != "cursor"] + [("cursor", str(cursor))]
        return f'<{self.endpoint}{request.path}?{urlencode(rest)}>; rel="next"'

    def _fields(self, model: dict[str, Any], expand: list[str], siblings: bool = False,
                blobs: bool = False) -> dict[str, Any]:
        if expand:
            chosen = {k: model[k] for k in ("_id", "id", *expand) if k in model}
            if "siblings" in expand:
                chosen["siblings"] = self._siblings(model["id"], blobs=False)
            return chosen
        if siblings:
            return {**model, "siblings": self._siblings(model["id"], blobs=blobs)}
        return {k: model[k] for k in DEFAULT_LIST_FIELDS if k in model}

    def _siblings(self, repo: str, blobs: bool) -> list[dict[str, Any]]:
        if not blobs:
            return [{"rfilename": p} for p in self.catalog.files(repo)]
        siblings = []
        for path, file in self.catalog.files(repo).items():
            digests = self.digests(file)
            sibling: dict[str, Any] = {"rfilename": path, "blobId": digests.blob_id, "size": file.size}
            if digests.sha256:
                sibling["lfs"] = {"sha256": digests.sha256, "size": file.size, "pointerSize": digests.pointer_size}
            siblings.append(sibling)
        return siblings

    def _model_endpoint(self, parts: list[str], request: HubRequest) -> Answer:
        repo, rest = self._split_repo(parts)
        if repo is None:
            return _repo_not_found()
        model = self.catalog.model(repo)
        if rest[:1] == ["revision"]:
            if len(rest) < 2 or rest[1] not in ("main", model["sha"]):
                return _revision_not_found(rest[1] if len(rest) > 1 else "")
            rest = rest[2:]
        if not rest:
            expand = request.params("expand")
            bad = _bad_expand(expand)
            if bad:
                return _json(400, {"error": f"invalid expand value(s) {bad}"})
            return _json(200, self._fields(model, expand, siblings=True,
                                           blobs=_true((request.params("blobs") or ["false"])[0])))
        if rest[0] == "tree":
            if len(rest) < 2 or rest[1] not in ("main", model["sha"]):
                return _revision_not_found(rest[1] if len(rest) > 1 else "")
            return self._tree(repo, "/".join(rest[2:]), request)
        return _json(404, {"error": f"no route for {request.path}"})

    def _tree(self, repo: str, folder: str, request: HubRequest) -> Answer:
        recursive = _true((request.params("recursive") or ["false"])[0])
        prefix = f"{folder}/" if folder else ""
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path, file in self.catalog.files(repo).items():
            if not path.startswith(prefix):
                continue
            inside = path[len(prefix):].split("/")
            for depth in range(1, len(inside) if recursive else min(2, len(inside))):
                sub = prefix + "/".join(inside[:depth])
                if sub not in folders:
                    folders.add(sub)
                    entries.append({"type": "directory", "oid": hashlib.sha1(f"tree:{repo}:{sub}".encode())
                                    .hexdigest(), "size": 0, "path": sub})
            if len(inside) > 1 and not recursive:
                continue
            digests = self.digests(file)
            entry: dict[str, Any] = {"type": "file", "oid": digests.blob_id, "size": file.size, "path": path}
            if digests.sha256:
                entry["lfs"] = {"oid": digests.sha256, "size": file.size, "pointerSize": digests.pointer_size}
            entries.append(entry)
        if folder and not entries:
            return _entry_not_found(self.catalog.model(repo)["sha"], folder)
        start = int((request.params("cursor") or ["0"])[0])
        headers = {}
        if start + self.page_size < len(entries):
            headers["Link"] = self._next_link(request, start + self.page_size)
        return _json(200, entries[start:start + self.page_size], headers)

    def _resolve(self, request: HubRequest, repo: str, rest: list[str]) -> Answer:
        model = self.catalog.model(repo)
        if len(rest) < 2:
            return _entry_not_found(model["sha"], "")
        revision, path = rest[0], "/".join(rest[1:])
        if revision not in ("main", model["sha"]):
            return _revision_not_found(revision)
        file = self.catalog.files(repo).get(path)
        if file is None:
            return _entry_not_found(model["sha"], path)
        headers = {"X-Repo-Commit": model["sha"], "ETag": f'"{self.digests(file).etag}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        start, end, status = 0, file.size, 200
        wanted = request.header("Range")
        if wanted:
            span = _byte_range(wanted, file.size)
            if span == "unsatisfiable":
                return Answer(416, {**headers, "Content-Range": f"bytes */{file.size}"})
            if span is not None:
                start, end = span
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
        answer = Answer(status, headers, file=file, start=start, end=end)
        if request.method == "GET":
            answer.cut_after = self._take(self._cuts, request.path)
        return answer


def _byte_range(value: str, size: int) -> tuple[int, int] | str | None:
    """[start, end) of a single `bytes=` range, "unsatisfiable", or None to send the whole file (multiple
    ranges, or a header that is not a byte range: RFC 9110 lets a server ignore those)."""
    match = _RANGE.fullmatch(value.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":                           # the last N bytes
        count = int(last)
        return (max(0, size - count), size) if count > 0 and size > 0 else "unsatisfiable"
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


def _bad_expand(expand: list[str]) -> list[str]:
    """Expand values the hub's model endpoints do not know."""
    return [e for e in expand if e not in _expand_properties()]


@functools.cache
def _expand_properties() -> frozenset[str]:
    """The model properties `expand` may name, as huggingface_hub lists them."""
    from typing import get_args

    from huggingface_hub.hf_api import ExpandModelProperty_T

    return frozenset(get_args(ExpandModelProperty_T))


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def _matches(model: dict[str, Any], value: str) -> bool:
    return value in (model.get("tags") or []) or value in (model.get("pipeline_tag"), model.get("library_name"))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())


def _repo_not_found() -> Answer:
    return _json(404, {"error": "Repository not found"},
                 {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})


def _revision_not_found(revision: str) -> Answer:
    return _json(404, {"error": f"Invalid rev id: {revision}"},
                 {"X-Error-Code": "RevisionNotFound", "X-Error-Message": f"Invalid rev id: {revision}"})


def _entry_not_found(sha: str, path: str) -> Answer:
    return _json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound",
                                                    "X-Error-Message": f"Entry not found: {path}",
                                                    "X-Repo-Commit": sha})


# ---------------------------------------------------------------------------------------------- HTTP
class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so that stopping can end them (a keep-alive client holds one open) and
    wait until their handlers are done. Handler threads are daemons: a server nobody stopped does not keep
    the interpreter alive."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._closed = threading.Condition()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._closed:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        super().shutdown_request(request)
        with self._closed:
            self._open.discard(request)
            self._closed.notify_all()

    def close_connections(self, timeout: float) -> None:
        """End every open connection, and wait (at most `timeout` seconds) until their handlers are done."""
        with self._closed:
            for connection in self._open:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._closed.wait_for(lambda: not self._open, timeout=timeout)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: with Nagle's algorithm the body would wait for the
        # client's delayed ACK of the headers (about 40 ms per small response on Linux), which the hub's
        # servers do not add.
        disable_nagle_algorithm = True

        def _respond(self) -> None:
            split = urlsplit(self.path)
            request = HubRequest(self.command, unquote(split.path),
                                 tuple(parse_qsl(split.query, keep_blank_values=True)),
                                 tuple(self.headers.items()))
            if hub.latency and hub._stopping.wait(hub.latency):
                self.close_connection = True
                return
            answer = hub.answer(request)
            hub._log(dataclasses.replace(request, status=answer.status))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(answer.length))
            self.end_headers()
            if self.command != "HEAD":
                self._send_body(answer)

        def _send_body(self, answer: Answer) -> None:
            budget = answer.length if answer.cut_after is None else min(answer.cut_after, answer.length)
            if answer.file is None:
                chunks = (answer.body[i:i + hub.chunk_size] for i in range(0, budget, hub.chunk_size))
                self._write(chunks)
            else:
                with answer.file.open() as handle:
                    handle.seek(answer.start)
                    self._write(_read_chunks(handle, budget, hub.chunk_size))
            if budget < answer.length:
                self.close_connection = True

        def _write(self, chunks) -> None:
            for chunk in chunks:
                if hub._stopping.is_set():
                    self.close_connection = True
                    return
                if hub.bucket is not None:
                    hub.bucket.take(len(chunk))
                self.wfile.write(chunk)

        do_GET = do_HEAD = _respond  # noqa: N815 - http.server's naming (other methods get its 501)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    return Handler


def _read_chunks(handle, budget: int, chunk_size: int):
    while budget > 0:
        chunk = handle.read(min(chunk_size, budget))
        if not chunk:
            return
        budget -= len(chunk)
        yield chunk


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m raygems.hub.serve",
        description="Serve a directory in the local hub layout to huggingface_hub clients "
                    "(HF_ENDPOINT=http://127.0.0.1:PORT), on 127.0.0.1 only.")
    parser.add_argument("directory", metavar="DIR", help="ROOT/<org>/<name>/ folders with README.md cards and "
                                                         ".raygems_hub.json (docs/architecture.md)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free one)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="BYTES_PER_S",
                        help="one rate for all connections together, like one node's link (default: unlimited)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="delay before every answer (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from raygems.hub.catalog import DirectoryCatalog

    args = build_parser().parse_args(argv)
    try:
        if args.bandwidth is not None and not 0 < args.bandwidth < math.inf:
            raise ValueError(f"--bandwidth must be a finite number > 0 bytes/s (leave it out for no limit), "
                             f"got {args.bandwidth}")
        if not 0 <= args.latency < math.inf:
            raise ValueError(f"--latency must be a finite number >= 0 seconds, got {args.latency}")
        catalog = DirectoryCatalog(args.directory)
        if not catalog.model_ids():
            raise ValueError(f"{args.directory} holds no model folders (<org>/<name>/ with a README.md, "
                             "config.json, adapter_config.json or .raygems_hub.json)")
        server = HubServer(catalog, port=args.port, bandwidth=args.bandwidth, latency=args.latency).start()
    except (ValueError, FileNotFoundError, OSError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror and exc.filename is None else exc
        print(f"raygems.hub.serve: error: {message}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    limits = (f"bandwidth {args.bandwidth / 1e6:g} MB/s" if args.bandwidth else "no bandwidth limit") + \
        (f", latency {args.latency:g} s" if args.latency else "")
    print(f"serving {len(catalog.model_ids())} models from {catalog.root.resolve()} at {server.endpoint} "
          f"({limits})", flush=True)
    for model_id, reason in catalog.unreadable().items():
        print(f"warning: {model_id}: served with the metadata that could be read; {reason}", file=sys.stderr)
    print(f"HF_ENDPOINT={server.endpoint}", flush=True)
    threading.Thread(target=_hash_in_background, args=(server,), name="hub-hashing", daemon=True).start()
    while not done.wait(0.5):
        pass
    server.stop()
    print("stopped", flush=True)
    return 0


def _hash_in_background(server: HubServer) -> None:
    started = time.monotonic()
    count, size = server.hash_files()
    print(f"hashed {count} files ({size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
