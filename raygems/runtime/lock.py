"""One search per run directory at a time.

Two searches writing into the same `--out` would both pay for the same (model, query) pairs. `RunLock` takes an
OS-level lock on OUT/.search.lock for as long as a search runs (`fcntl.lockf`: a POSIX record lock, which NFS
supports, unlike `flock` on some systems); the file names the holder (process id, host, start time), so a second
search stops at once with an error that says who holds the directory. The kernel releases the lock when the
holder dies, however it dies (kill -9 included): a crashed search never leaves its directory locked.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from raygems.errors import UsageError
from raygems.run_directory import RunDirectory


class RunLock:
    def __init__(self, out: str | Path):
        self.path = RunDirectory(out).lock
        self._handle = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                handle.close()
                raise
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise UsageError(f"{self.path.parent} is in use by another search ({holder}): wait for it to finish, or "
                             f"give this one another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            fcntl.lockf(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
