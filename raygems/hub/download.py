"""Download exactly the files a checkpoint needs from the hub, resumably, into a folder of its own.

    plan = plan_download("org/model", "main")          # which files, their sizes, the commit: nothing downloaded
    if budget.fits(plan.total_bytes):
        result = download(plan, cache / plan.commit)   # dest/<path in repo>, then dest/.raygems_download.json

Why not `huggingface_hub.snapshot_download`: huggingface_hub 2.4 resumes a broken download only within the same
call (from a multiple of its 10 MiB write size), and deletes its process-unique `.incomplete` file when the call
fails or its process is killed, so a fetch worker that is killed 12 GB into a 15 GB checkpoint starts again from 0.
Here every file goes through `dest/<path>.part`, which outlives the process: the next call (in any process)
asks for the rest with `Range: bytes=<have>-`.

* `plan_download` asks `model_info(files_metadata=True)` for the files, their sizes and digests at one commit,
  and keeps what loading needs (`select_checkpoint_files`). The total is known before any byte is fetched.
* `download` fetches the planned files at the plan's commit (not the branch: a resumed file is the same file),
  through huggingface_hub's URL building, HTTP session (redirects to the CDN are followed) and headers. Each file
  is hashed while it arrives (sha256 for LFS files, the git blob id for the others; a resumed prefix is read
  back from disk once) and checked against the metadata together with its size; only then is it renamed into
  place, after an fsync. Files already in place with their planned size are skipped (a folder is refused if it
  holds files of another repository or commit: `dest/.raygems_download.started.json`). The marker file
  `dest/.raygems_download.json` is written last: a folder without it (or with one for another plan) is
  incomplete. A folder never holds more than `plan.total_bytes` of planned files (a file is either a partial
  or in place, never both); files in `dest` that are not in the plan are left alone.
* Errors: a hub that cannot be reached raises `raygems.errors.HubUnreachable` (raygems.hub.retry's policy:
  429/5xx and dropped connections are retried with back-off, a connection that delivered bytes before it
  broke resumes at once with a fresh retry budget). Anything that is the model's own failure (repository,
  revision or file gone, access refused, sizes or digests that do not match, no loadable weights) raises
  `DownloadError`; so does a hub that still answers 429/5xx after the retries (`DownloadError.transient`).
  A full disk raises `raygems.files.DiskFull`: not the model's failure either.

Every LFS file is checked, however large (no size threshold): the sha256 is computed on the bytes as they pass
through memory, so it costs CPU but no second read of a 15 GB file, and the weights are the files whose silent
corruption (a node that crashed with pages unwritten) would matter. sha256 takes about 0.6 CPU-s per GiB here;
end to end a download costs the CPU huggingface_hub's own does (benchmarks/checkpoint_download.py, numbers in
docs/checkpoint-downloads.md). Only a resumed partial's prefix is read back from disk, once: cheaper than
fetching it again.

Concurrent calls into the same `dest` take turns (an flock on `dest/.raygems_download.lock`, released by the
kernel when a process dies): the second finds the files in place.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from raygems.errors import RaygemsError, UsageError
from raygems.files import NO_SPACE, DiskFull, fsync_dir, remove_stale_temporaries, write_bytes
from raygems.hub.retry import (RETRY_STATUSES, RetryPolicy, call_with_retries, check_reachable, http_status,
                               is_connection_error)

logger = logging.getLogger(__name__)

#: Written into `dest` when every planned file is in place; its absence means "incomplete".
MARKER_FILE = ".raygems_download.json"
#: Written first: which repository and commit the files in `dest` belong to.
STARTED_FILE = ".raygems_download.started.json"
#: Held (flock) while a download writes into `dest`.
LOCK_FILE = ".raygems_download.lock"
#: Suffix of a file being downloaded (beside its final place, so the rename is atomic).
PARTIAL_SUFFIX = ".part"

#: Bytes per read from the connection (and per `on_bytes` call): what an interruption can lose at most.
DEFAULT_CHUNK_BYTES = 1024 * 1024

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RaygemsError):
    """The checkpoint cannot be downloaded for a reason of its own: the repository, revision or file is gone
    (404), access is refused (401/403), the bytes do not match the hub's metadata, or the repository holds no
    weights raygems can load. `status` is the hub's HTTP status when it gave one; `transient` is true when that
    status is one the hub uses when busy (429, 5xx), i.e. trying again later may succeed."""

    def __init__(self, repo_id: str, reason: str, status: int | None = None):
        super().__init__(f"cannot download {repo_id}: {reason}")
        self.repo_id = repo_id
        self.reason = reason
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its fields, so that it crosses process boundaries (a Ray task's error) intact."""
        return type(self), (self.repo_id, self.reason, self.status)

    @property
    def transient(self) -> bool:
        return self.status in RETRY_STATUSES


class _Mismatch(DownloadError):
    """The bytes on disk are not the file the metadata describes: the partial is deleted."""


@dataclass(frozen=True)
class PlannedFile:
    """One file to fetch: its path in the repository, size, and the digest the hub gave for it (`sha256` for
    LFS files; `blob_id`, the git blob id, for the others)."""

    path: str
    size: int
    sha256: str | None = None
    blob_id: str | None = None


@dataclass(frozen=True)
class DownloadPlan:
    """What `download` will fetch: the repository at one commit, from one endpoint, and the files loading needs.
    `left_out` names the repository's other files (why: `select_checkpoint_files`)."""

    repo_id: str
    revision: str
    commit: str
    endpoint: str
    files: tuple[PlannedFile, ...]
    left_out: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class DownloadResult:
    """`bytes_downloaded`: bytes received in this call (a file fetched again after a bad partial counts twice);
    `bytes_skipped`: bytes already on disk and kept (files in place, the verified prefixes of partials)."""

    dest: Path
    bytes_downloaded: int
    bytes_skipped: int
    seconds: float


# ---------------------------------------------------------------------------------------------- what to fetch
#: Configuration, tokenizer and chat files at the repository root (see `select_checkpoint_files`).
LOADING_FILES = frozenset({
    "config.json", "generation_config.json", "adapter_config.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt",
    "merges.txt", "special_tokens_map.json", "added_tokens.json",
    "chat_template.jinja", "chat_template.json", "preprocessor_config.json", "processor_config.json",
})
#: transformers' folder of named chat templates (`<name>.jinja`), read by the tokenizer.
CHAT_TEMPLATE_DIR = "additional_chat_templates"
#: PyTorch pickles, taken only from a repository without safetensors weights.
_TORCH_WEIGHTS = re.compile(r"(pytorch_model(-\d+-of-\d+)?\.bin|pytorch_model\.bin\.index\.json|adapter_model\.bin)")


def select_checkpoint_files(paths: Iterable[str]) -> list[str]:
    """The files of a repository (paths as the hub lists them) that loading it as a text model needs, in order.

    In:
    * Weights at the root: `*.safetensors` and their `*.safetensors.index.json` (a sharded model's index names
      its shards), which includes a PEFT adapter's `adapter_model.safetensors`.
    * PyTorch weights only when there are no safetensors weights (older repositories): `pytorch_model.bin`, its
      shards `pytorch_model-XXXXX-of-YYYYY.bin` and `pytorch_model.bin.index.json`, `adapter_model.bin`. Never both
      formats: they hold the same tensors, and transformers and vLLM load the safetensors ones.
    * Configuration: `config.json`, `generation_config.json` (sampling defaults), `adapter_config.json`.
    * Tokenizer and chat files transformers' tokenizer reads: `tokenizer.json`, `tokenizer_config.json`,
      `tokenizer.model` / `spiece.model` (sentencepiece), `vocab.json`, `vocab.txt`, `merges.txt`,
      `special_tokens_map.json`, `added_tokens.json`, `chat_template.jinja`, `chat_template.json`, and
      `additional_chat_templates/*.jinja`.
    * `preprocessor_config.json` and `processor_config.json` (a few KB): text fine-tunes of multimodal bases
      (Gemma 3 from 4B, Mistral Small 3.1, Llama 4 are `*ForConditionalGeneration` checkpoints) need them when
      vLLM builds the model's processor, even for text-only prompts.

    Out:
    * `consolidated*.safetensors`: Mistral's native format, a second copy of the weights beside the HF shards
      (mistralai/Mistral-7B-Instruct-v0.3 holds 14.5 GB of each), which transformers does not read.
    * Every other folder: Meta's `original/` consolidated checkpoints (duplicates), `checkpoint-*/` and
      `global_step*/` training snapshots, `onnx/`, `openvino/`, ...: `from_pretrained(folder)` reads the root.
    * Other formats: GGUF (llama.cpp; a quantized copy), ONNX, TF (`tf_model.h5`), Flax (`*.msgpack`), Rust
      (`*.ot`), Core ML, TFLite: no raygems backend loads them.
    * Training state: `optimizer.pt`, `scheduler.pt`, `training_args.bin`, `rng_state*.pth`, `trainer_state.json`
      (often as large as the weights, or larger: Adam keeps two fp32 copies).
    * Python files (`modeling_*.py`): raygems loads with `trust_remote_code=False`. READMEs, images, licenses.
    """
    paths = list(paths)
    root = [p for p in paths if "/" not in p]
    safetensors = [p for p in root if (p.endswith(".safetensors") or p.endswith(".safetensors.index.json"))
                   and not p.startswith("consolidated")]
    has_safetensors = any(p.endswith(".safetensors") for p in safetensors)
    weights = safetensors if has_safetensors else [p for p in root if _TORCH_WEIGHTS.fullmatch(p)]
    keep = set(weights) | {p for p in root if p in LOADING_FILES} | {p for p in paths if _is_chat_template(p)}
    return [p for p in paths if p in keep]


def _is_chat_template(path: str) -> bool:
    parts = path.split("/")
    return (len(parts) == 2 and parts[0] == CHAT_TEMPLATE_DIR and parts[1].endswith(".jinja")
            and not parts[1].startswith("."))


def _is_weights(path: str) -> bool:
    return path.endswith(".safetensors") or path.endswith(".bin")


# ---------------------------------------------------------------------------------------------- plan
def plan_download(repo_id: str, revision: str = "main", *, endpoint: str | None = None, token: str | None = None,
                  retry: RetryPolicy = RetryPolicy()) -> DownloadPlan:
    """Ask the hub which files `repo_id` has at `revision` (sizes, digests, the commit it resolves to) and plan
    the ones loading needs. Raises `DownloadError` for a repository or revision the hub does not have (or will
    not show), or one without loadable weights; `HubUnreachable` when the hub cannot be reached."""
    from huggingface_hub import HfApi, constants

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    check_reachable(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        info = call_with_retries(lambda: api.model_info(repo_id, revision=revision, files_metadata=True), retry,
                                 what=f"model_info({repo_id}@{revision})")
    except Exception as exc:  # noqa: BLE001 - the hub's answer becomes the model's one-line failure
        error = _download_error(repo_id, exc)
        if error is None:
            raise
        raise error from exc
    siblings = {s.rfilename: s for s in info.siblings or ()}
    chosen = select_checkpoint_files(siblings)
    if not any(_is_weights(p) for p in chosen):
        raise DownloadError(repo_id, f"no safetensors or PyTorch weights at {revision} (files: "
                                     f"{', '.join(sorted(siblings)) or 'none'})")
    files = []
    for path in chosen:
        sibling = siblings[path]
        if sibling.size is None:
            raise DownloadError(repo_id, f"the hub gave no size for {path}")
        lfs = sibling.lfs
        files.append(PlannedFile(path, int(sibling.size), sha256=lfs.sha256 if lfs else None,
                                 blob_id=None if lfs else sibling.blob_id))
    kept = set(chosen)
    return DownloadPlan(repo_id=repo_id, revision=revision, commit=info.sha, endpoint=endpoint,
                        files=tuple(files), left_out=tuple(p for p in siblings if p not in kept))


# ---------------------------------------------------------------------------------------------- download
def is_complete(dest: Path, plan: DownloadPlan) -> bool:
    """Whether `dest` holds `plan`'s files: its marker names the same repository, commit and files, and each
    file is in place with its size."""
    try:
        marker = json.loads((Path(dest) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker == _marker(plan) and all(_size(_local_path(dest, plan, f.path)) == f.size for f in plan.files)


def download(plan: DownloadPlan, dest: Path, *, token: str | None = None,
             on_bytes: Callable[[int], None] | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
             retry: RetryPolicy = RetryPolicy()) -> DownloadResult:
    """Fetch `plan`'s files into `dest` (dest/<path in repo>), resuming partial files left by an earlier call,
    then write the marker. `on_bytes(n)` is called for every chunk of n bytes received. Raises `DownloadError`
    (the folder stays incomplete; the caller may delete it) or `HubUnreachable`; `UsageError` (a ValueError)
    when `dest` holds files of another repository or commit; `raygems.files.DiskFull` when the disk is full
    (what arrived is kept: the next call resumes)."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    started = time.monotonic()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(dest, plan):
            return DownloadResult(dest, 0, plan.total_bytes, time.monotonic() - started)
        for name in (STARTED_FILE, MARKER_FILE):         # what a killed download's writes left behind
            remove_stale_temporaries(dest, of=name)
        _claim(dest, plan)
        (dest / MARKER_FILE).unlink(missing_ok=True)          # from another plan: the folder is about to change
        fetcher = _Fetcher(plan, dest, token, on_bytes or (lambda n: None), chunk_bytes, retry)
        try:
            for file in plan.files:
                fetcher.fetch(file)
        except OSError as exc:
            if exc.errno in NO_SPACE:       # the disk, not the checkpoint: the partial file is kept for a resume
                raise DiskFull(dest) from None
            raise
        write_bytes(dest / MARKER_FILE, json.dumps(_marker(plan), indent=1).encode())
    return DownloadResult(dest, fetcher.downloaded, fetcher.skipped, time.monotonic() - started)


def _claim(dest: Path, plan: DownloadPlan) -> None:
    """Record that `dest` holds files of `plan`'s repository and commit, or refuse a folder that holds another's:
    a file in place is trusted by its size, and a shard of another commit can have the same size."""
    owner = {"repo_id": plan.repo_id, "commit": plan.commit}
    for name in (STARTED_FILE, MARKER_FILE):
        try:
            recorded = json.loads((dest / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = {key: recorded.get(key) for key in owner}
        if found != owner:
            raise UsageError(f"{dest} holds files of {found['repo_id']}@{found['commit']}, not of "
                             f"{plan.repo_id}@{plan.commit}: give each repository and commit a folder of its own")
    if not (dest / STARTED_FILE).exists():
        write_bytes(dest / STARTED_FILE, json.dumps(owner).encode())


def _marker(plan: DownloadPlan) -> dict[str, Any]:
    return {"repo_id": plan.repo_id, "revision": plan.revision, "commit": plan.commit,
            "files": {f.path: f.size for f in plan.files}, "bytes": plan.total_bytes}


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _local_path(dest: Path, plan: DownloadPlan, path: str) -> Path:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise DownloadError(plan.repo_id, f"refusing the file path {path!r}")
    return Path(dest).joinpath(*parts)


class _Fetcher:
    """Fetches files one at a time, counting bytes received and bytes reused."""

    def __init__(self, plan: DownloadPlan, dest: Path, token: str | None, on_bytes: Callable[[int], None],
                 chunk_bytes: int, retry: RetryPolicy) -> None:
        from huggingface_hub.utils import build_hf_headers

        self.plan, self.dest, self.on_bytes, self.chunk_bytes, self.retry = plan, dest, on_bytes, chunk_bytes, retry
        # identity: byte offsets must be offsets into the file, not into a compressed stream
        self.headers = {**build_hf_headers(token=token), "Accept-Encoding": "identity"}
        self.downloaded = self.skipped = 0

    def fetch(self, file: PlannedFile) -> None:
        final = _local_path(self.dest, self.plan, file.path)
        if _size(final) == file.size:
            self.skipped += file.size
            return
        final.unlink(missing_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        for last_try in (False, True):
            transfer = _Transfer(file, partial)
            try:
                self._receive(transfer)
                transfer.verify(self.plan.repo_id)
                break
            except _Mismatch:
                partial.unlink(missing_ok=True)
                if last_try or transfer.reused == 0:       # wrong bytes of this call's own: the hub's fault
                    raise
                logger.warning("%s: %s did not match, with %d bytes from an earlier download; fetching it again",
                               self.plan.repo_id, file.path, transfer.reused)
            finally:
                transfer.close()
        os.replace(partial, final)
        fsync_dir(final.parent)
        self.skipped += transfer.reused

    def _receive(self, transfer: "_Transfer") -> None:
        """Fetch the rest of `transfer`'s file. A connection that broke after delivering bytes is asked again
        at once, with a fresh retry budget; one that delivered nothing counts against the budget."""
        while transfer.have < transfer.file.size:
            try:
                call_with_retries(lambda: self._request(transfer), self.retry,
                                  what=f"download of {self.plan.repo_id}/{transfer.file.path}")
            except Exception as exc:  # noqa: BLE001 - the hub's answer becomes the model's one-line failure
                error = _download_error(self.plan.repo_id, exc, transfer.file.path)
                if error is None:
                    raise
                raise error from exc

    def _request(self, transfer: "_Transfer") -> None:
        """One GET from `transfer.have` on. Returns when the connection broke after delivering bytes (the caller
        asks again); raises when it delivered none."""
        import httpx2
        from huggingface_hub import constants, hf_hub_url
        from huggingface_hub.utils import get_session, hf_raise_for_status

        file = transfer.file
        url = hf_hub_url(self.plan.repo_id, file.path, revision=self.plan.commit, endpoint=self.plan.endpoint)
        headers = dict(self.headers)
        if transfer.have:
            headers["Range"] = f"bytes={transfer.have}-"
        timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT)
        received = 0
        try:
            with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code == 416:          # the hub's file ends before the partial does
                    raise _Mismatch(self.plan.repo_id, f"{file.path}: the hub refused bytes from {transfer.have} "
                                                       f"(HTTP 416) of a file of {file.size} bytes")
                hf_raise_for_status(response)
                self._check_start(transfer, response)
                for chunk in response.iter_bytes(self.chunk_bytes):
                    if transfer.have + len(chunk) > file.size:
                        raise _Mismatch(self.plan.repo_id, f"{file.path}: the hub sent more than the "
                                                           f"{file.size} bytes its metadata gives")
                    transfer.write(chunk)
                    received += len(chunk)
                    self.downloaded += len(chunk)
                    self.on_bytes(len(chunk))
        except Exception as exc:
            if received and is_connection_error(exc):
                logger.warning("%s: %s broke off at %d of %d bytes (%s); resuming", self.plan.repo_id, file.path,
                               transfer.have, file.size, type(exc).__name__)
                return
            raise
        if transfer.have < file.size:
            raise _Mismatch(self.plan.repo_id, f"{file.path}: the hub's answer ended at {transfer.have} of the "
                                               f"{file.size} bytes its metadata gives")

    def _check_start(self, transfer: "_Transfer", response: Any) -> None:
        """A 206 must start where the partial ends; a 200 (the server ignored the Range) starts from 0."""
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != transfer.have:
                raise _Mismatch(self.plan.repo_id, f"{transfer.file.path}: asked for bytes from "
                                                   f"{transfer.have}, got Content-Range "
                                                   f"{response.headers.get('Content-Range')!r}")
        elif transfer.have:
            logger.warning("%s: %s: the server ignored the Range request; fetching from 0", self.plan.repo_id,
                           transfer.file.path)
            transfer.restart()


class _Transfer:
    """A partial file being written, and the digest of what it holds so far."""

    def __init__(self, file: PlannedFile, partial: Path) -> None:
        self.file, self.partial = file, partial
        self.handle = partial.open("ab")
        self.have = self.handle.tell()
        if self.have > file.size:                     # not this file's prefix
            self.handle.truncate(0)
            self.have = 0
        self.reused = self.have
        self.digest, self.expected = _new_digest(file)
        if self.have and self.digest is not None:
            with partial.open("rb") as prefix:
                while block := prefix.read(DEFAULT_CHUNK_BYTES):
                    self.digest.update(block)
        if self.have:
            logger.info("resuming %s at %d of %d bytes", partial, self.have, file.size)

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        if self.digest is not None:
            self.digest.update(chunk)
        self.have += len(chunk)

    def restart(self) -> None:
        self.handle.truncate(0)
        self.have = self.reused = 0
        self.digest, self.expected = _new_digest(self.file)

    def verify(self, repo_id: str) -> None:
        """Size and digest against the metadata, then flush to disk (the marker must not outrun the data)."""
        self.handle.flush()
        size = os.fstat(self.handle.fileno()).st_size
        if size != self.file.size:
            raise _Mismatch(repo_id, f"{self.file.path}: {size} bytes on disk, the hub's metadata says "
                                     f"{self.file.size}")
        if self.digest is not None and self.digest.hexdigest() != self.expected:
            kind = "sha256" if self.file.sha256 else "git blob id"
            raise _Mismatch(repo_id, f"{self.file.path}: {kind} {self.digest.hexdigest()} does not match the "
                                     f"hub's {self.expected}")
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _new_digest(file: PlannedFile) -> tuple[Any, str | None]:
    """The running digest the hub's metadata can be checked against: sha256 of the content for LFS files, the
    git blob id (sha1 of `blob <size>\\0` + content) for the others; (None, None) when the hub gave neither."""
    if file.sha256:
        return hashlib.sha256(), file.sha256
    if file.blob_id:
        return hashlib.sha1(b"blob %d\0" % file.size), file.blob_id
    return None, None


def _download_error(repo_id: str, exc: BaseException, path: str | None = None) -> DownloadError | None:
    """The `DownloadError` an error with an HTTP status amounts to (None for other errors)."""
    status = http_status(exc)
    if status is None:
        return None
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    where = f"{path}: " if path else ""
    return DownloadError(repo_id, f"{where}HTTP {status} ({type(exc).__name__}: {detail})", status=status)
