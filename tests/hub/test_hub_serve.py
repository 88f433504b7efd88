"""The local hub server (`raygems.hub.serve`) against the real huggingface_hub client: the tiny tree over HTTP
lists, describes and downloads as it does from disk; Range resume, bandwidth, latency, 404s, shutdown, the CLI."""
from __future__ import annotations

import filecmp
import hashlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from recorded_hub_helpers import hub_online  # noqa: F401 - fixture
from tiny_tree_fixture import tiny_tree  # noqa: F401 - fixture

from raygems.hub.catalog import DirectoryCatalog, git_blob_id
from raygems.hub.listing import list_tree
from raygems.hub.serve import HubServer
from raygems.hub.sources import LOCAL_HUB_FILE, RELATIONS, HubTreeSource, LocalTreeSource

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_ID = "tiny-org/tiny-base"
ADAPTER_ID = "loraworks/tiny-base-lora-arith"
BIG_ID = "acme/big"
BIG_SIZE = 1_000_000


@pytest.fixture(scope="module")
def tiny_hub(tiny_tree):
    """The tiny tree served over HTTP."""
    with HubServer(DirectoryCatalog(tiny_tree.root)) as hub:
        yield hub


@pytest.fixture
def small_hub_dir(tmp_path):
    """A hand-made hub directory: one model with a 1 MB LFS file and a nested file, no recorded revision."""
    folder = tmp_path / "hub" / BIG_ID
    (folder / "notes").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlibrary_name: transformers\ntags: [demo]\n---\n\n# big\n")
    (folder / "config.json").write_text(json.dumps({"model_type": "demo"}))
    (folder / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (folder / "notes" / "howto.txt").write_text("nested file\n")
    (folder / LOCAL_HUB_FILE).write_text(json.dumps({"downloads": 3, "likes": 1}))
    return tmp_path / "hub"


def api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint)


def repo_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
            if p.is_file() and p.name != LOCAL_HUB_FILE}


# ---------------------------------------------------------------------------------------------- the tiny tree
def test_the_tree_over_http_is_the_local_tree(tiny_hub, tiny_tree, hub_online, tmp_path):
    served = list_tree(HubTreeSource(endpoint=tiny_hub.endpoint, cache_dir=tmp_path), BASE_ID, kinds=RELATIONS,
                       progress=False)
    local = list_tree(LocalTreeSource(tiny_tree.root), BASE_ID, kinds=RELATIONS, progress=False)

    def comparable(tree):
        tree = tree.drop(columns=["path"]).sort_values("model_id").reset_index(drop=True)
        tree["created_at"] = pd.to_datetime(tree["created_at"], utc=True)
        return tree

    assert len(local) == len(tiny_tree.model_ids)
    pd.testing.assert_frame_equal(comparable(served), comparable(local))
    assert set(served["kind"]) == {"base", "finetune", "adapter", "merge"}


def test_listing_by_relation_tags_and_children_counts(tiny_hub, tiny_tree, hub_online):
    local = LocalTreeSource(tiny_tree.root)
    client = api(tiny_hub)
    for relation in ("finetune", "adapter"):
        listed = client.list_models(filter=f"base_model:{relation}:{BASE_ID}", expand=["downloads", "tags"])
        listed = {m.id: m for m in listed}
        assert set(listed) == {r.model_id for r in local.children(BASE_ID, kinds=(relation,))} != set()
        for model_id, info in listed.items():
            assert {f"base_model:{BASE_ID}", f"base_model:{relation}:{BASE_ID}"} <= set(info.tags)
            assert info.downloads == local.model(model_id).downloads
    merge = next(r for r in tiny_tree.records if r.kind == "merge")
    parents = local.model_card(merge.model_id).base_models
    assert len(parents) == 2
    for parent in parents:
        assert merge.model_id in {m.id for m in client.list_models(filter=f"base_model:merge:{parent}")}
    info = client.model_info(BASE_ID, expand=["childrenModelCount", "sha"])
    assert info.children_model_count == local.model(BASE_ID).extra["children_count"] > 5
    assert info.sha == local.model(BASE_ID).revision


def test_model_info_sizes_and_blob_ids_match_the_files(tiny_hub, tiny_tree, hub_online):
    client = api(tiny_hub)
    for model_id in tiny_tree.model_ids:
        on_disk = repo_files(tiny_tree.root / model_id)
        info = client.model_info(model_id, files_metadata=True)
        assert {s.rfilename for s in info.siblings} == set(on_disk), model_id
        for sibling in info.siblings:
            data = on_disk[sibling.rfilename].read_bytes()
            assert sibling.size == len(data)
            if sibling.rfilename.endswith(".safetensors"):          # LFS, as on the hub
                assert sibling.lfs.sha256 == hashlib.sha256(data).hexdigest() and sibling.lfs.size == len(data)
            else:
                assert sibling.lfs is None and sibling.blob_id == git_blob_id(data)
    plain = client.model_info(BASE_ID)
    assert plain.siblings and all(s.size is None for s in plain.siblings)      # sizes only when asked


def test_snapshot_download_gets_byte_identical_files(tiny_hub, tiny_tree, hub_online, tmp_path):
    from huggingface_hub import hf_hub_download

    for model_id in (BASE_ID, ADAPTER_ID):
        revision = tiny_tree.record(model_id).revision
        folder = Path(api(tiny_hub).snapshot_download(model_id, cache_dir=tmp_path))
        assert folder.name == revision
        source = tiny_tree.root / model_id
        assert set(repo_files(folder)) == set(repo_files(source))
        for name, path in repo_files(source).items():
            assert filecmp.cmp(path, folder / name, shallow=False), name
    # hf_hub_download with the endpoint from the environment variable's place (the argument) works too
    config = hf_hub_download(ADAPTER_ID, "adapter_config.json", endpoint=tiny_hub.endpoint,
                             cache_dir=tmp_path / "single")
    assert Path(config).read_bytes() == (tiny_tree.root / ADAPTER_ID / "adapter_config.json").read_bytes()


def test_unknown_repos_revisions_and_files_are_the_hubs_404s(tiny_hub, hub_online, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    client = api(tiny_hub)
    with pytest.raises(RepositoryNotFoundError):
        client.model_info("nobody/nothing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json", endpoint=tiny_hub.endpoint, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(BASE_ID, "no-such-file.bin", endpoint=tiny_hub.endpoint, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        client.model_info(BASE_ID, revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(BASE_ID, "config.json", revision="0" * 40, endpoint=tiny_hub.endpoint, cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- a hand-made dir
def test_nested_files_lfs_and_a_revision_made_from_the_files(small_hub_dir, hub_online, tmp_path):
    with HubServer(DirectoryCatalog(small_hub_dir), page_size=2) as hub:
        client = api(hub)
        info = client.model_info(BIG_ID)
        assert len(info.sha) == 40 and info.downloads == 3 and "demo" in info.tags
        top = {f.path: f for f in client.list_repo_tree(BIG_ID)}       # two entries a page: paginated
        assert set(top) == {"README.md", "config.json", "big.bin", "notes"}
        assert type(top["notes"]).__name__ == "RepoFolder"
        big = (small_hub_dir / BIG_ID / "big.bin").read_bytes()
        assert top["big.bin"].lfs.sha256 == hashlib.sha256(big).hexdigest() and top["big.bin"].size == BIG_SIZE
        assert [f.path for f in client.list_repo_tree(BIG_ID, path_in_repo="notes")] == ["notes/howto.txt"]
        folder = Path(client.snapshot_download(BIG_ID, cache_dir=tmp_path))
        assert folder.name == info.sha
        for name, path in repo_files(small_hub_dir / BIG_ID).items():
            assert filecmp.cmp(path, folder / name, shallow=False), name


def _get(endpoint, path, headers=None):
    host, port = endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_range_requests(small_hub_dir):
    data = (small_hub_dir / BIG_ID / "big.bin").read_bytes()
    url = f"/{BIG_ID}/resolve/main/big.bin"
    with HubServer(DirectoryCatalog(small_hub_dir)) as hub:
        status, headers, body = _get(hub.endpoint, url, {"Range": "bytes=1000-1999"})
        assert status == 206 and body == data[1000:2000]
        assert headers["Content-Range"] == f"bytes 1000-1999/{BIG_SIZE}" and headers["Content-Length"] == "1000"
        status, headers, body = _get(hub.endpoint, url, {"Range": "bytes=999000-"})
        assert status == 206 and body == data[999000:]
        status, _, body = _get(hub.endpoint, url, {"Range": "bytes=-10"})
        assert status == 206 and body == data[-10:]
        status, headers, _ = _get(hub.endpoint, url, {"Range": f"bytes={BIG_SIZE}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{BIG_SIZE}"
        status, headers, body = _get(hub.endpoint, url)
        assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"


def test_a_broken_download_resumes_with_a_range_request(small_hub_dir, hub_online, tmp_path):
    """huggingface_hub writes what it receives in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces; when the connection
    breaks it asks for the rest with `Range: bytes=<written>-` (from 0 when less than a piece arrived)."""
    from huggingface_hub import constants, hf_hub_download

    piece = constants.DOWNLOAD_CHUNK_SIZE
    (small_hub_dir / BIG_ID / "huge.bin").write_bytes(os.urandom(piece + 1_000_000))
    with HubServer(DirectoryCatalog(small_hub_dir)) as hub:
        hub.cut_next(f"/{BIG_ID}/resolve/main/huge.bin", after_bytes=piece + 500_000)
        hub.cut_next(f"/{BIG_ID}/resolve/main/big.bin", after_bytes=300_000)
        for name in ("huge.bin", "big.bin"):
            path = hf_hub_download(BIG_ID, name, endpoint=hub.endpoint, cache_dir=tmp_path)
            assert Path(path).read_bytes() == (small_hub_dir / BIG_ID / name).read_bytes()
        asked = {name: [(r.header("Range"), r.status) for r in hub.requests_to(f"/{BIG_ID}/resolve/main/{name}")
                        if r.method == "GET"] for name in ("huge.bin", "big.bin")}
    assert asked == {"huge.bin": [(None, 200), (f"bytes={piece}-", 206)], "big.bin": [(None, 200), (None, 200)]}


def test_bandwidth_is_shared_by_all_connections(small_hub_dir, hub_online, tmp_path):
    """Lower bounds only (a loaded machine is slower, never faster): one 1 MB file at 2 MB/s takes >= 0.4 s;
    two at once at 4 MB/s take >= 0.4 s together (one link, not 4 MB/s each)."""
    from huggingface_hub import hf_hub_download

    with HubServer(DirectoryCatalog(small_hub_dir), bandwidth=2_000_000) as hub:
        started = time.monotonic()
        hf_hub_download(BIG_ID, "big.bin", endpoint=hub.endpoint, cache_dir=tmp_path / "one")
        assert time.monotonic() - started >= 0.4
    with HubServer(DirectoryCatalog(small_hub_dir), bandwidth=4_000_000) as hub:
        caches = [tmp_path / "a", tmp_path / "b"]
        threads = [threading.Thread(target=hf_hub_download, args=(BIG_ID, "big.bin"),
                                    kwargs={"endpoint": hub.endpoint, "cache_dir": cache}) for cache in caches]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() - started >= 0.4
    assert all(len(list(cache.rglob("big.bin"))) == 1 for cache in caches)


def test_latency_delays_every_answer(small_hub_dir, hub_online):
    with HubServer(DirectoryCatalog(small_hub_dir), latency=0.25) as hub:
        started = time.monotonic()
        for _ in range(3):
            api(hub).model_info(BIG_ID)
        assert time.monotonic() - started >= 0.75


def test_stop_ends_a_download_in_flight_and_idle_connections(small_hub_dir):
    hub = HubServer(DirectoryCatalog(small_hub_dir), bandwidth=20_000).start()
    host, port = hub.endpoint.removeprefix("http://").split(":")
    idle = http.client.HTTPConnection(host, int(port), timeout=30)      # keep-alive, then silent
    idle.request("GET", f"/api/models/{BIG_ID}")
    assert idle.getresponse().read()
    received: list[int] = []

    def slow_download():
        try:
            received.append(len(_get(hub.endpoint, f"/{BIG_ID}/resolve/main/big.bin")[2]))
        except (http.client.HTTPException, OSError):
            received.append(-1)

    client = threading.Thread(target=slow_download)
    client.start()
    while not hub.requests_to(f"/{BIG_ID}/resolve/"):
        time.sleep(0.01)
    stopper = threading.Thread(target=hub.stop)
    stopper.start()
    stopper.join(timeout=60)
    client.join(timeout=60)
    assert not stopper.is_alive() and not client.is_alive()
    assert received == [-1]                                           # the transfer broke off, not completed
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5)
    idle.sock.settimeout(30)
    assert idle.sock.recv(1) == b""                                   # the idle connection was ended too
    idle.close()


# ---------------------------------------------------------------------------------------------- the CLI
def _subprocess_env(tmp_path, endpoint=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HOME"] = str(tmp_path / "hf-home")
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return env


def _start_server(directory, tmp_path, *options):
    server = subprocess.Popen([sys.executable, "-m", "raygems.hub.serve", str(directory), "--port", "0", *options],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_subprocess_env(tmp_path))
    ready, _, _ = select.select([server.stdout], [], [], 120)
    first = server.stdout.readline() if ready else ""
    if "http://127.0.0.1:" not in first:
        server.kill()
        pytest.fail(f"the server did not start: {first!r} {server.stderr.read()}")
    endpoint = first.split(" at ")[1].split()[0]
    assert server.stdout.readline().strip() == f"HF_ENDPOINT={endpoint}"
    return server, endpoint


def test_raygems_tree_against_the_served_tiny_tree(tiny_tree, tmp_path):
    server, endpoint = _start_server(tiny_tree.root, tmp_path)
    try:
        out = tmp_path / "tree.parquet"
        done = subprocess.run([sys.executable, "-m", "raygems", "tree", BASE_ID, "--out", str(out), "--no-progress"],
                              capture_output=True, text=True, timeout=300, env=_subprocess_env(tmp_path, endpoint))
        assert done.returncode == 0, done.stderr
        tree = pd.read_parquet(out)
        local = list_tree(LocalTreeSource(tiny_tree.root), BASE_ID, progress=False)
        assert set(tree["model_id"]) == set(local["model_id"]) and set(tree["kind"]) == {"base", "finetune", "adapter"}
        assert str(out) in done.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped" in stdout, stderr


def test_the_cli_stops_cleanly_on_ctrl_c(small_hub_dir, tmp_path):
    server, endpoint = _start_server(small_hub_dir, tmp_path, "--bandwidth", "1e6", "--latency", "0.01")
    try:
        status, _, body = _get(endpoint, f"/api/models/{BIG_ID}")
        assert status == 200 and json.loads(body)["id"] == BIG_ID
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped" in stdout and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("options, message", [
    (["--bandwidth", "0"], "--bandwidth"),
    (["--latency", "-1"], "--latency"),
    (["--latency", "inf"], "--latency must be a finite number"),      # every answer would wait forever
    (["--latency", "nan"], "--latency must be a finite number"),
    (["--bandwidth", "inf"], "--bandwidth must be a finite number"),
    (["--bandwidth", "nan"], "--bandwidth must be a finite number"),
])
def test_the_cli_refuses_bad_options(small_hub_dir, tmp_path, options, message):
    done = subprocess.run([sys.executable, "-m", "raygems.hub.serve", str(small_hub_dir), *options],
                          capture_output=True, text=True, timeout=120, env=_subprocess_env(tmp_path))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_cli_refuses_a_missing_directory_and_a_busy_port(small_hub_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "raygems.hub.serve", str(tmp_path / "absent")],
                          capture_output=True, text=True, timeout=120, env=_subprocess_env(tmp_path))
    assert done.returncode == 2 and "absent" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "raygems.hub.serve", str(small_hub_dir), "--port", str(port)],
                              capture_output=True, text=True, timeout=120, env=_subprocess_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert f"port {port}" in done.stderr and "in use" in done.stderr       # which port, and why


def test_the_server_refuses_non_finite_limits_and_names_a_busy_port(small_hub_dir):
    catalog = DirectoryCatalog(small_hub_dir)
    for options in ({"latency": float("inf")}, {"latency": float("nan")}, {"bandwidth": float("inf")},
                    {"bandwidth": float("nan")}):
        with pytest.raises(ValueError, match="finite"):
            HubServer(catalog, **options)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port}: .*in use"):
            HubServer(catalog, port=port).start()
