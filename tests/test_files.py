"""Files written whole or not at all: a failed write leaves the old file and no temporary behind, a full disk is
`DiskFull` naming the folder, and a crash's temporaries are found and deleted."""
from __future__ import annotations

import errno
import json
import os
import pickle

import pytest

from raygems import files
from raygems.files import DiskFull, atomic_write, remove_stale_temporaries, write_bytes, write_json


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "deep" / "summary.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_bytes(tmp_path / "marker.json", b"old")

    def half_then_fail(temporary):
        temporary.write_bytes(b"ne")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["marker.json"]


def test_a_full_disk_is_disk_full_naming_the_folder(tmp_path):
    def no_space(temporary):
        temporary.write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull, match=str(tmp_path)) as raised:
        atomic_write(tmp_path / "part.parquet", no_space)
    assert "--resume" in str(raised.value) and list(tmp_path.iterdir()) == []
    again = pickle.loads(pickle.dumps(raised.value))          # as it crosses from a model actor to the driver
    assert str(again) == str(raised.value) and again.folder == tmp_path
    assert "run the sweep again" in str(DiskFull(tmp_path, again="run the sweep again"))


def test_a_folder_that_cannot_be_flushed_keeps_the_write_and_other_errors_raise(tmp_path, monkeypatch):
    real_fsync = os.fsync
    failure = [errno.EINVAL]

    def fsync(descriptor):
        if os.path.isdir(f"/proc/self/fd/{descriptor}"):    # the folder, after the rename
            raise OSError(failure[0], os.strerror(failure[0]))
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync)
    assert write_bytes(tmp_path / "a", b"kept").read_bytes() == b"kept"
    failure[0] = errno.EIO
    with pytest.raises(OSError, match="Input/output error"):
        write_bytes(tmp_path / "b", b"x")


def test_temporaries_left_by_a_crash_are_deleted(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / ".part-1.parquet.1a2b3c4d.tmp").write_bytes(b"half")
    (tmp_path / ".results.parquet.5e6f7a8b.tmp").write_bytes(b"half")
    (tmp_path / ".other.parquet.9a0b1c2d.tmp").write_bytes(b"someone else's")
    kept = write_json(tmp_path / "store" / "part-0.json", [])
    assert remove_stale_temporaries(tmp_path, of="results.parquet") == 1     # one file's only, not recursive
    assert remove_stale_temporaries(tmp_path) == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [kept]
