"""A run directory under faults: one search at a time, a full disk, a moved or copied directory, a foreign file in
the store. Real processes, a real local Ray cluster, a real (size-limited) file system."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raygems.errors import SetupError, UsageError
from raygems.runtime import ResultStore, SearchConfig, run_search

from runtime_helpers import raw_result_keys, write_matrix

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return write_matrix(tmp_path_factory.mktemp("recorded"), finetunes=16, adapters=4, per_task=20)


def config(recorded, out, **overrides) -> SearchConfig:
    _, matrix, models = recorded
    settings = dict(out=str(out), matrix=str(matrix), models=str(models), method="sequential-halving", budget=6,
                    seed=2, max_loaded=2, cpus_per_model=0.25, chunk_size=4, progress=False)
    return SearchConfig(**{**settings, **overrides})


def test_a_second_search_into_the_same_directory_stops_naming_the_holder(recorded, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom raygems.runtime.lock import RunLock\n"
                               "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)", str(out)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(UsageError, match=rf"is in use by another search \(pid {holder.pid} on "):
            run_search(config(recorded, out))
        assert time.monotonic() - started < 30            # at once, not after the other one finishes
        assert not (out / "store").exists()               # nothing evaluated, nothing paid
    finally:
        holder.kill()
        holder.wait()
    run_search(config(recorded, out))                     # the kernel released it with the process


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KiB tmpfs (a disk that fills up), grown on demand; skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_the_search_and_resume_loses_nothing(recorded, small_disk):
    mount, grow = small_disk
    out = mount / "run"
    with pytest.raises(SetupError, match=rf"no space left to write in {out}.*GB free.*--resume") as caught:
        run_search(config(recorded, out))
    assert len(str(caught.value).splitlines()) == 1
    assert ResultStore(out / "store").failures().empty   # never counted as a model's failure
    paid_before = len(raw_result_keys(out)) if (out / "store" / "results").is_dir() else 0
    grow("50m")                                             # space freed
    result = run_search(config(recorded, out))
    assert result.summary["queries_reused"] * 2 >= paid_before   # everything recorded was kept and reused
    keys = raw_result_keys(out)
    assert not keys.duplicated().any()                     # nothing paid twice
    assert not list(out.rglob("*.tmp"))                    # no torn or stale temporary file
    assert json.loads((out / "summary.json").read_text())["chosen_model"] == result.summary["chosen_model"]


def test_no_room_to_merge_the_store_at_the_end_keeps_the_runs_record(recorded, tmp_path, monkeypatch, caplog):
    """Merging the store's parts is the run's last write and needs the store's size again: a full disk there
    leaves the parts as they are, after the events log, leaderboard and summary are written."""
    from raygems.files import DiskFull

    def no_room(store):
        raise DiskFull(store.root)

    monkeypatch.setattr(ResultStore, "compact", no_room)
    out = tmp_path / "run"
    result = run_search(config(recorded, out))
    assert json.loads((out / "summary.json").read_text())["chosen_model"] == result.summary["chosen_model"]
    assert (out / "events.parquet").is_file() and (out / "leaderboard.parquet").is_file()
    assert len(list((out / "store" / "results").glob("part-*.parquet"))) > 1
    assert "parts were not merged" in caplog.text


def test_a_copied_run_directory_continues_in_place(recorded, tmp_path):
    original = tmp_path / "original"
    run_search(config(recorded, original))
    listing = sorted((p.relative_to(original), p.stat().st_mtime_ns) for p in original.rglob("*") if p.is_file())
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    elsewhere = tmp_path / "another-cwd"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "raygems", "search", "--resume", "--out", str(copy), "--quiet",
                           "--address", _address()], cwd=elsewhere, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((copy / "summary.json").read_text())["queries_paid"] == 0
    after = sorted((p.relative_to(original), p.stat().st_mtime_ns) for p in original.rglob("*") if p.is_file())
    assert after == listing                                # the original was not touched


def test_a_foreign_file_in_the_store_is_named(recorded, tmp_path):
    import pandas as pd

    out = tmp_path / "run"
    run_search(config(recorded, out))
    foreign = out / "store" / "results" / "part-99999999999999999999-foreign.parquet"
    pd.DataFrame({"something": [1, 2]}).to_parquet(foreign)
    with pytest.raises(SetupError, match=f"{foreign} is not a result part raygems can read"):
        run_search(config(recorded, out))


def _address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address
