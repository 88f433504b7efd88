"""Checkpoint downloads (`raygems.hub.download`) over real HTTP from the local hub server: which files a
repository's checkpoint needs, byte-identical downloads of only those, resuming after a broken connection and
after a killed process (Range requests in the server's log), digests, redirects, and the two kinds of failure."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.client
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from recorded_hub_helpers import hub_online  # noqa: F401 - fixture

from raygems.errors import HubUnreachable, UsageError
from raygems.files import DiskFull
from raygems.hub import download as download_module
from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.download import (MARKER_FILE, PARTIAL_SUFFIX, STARTED_FILE, DownloadError, DownloadPlan, PlannedFile,
                                  download, is_complete, plan_download, select_checkpoint_files)
from raygems.hub.retry import RetryPolicy
from raygems.hub.serve import HubServer
from raygems.hub.sources import LOCAL_HUB_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "acme/llama-ft"
GGUF_ID = "acme/llama-ft-gguf"
COMMIT = "c0ffee" + "0" * 34
BIG = "model.safetensors"
BIG_SIZE = 24 * 1024 * 1024 + 123          # not a multiple of any chunk size
FAST = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.05)

#: What a download of REPO_ID must fetch, and what it must not.
PLANNED = {"config.json", "generation_config.json", BIG, "tokenizer.json", "tokenizer_config.json",
           "special_tokens_map.json", "additional_chat_templates/tool_use.jinja"}
JUNK = {"README.md", "pytorch_model.bin", "optimizer.pt", "scheduler.pt", "training_args.bin", "rng_state.pth",
        "model-q4_k_m.gguf", "checkpoint-500/model.safetensors", "checkpoint-500/optimizer.pt",
        "original/consolidated.00.pth", "onnx/model.onnx", "flax_model.msgpack"}


# ---------------------------------------------------------------------------------------------- the rule
def test_llama_with_safetensors_and_bin_weights_gets_the_safetensors_only():
    """meta-llama/Llama-2-7b-hf's layout: both formats sharded, with indexes; plus Meta's own checkpoint."""
    repo = ["LICENSE.txt", "README.md", "USE_POLICY.md", "config.json", "generation_config.json",
            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
            "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json",
            "special_tokens_map.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
            "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model"]
    assert select_checkpoint_files(repo) == [
        "config.json", "generation_config.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model.safetensors.index.json", "special_tokens_map.json",
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json"]


def test_qwen_fine_tune_with_training_leftovers():
    repo = [".gitattributes", "README.md", "added_tokens.json", "config.json", "generation_config.json",
            "merges.txt", "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
            "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors", "model.safetensors.index.json",
            "optimizer.pt", "rng_state.pth", "scheduler.pt", "special_tokens_map.json", "tokenizer.json",
            "tokenizer_config.json", "trainer_state.json", "training_args.bin", "vocab.json", "chat_template.jinja",
            "checkpoint-500/config.json", "checkpoint-500/model-00001-of-00004.safetensors",
            "checkpoint-500/optimizer.pt", "checkpoint-500/rng_state_0.pth",
            "global_step500/mp_rank_00_model_states.pt", "runs/Jan01_00-00-00/events.out.tfevents.1700000000.host",
            "modeling_qwen2.py", "latest"]
    chosen = select_checkpoint_files(repo)
    assert chosen == ["added_tokens.json", "config.json", "generation_config.json", "merges.txt",
                      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                      "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
                      "tokenizer_config.json", "vocab.json", "chat_template.jinja"]


def test_gguf_repo_has_nothing_to_load():
    repo = ["README.md", ".gitattributes", "Llama-3-8B.Q4_K_M.gguf", "Llama-3-8B.Q8_0.gguf", "Llama-3-8B.f16.gguf"]
    assert select_checkpoint_files(repo) == []


def test_adapter_repo():
    repo = ["README.md", "adapter_config.json", "adapter_model.safetensors", "special_tokens_map.json",
            "tokenizer.json", "tokenizer_config.json", "training_args.bin", "checkpoint-100/adapter_model.safetensors",
            "checkpoint-100/optimizer.pt"]
    assert select_checkpoint_files(repo) == ["adapter_config.json", "adapter_model.safetensors",
                                             "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    old_peft = ["adapter_config.json", "adapter_model.bin", "training_args.bin", "README.md"]
    assert select_checkpoint_files(old_peft) == ["adapter_config.json", "adapter_model.bin"]


def test_pytorch_only_repo_gets_its_bin_weights_and_no_other_format():
    """gpt2's layout: PyTorch, TF, Flax, Rust, TFLite, Core ML and ONNX weights side by side."""
    repo = ["64-8bits.tflite", "64-fp16.tflite", "64.tflite", "README.md", "config.json", "flax_model.msgpack",
            "generation_config.json", "merges.txt", "model.safetensors.index.json.bak", "pytorch_model.bin",
            "rust_model.ot", "tf_model.h5", "tokenizer.json", "vocab.json", "onnx/decoder_model.onnx",
            "coreml/text-generation/float32_model.mlpackage/Data/com.apple.CoreML/model.mlmodel"]
    assert select_checkpoint_files(repo) == ["config.json", "generation_config.json", "merges.txt",
                                             "pytorch_model.bin", "tokenizer.json", "vocab.json"]
    sharded = ["config.json", "pytorch_model-00001-of-00003.bin", "pytorch_model-00002-of-00003.bin",
               "pytorch_model-00003-of-00003.bin", "pytorch_model.bin.index.json", "training_args.bin",
               "optimizer.bin"]
    assert select_checkpoint_files(sharded) == sharded[:5]


def test_mistral_consolidated_weights_are_not_fetched_twice():
    """mistralai/Mistral-7B-Instruct-v0.3: HF shards and the same weights in Mistral's own format."""
    repo = ["README.md", "config.json", "consolidated.safetensors", "generation_config.json",
            "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
            "model.safetensors.index.json", "params.json", "special_tokens_map.json", "tokenizer.json",
            "tokenizer.model", "tokenizer.model.v3", "tokenizer_config.json"]
    chosen = select_checkpoint_files(repo)
    assert "consolidated.safetensors" not in chosen and "params.json" not in chosen
    assert [p for p in chosen if p.endswith(".safetensors")] == [f"model-0000{i}-of-00003.safetensors"
                                                                 for i in (1, 2, 3)]


def test_sub_folders_other_than_chat_templates_are_left_out():
    repo = ["config.json", "model.safetensors", "additional_chat_templates/rag.jinja",
            "additional_chat_templates/../../evil.jinja", "additional_chat_templates/notes.txt",
            "nested/additional_chat_templates/x.jinja", "sub/config.json", "sub/model.safetensors"]
    assert select_checkpoint_files(repo) == ["config.json", "model.safetensors", "additional_chat_templates/rag.jinja"]


# ---------------------------------------------------------------------------------------------- a served repo
def _write(folder: Path, path: str, data: bytes) -> None:
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    (folder / path).write_bytes(data)


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory) -> Path:
    """ROOT/acme/llama-ft: a fine-tune with a 24 MiB model.safetensors, its tokenizer and chat files, and junk
    a download must skip; ROOT/acme/llama-ft-gguf: GGUF only."""
    root = tmp_path_factory.mktemp("hub")
    folder = root / REPO_ID
    for path in PLANNED - {BIG}:
        _write(folder, path, json.dumps({"file": path, "pad": "x" * 500}).encode())
    _write(folder, BIG, os.urandom(BIG_SIZE))
    for path in JUNK:
        _write(folder, path, os.urandom(50_000))
    _write(folder, "README.md", b"---\nlibrary_name: transformers\n---\n# a fine-tune\n")
    (folder / LOCAL_HUB_FILE).write_text(json.dumps({"revision": COMMIT, "downloads": 5}))
    gguf = root / GGUF_ID
    _write(gguf, "README.md", b"---\nlibrary_name: gguf\n---\n# quantized\n")
    _write(gguf, "model-q4_k_m.gguf", os.urandom(10_000))
    return root


@pytest.fixture
def hub(hub_dir, hub_online):
    with HubServer(DirectoryCatalog(hub_dir)) as server:
        yield server


def served(hub_dir: Path, path: str) -> bytes:
    return (hub_dir / REPO_ID / path).read_bytes()


def gets(hub: HubServer, path: str = "") -> list[tuple[str, str | None, int]]:
    """(file, Range header, status) of every download request, in order."""
    prefix = f"/{REPO_ID}/resolve/{COMMIT}/"
    return [(r.path.removeprefix(prefix), r.header("Range"), r.status) for r in hub.requests_to(prefix + path)
            if r.method == "GET"]


def assert_identical(hub_dir: Path, dest: Path) -> None:
    for path in PLANNED:
        assert (dest / path).read_bytes() == served(hub_dir, path), path
    assert not list(dest.rglob(f"*{PARTIAL_SUFFIX}"))


def test_the_plan_names_the_needed_files_their_sizes_and_the_commit(hub, hub_dir):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    assert plan.commit == COMMIT and plan.revision == "main" and plan.endpoint == hub.endpoint
    assert {f.path for f in plan.files} == PLANNED and set(plan.left_out) == JUNK
    sizes = {path: (hub_dir / REPO_ID / path).stat().st_size for path in PLANNED}
    assert {f.path: f.size for f in plan.files} == sizes and plan.total_bytes == sum(sizes.values())
    big = next(f for f in plan.files if f.path == BIG)
    assert big.sha256 == hashlib.sha256(served(hub_dir, BIG)).hexdigest() and big.blob_id is None
    config = next(f for f in plan.files if f.path == "config.json")
    assert config.sha256 is None and config.blob_id                      # a plain git file: its blob id
    assert not gets(hub)                                                 # planning downloads nothing
    assert plan_download(REPO_ID, COMMIT, endpoint=hub.endpoint, retry=FAST).files == plan.files


def test_downloads_only_the_planned_files_byte_identical(hub, hub_dir, tmp_path):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    dest = tmp_path / "model"
    arrived: list[int] = []
    result = download(plan, dest, on_bytes=arrived.append, token="hf_test_token")
    assert_identical(hub_dir, dest)
    assert sorted(gets(hub)) == sorted((path, None, 200) for path in PLANNED)       # each once, nothing else
    assert {r.header("Authorization") for r in hub.requests_to(f"/{REPO_ID}/resolve/")} == {"Bearer hf_test_token"}
    assert not any(dest.joinpath(path).exists() for path in JUNK)
    assert result.bytes_downloaded == sum(arrived) == plan.total_bytes and result.bytes_skipped == 0
    assert result.dest == dest and result.seconds > 0
    marker = json.loads((dest / MARKER_FILE).read_text())
    assert marker["commit"] == COMMIT and marker["bytes"] == plan.total_bytes and set(marker["files"]) == PLANNED
    assert is_complete(dest, plan)

    again = download(plan, dest)                                          # complete: nothing asked
    assert again.bytes_downloaded == 0 and again.bytes_skipped == plan.total_bytes
    assert len(gets(hub)) == len(PLANNED)

    (dest / "tokenizer.json").unlink()                                    # one file lost: only it is fetched
    assert not is_complete(dest, plan)
    third = download(plan, dest)
    assert gets(hub)[len(PLANNED):] == [("tokenizer.json", None, 200)]
    assert third.bytes_downloaded == len(served(hub_dir, "tokenizer.json"))
    assert third.bytes_skipped == plan.total_bytes - third.bytes_downloaded
    assert_identical(hub_dir, dest) and is_complete(dest, plan)


def test_temporaries_a_killed_download_left_are_deleted_and_a_full_disk_is_disk_full(hub, hub_dir, tmp_path,
                                                                                      monkeypatch):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    dest = tmp_path / "model"
    dest.mkdir()
    left = [dest / f".{MARKER_FILE}.1a2b3c4d.tmp", dest / f".{STARTED_FILE}.5e6f7a8b.tmp"]
    for path in left:
        path.write_bytes(b"half a marker")
    real_write = download_module._Transfer.write

    def disk_full_halfway(transfer, chunk):
        if transfer.file.path == BIG and transfer.have:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(transfer, chunk)

    monkeypatch.setattr(download_module._Transfer, "write", disk_full_halfway)
    with pytest.raises(DiskFull, match=f"no space left to write in {dest} .*--resume"):
        download(plan, dest)
    assert not any(path.exists() for path in left)
    assert (dest / (BIG + PARTIAL_SUFFIX)).stat().st_size > 0          # what arrived is kept for the next call
    monkeypatch.setattr(download_module._Transfer, "write", real_write)
    assert download(plan, dest).bytes_skipped > 0
    assert_identical(hub_dir, dest) and is_complete(dest, plan)


def test_a_broken_connection_resumes_with_a_range_request_in_the_same_call(hub, hub_dir, tmp_path):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    cut, chunk = 10_000_000, 256 * 1024
    hub.cut_next(f"/{REPO_ID}/resolve/{COMMIT}/{BIG}", after_bytes=cut)
    result = download(plan, tmp_path / "model", chunk_bytes=chunk, retry=FAST)
    assert_identical(hub_dir, tmp_path / "model")
    (first, second) = gets(hub, BIG)
    kept = cut // chunk * chunk                      # whole chunks written before the cut; the rest is re-asked
    assert first == (BIG, None, 200) and second == (BIG, f"bytes={kept}-", 206)
    assert result.bytes_downloaded == plan.total_bytes          # each byte kept once: the file is not fetched twice


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from raygems.hub.download import download, plan_download

    endpoint, repo_id, dest = sys.argv[1:]
    download(plan_download(repo_id, endpoint=endpoint), Path(dest))
    print("finished")
""")


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HOME"] = str(tmp_path / "hf-home")
    return env


def test_a_killed_download_continues_where_it_stopped(hub_dir, hub_online, tmp_path):
    """A child process downloading at 5 MB/s is SIGKILLed 6 MB into model.safetensors; the next download (this
    process) asks for the rest with a Range request, and the file arrives whole, byte-identical."""
    dest = tmp_path / "model"
    partial = dest / (BIG + PARTIAL_SUFFIX)
    with HubServer(DirectoryCatalog(hub_dir), bandwidth=5_000_000) as hub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, hub.endpoint, REPO_ID, str(dest)],
                                 env=_child_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while (partial.stat().st_size if partial.exists() else 0) < 6_000_000:
                assert child.poll() is None, child.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the child did not start downloading"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        have = partial.stat().st_size
        assert 6_000_000 <= have < BIG_SIZE and not (dest / MARKER_FILE).exists()

        plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
        arrived: list[int] = []
        result = download(plan, dest, on_bytes=arrived.append)
        assert gets(hub, BIG) == [(BIG, None, 200), (BIG, f"bytes={have}-", 206)]
    assert_identical(hub_dir, dest)
    assert result.bytes_skipped >= have                                    # the partial was kept, not re-fetched
    assert result.bytes_downloaded + result.bytes_skipped == plan.total_bytes == sum(arrived) + result.bytes_skipped
    assert is_complete(dest, plan)


def test_a_partial_with_wrong_bytes_is_detected_and_fetched_again(hub, hub_dir, tmp_path, caplog):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    dest = tmp_path / "model"
    dest.mkdir()
    prefix = bytearray(served(hub_dir, BIG)[:5_000_000])
    prefix[1_000_000:1_000_100] = bytes(100)                              # e.g. pages lost in a crash
    (dest / (BIG + PARTIAL_SUFFIX)).write_bytes(prefix)
    with caplog.at_level(logging.WARNING, logger="raygems.hub.download"):
        result = download(plan, dest)
    assert_identical(hub_dir, dest)
    assert gets(hub, BIG) == [(BIG, "bytes=5000000-", 206), (BIG, None, 200)]
    assert result.bytes_skipped == 0 and result.bytes_downloaded == plan.total_bytes + BIG_SIZE - 5_000_000
    assert "did not match" in caplog.text


@pytest.mark.parametrize("path, digest", [(BIG, "sha256"), ("config.json", "git blob id")])
def test_bytes_that_differ_from_the_metadata_raise_and_leave_no_partial(hub_dir, hub_online, tmp_path, path,
                                                                        digest):
    """The hub's file is not the one its metadata describes (same size, other bytes): DownloadError."""
    repo = tmp_path / "hub"
    for source in (hub_dir / REPO_ID).rglob("*"):
        if source.is_file():
            _write(repo / REPO_ID, source.relative_to(hub_dir / REPO_ID).as_posix(), source.read_bytes())
    with HubServer(DirectoryCatalog(repo)) as hub:
        plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
        original = (repo / REPO_ID / path).read_bytes()
        (repo / REPO_ID / path).write_bytes(original[::-1])
        with pytest.raises(DownloadError, match=digest) as info:
            download(plan, tmp_path / "model", retry=FAST)
    assert path in str(info.value) and info.value.status is None and not info.value.transient
    assert not (tmp_path / "model" / (path + PARTIAL_SUFFIX)).exists() and not (tmp_path / "model" / path).exists()
    assert not (tmp_path / "model" / MARKER_FILE).exists()


def test_busy_answers_are_retried_and_a_partial_survives_a_failed_call(hub, hub_dir, tmp_path):
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    url = f"/{REPO_ID}/resolve/{COMMIT}/{BIG}"
    hub.fail_next(url, [503, 429], retry_after=0)
    download(plan, tmp_path / "retried", retry=FAST)
    assert_identical(hub_dir, tmp_path / "retried")
    assert [status for _, _, status in gets(hub, BIG)] == [503, 429, 200]

    # the connection breaks after 10 MB, then the hub answers 503 until the retries are spent
    hub.cut_next(url, after_bytes=10_000_000)
    received = [0]

    def fail_after_first_bytes(n: int) -> None:           # once model.safetensors is arriving (the rest is small)
        received[0] += n
        if received[0] - n < 1_000_000 <= received[0]:
            hub.fail_next(url, [503] * 3)

    dest = tmp_path / "model"
    with pytest.raises(DownloadError) as info:
        download(plan, dest, on_bytes=fail_after_first_bytes, chunk_bytes=1_000_000,
                 retry=RetryPolicy(retries=2, backoff=0.01))
    assert info.value.status == 503 and info.value.transient and BIG in str(info.value)
    assert (dest / (BIG + PARTIAL_SUFFIX)).stat().st_size == 10_000_000 and not (dest / MARKER_FILE).exists()
    download(plan, dest, retry=FAST)                                      # later: it resumes
    assert gets(hub, BIG)[-1] == (BIG, "bytes=10000000-", 206)
    assert_identical(hub_dir, dest)


def test_missing_things_are_download_errors_and_a_closed_port_is_unreachable(hub, hub_dir, tmp_path):
    for repo_id, revision in (("nobody/nothing", "main"), (REPO_ID, "0" * 40)):
        with pytest.raises(DownloadError) as info:
            plan_download(repo_id, revision, endpoint=hub.endpoint, retry=FAST)
        assert info.value.status == 404 and not info.value.transient and repo_id in str(info.value)
        assert not isinstance(info.value, HubUnreachable)
    with pytest.raises(DownloadError, match="no safetensors or PyTorch weights") as info:
        plan_download(GGUF_ID, endpoint=hub.endpoint, retry=FAST)
    assert "model-q4_k_m.gguf" in str(info.value)

    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)      # a file the hub no longer has
    gone = dataclasses.replace(plan, files=(*plan.files, PlannedFile("tokenizer.model", 10, sha256="0" * 64)))
    with pytest.raises(DownloadError, match="tokenizer.model") as info:
        download(gone, tmp_path / "model", retry=FAST)
    assert info.value.status == 404 and not isinstance(info.value, HubUnreachable)

    with socket.socket() as probe:                                        # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(HubUnreachable):
        plan_download(REPO_ID, endpoint=closed, retry=FAST)
    with pytest.raises(HubUnreachable) as info:
        download(dataclasses.replace(plan, endpoint=closed), tmp_path / "elsewhere", retry=FAST)
    assert not isinstance(info.value, DownloadError)


def test_a_folder_of_another_commit_is_refused(hub, tmp_path):
    """Files in place are trusted by their size, and a shard of another commit can have the same size."""
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    other = dataclasses.replace(plan, commit="1" * 40)
    complete, unfinished = tmp_path / "complete", tmp_path / "unfinished"
    download(plan, complete)
    with pytest.raises(DownloadError):                                   # stops after the first files
        download(dataclasses.replace(plan, files=(*plan.files[:2], PlannedFile("gone.json", 1))), unfinished,
                 retry=FAST)
    asked = len(gets(hub))
    for dest in (complete, unfinished):
        with pytest.raises(UsageError, match=f"{REPO_ID}@{COMMIT}"):
            download(other, dest)
    assert len(gets(hub)) == asked and is_complete(complete, plan)


def test_a_download_error_survives_pickling():
    """A fetch worker in another process (a Ray actor) hands its errors back pickled."""
    error = pickle.loads(pickle.dumps(DownloadError(REPO_ID, "config.json: HTTP 503", status=503)))
    assert isinstance(error, DownloadError) and error.transient and error.status == 503
    assert str(error) == f"cannot download {REPO_ID}: config.json: HTTP 503" and error.reason == "config.json: HTTP 503"


def test_offline_mode_is_unreachable_at_once(tmp_path):
    plan = DownloadPlan(REPO_ID, "main", COMMIT, "http://127.0.0.1:9", (PlannedFile("config.json", 3),))
    with pytest.raises(HubUnreachable, match="HF_HUB_OFFLINE"):
        download(plan, tmp_path / "model")
    with pytest.raises(HubUnreachable, match="HF_HUB_OFFLINE"):
        plan_download(REPO_ID, endpoint="http://127.0.0.1:9")


class _Redirect(BaseHTTPRequestHandler):
    """Answers every request with a 302 to the same path on `target` (as the hub sends LFS files to its CDN)."""

    target = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        return


def test_redirects_are_followed_keep_the_range_and_drop_the_token(hub, hub_dir, tmp_path):
    handler = type("Redirect", (_Redirect,), {"target": hub.endpoint})
    front = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=front.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{front.server_address[1]}"
        plan = plan_download(REPO_ID, endpoint=endpoint, retry=FAST)
        hub.cut_next(f"/{REPO_ID}/resolve/{COMMIT}/{BIG}", after_bytes=3 * 1024 * 1024 + 7)
        download(plan, tmp_path / "model", retry=FAST, token="hf_test_token")
    finally:
        front.shutdown()
        front.server_close()
    assert_identical(hub_dir, tmp_path / "model")
    assert gets(hub, BIG) == [(BIG, None, 200), (BIG, f"bytes={3 * 1024 * 1024}-", 206)]
    # the token went to the hub's host, not to the host it redirected to
    assert not any(r.header("Authorization") for r in hub.requests_to(f"/{REPO_ID}/resolve/"))


class _IgnoresRange(BaseHTTPRequestHandler):
    """A proxy to `target` that drops the Range header and sends whole files (RFC 9110 allows a server to)."""

    target = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        host, port = self.target.removeprefix("http://").split(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            upstream.request("GET", self.path)
            answer = upstream.getresponse()
            body = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


def test_a_server_that_ignores_the_range_gets_the_file_from_the_start(hub, hub_dir, tmp_path):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), type("Proxy", (_IgnoresRange,), {"target": hub.endpoint}))
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        plan = plan_download(REPO_ID, endpoint=f"http://127.0.0.1:{proxy.server_address[1]}", retry=FAST)
        dest = tmp_path / "model"
        dest.mkdir()
        (dest / (BIG + PARTIAL_SUFFIX)).write_bytes(served(hub_dir, BIG)[:5_000_000])
        result = download(plan, dest, retry=FAST)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert_identical(hub_dir, dest)
    assert gets(hub, BIG) == [(BIG, None, 200)] and result.bytes_skipped == 0
    assert result.bytes_downloaded == plan.total_bytes


def test_a_refused_range_drops_the_partial_and_a_short_file_raises(hub, hub_dir, tmp_path):
    """The metadata says 10 bytes more than the hub serves: the Range from the partial's end gets a 416, the
    partial is dropped and the file fetched from 0, which ends short: DownloadError."""
    plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
    longer = dataclasses.replace(plan, files=tuple(dataclasses.replace(f, size=BIG_SIZE + 10) if f.path == BIG else f
                                                   for f in plan.files))
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / (BIG + PARTIAL_SUFFIX)).write_bytes(served(hub_dir, BIG) + b"x" * 5)
    with pytest.raises(DownloadError, match=f"ended at {BIG_SIZE} of") as info:
        download(longer, dest, retry=FAST)
    assert gets(hub, BIG) == [(BIG, f"bytes={BIG_SIZE + 5}-", 416), (BIG, None, 200)]
    assert info.value.status is None and not (dest / (BIG + PARTIAL_SUFFIX)).exists()


def test_concurrent_downloads_into_one_folder_take_turns(hub_dir, hub_online, tmp_path):
    dest = tmp_path / "model"
    with HubServer(DirectoryCatalog(hub_dir), bandwidth=30_000_000) as hub:
        plan = plan_download(REPO_ID, endpoint=hub.endpoint, retry=FAST)
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(download(plan, dest))) for _ in range(2)]
        threads[0].start()
        deadline = time.monotonic() + 60
        while not (dest / (BIG + PARTIAL_SUFFIX)).exists():
            assert time.monotonic() < deadline and threads[0].is_alive(), "the first download did not start"
            time.sleep(0.005)
        threads[1].start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(gets(hub)) == sorted((path, None, 200) for path in PLANNED)      # each file once
    assert_identical(hub_dir, dest)
    assert sorted((r.bytes_downloaded, r.bytes_skipped) for r in results) == [(0, plan.total_bytes),
                                                                              (plan.total_bytes, 0)]


def test_bad_arguments(tmp_path):
    plan = DownloadPlan(REPO_ID, "main", COMMIT, "http://127.0.0.1:9", (PlannedFile("../outside.json", 3),))
    with pytest.raises(DownloadError, match="outside.json"):
        download(plan, tmp_path / "model")
    assert not (tmp_path / "outside.json").exists()
    with pytest.raises(ValueError, match="chunk_bytes"):
        download(plan, tmp_path / "model", chunk_bytes=0)
