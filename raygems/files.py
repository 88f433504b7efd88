"""Writing files safely: every file appears whole or not at all, and a full disk is reported as what it is. Used for
a run directory's files (the live search), a sweep's tables and a download's marker files. `check_output_path`
refuses, before any work, an output path a command could not write.

Each write goes to a temporary name in the same folder (`.<name>.<random>.tmp`), is flushed to disk (fsync), and
is renamed over the final name (atomic on POSIX file systems); the folder is then flushed too, so that the rename
itself survives a crash of the machine. A crash leaves at most a temporary file, which `remove_stale_temporaries`
deletes on the next start; a reader never sees half a file.

A write that fails because the disk (or a quota) is full raises `DiskFull`, a `SetupError`: the search stops with
one line naming the folder and its free space. It is never counted as a model's failure, and `--resume`
after freeing space continues with nothing lost.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from raygems.errors import SetupError, UsageError

#: errno values that mean "no room": no space left, quota exceeded.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
TEMPORARY_SUFFIX = ".tmp"


#: What a full disk's message tells a search to do (a sweep says its own: `raygems.sweep.store`).
RUN_AGAIN = "run again with --resume"


class DiskFull(SetupError):
    """No room left where a run writes its files. `again`: how to continue once there is room."""

    def __init__(self, folder: Path, again: str = RUN_AGAIN, message: str | None = None):
        if message is None:
            try:
                free = f"{shutil.disk_usage(folder).free / 1e9:.2f} GB free"
            except OSError:
                free = "free space unknown"
            message = (f"no space left to write in {folder} ({free}): free some space, then {again}; everything "
                       f"recorded so far is kept")
        super().__init__(message)
        self.folder = folder
        self.again = again

    def __reduce__(self):
        """Pickled as it is (a model actor's full disk reaches the driver with the free space where it happened)."""
        return type(self), (self.folder, self.again, str(self))


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary_path)` to write the whole file, make it durable, and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:   # the bytes are on disk before the rename makes them visible
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in NO_SPACE:
            raise DiskFull(path.parent) from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


#: errno values of a file system that cannot flush a folder (some FUSE, CIFS and network file systems).
CANNOT_FLUSH_FOLDER = (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable; on a file system that cannot flush a folder, they stay as durable as
    it makes them."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if exc.errno not in CANNOT_FLUSH_FOLDER:
            raise
    finally:
        os.close(descriptor)


def write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_parquet(path: Path, frame) -> Path:
    """A pandas DataFrame as a parquet file, atomically."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def remove_stale_temporaries(folder: Path, of: str | None = None) -> int:
    """Delete the temporary files that interrupted writes left under `folder` (recursively), or only those of the
    file named `of` in `folder`; returns how many. Only for a folder no other process is writing to (the run's
    lock holder calls it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = folder.glob(f".{of}.*{TEMPORARY_SUFFIX}") if of is not None else folder.rglob(f".*{TEMPORARY_SUFFIX}")
    stale = [p for p in found if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def check_output_path(path: Path, flag: str, folder: bool = False) -> None:
    """Refuse, in one line and before any work, an output `path` that cannot be written: a folder where a file is
    wanted (or the reverse), or a place where the folders cannot be made or a file cannot be created. Probes by
    creating what is missing and a file in it, then removes what it made; leaves existing files alone."""
    import tempfile

    if path.exists() and path.is_dir() != folder:
        raise UsageError(f"{flag} {path}: is a {'file, not a directory' if folder else 'directory'}")
    folder_path = path if folder else path.parent
    made: list[Path] = []
    missing = folder_path
    while not missing.exists() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    try:
        for step in reversed(made):
            step.mkdir()
        if folder:
            with tempfile.TemporaryFile(dir=folder_path):
                pass
        elif not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            os.close(fd)
            path.unlink()
        elif not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        where = exc.filename if exc.filename is not None else (folder_path if folder else path)
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, NotADirectoryError) or (missing.exists() and not missing.is_dir()):
            reason = f"{missing} is a file, not a directory"
            where = None
        raise UsageError(f"{flag} {path}: cannot be written ({f'{where}: ' if where else ''}{reason})") from None
    finally:
        for step in made:       # deepest first
            try:
                step.rmdir()
            except OSError:
                pass


def format_bytes(n: float) -> str:
    """'512 B', '41.2 GB' (decimal units, as the hub and disks count)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
