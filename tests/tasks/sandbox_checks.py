"""Checks shared by the sandbox tests, and the attacks on the host's resources that the tests and
benchmarks/mbpp_scoring.py --attacks run (raygems issue 13)."""
from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Processes whose command line mentions ``text`` (the sandbox's directory) or whose working
    directory lies under it."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            cwd = ""
        if text in cmdline or cwd.startswith(text):
            found.append((int(entry.name), cmdline[:200]))
    return found


def boot_ticks() -> int:
    """Now, in clock ticks since boot (the unit of a process's start time in /proc/PID/stat)."""
    with open("/proc/uptime") as handle:
        return int(float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def orphaned_zombies(since_ticks: int) -> list[tuple[int, str]]:
    """Dead, unreaped sandbox processes (bwrap, unshare, the interpreter) handed to the machine's
    init, started at or after ``since_ticks``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        state, ppid, start = fields[0], int(fields[1]), int(fields[19])
        ours = comm in ("bwrap", "unshare") or comm.startswith("python")
        if state == "Z" and ppid == 1 and start >= since_ticks - 1 and ours:
            found.append((int(entry.name), comm))
    return found


def leftover_cgroups() -> list[str]:
    """Sandbox cgroups of this test process still present (each run must remove its own)."""
    from raygems.tasks.cgroups import PREFIX, usable_hierarchies

    mine = f"{PREFIX}{os.getpid()}-"
    return [str(entry) for hierarchy in usable_hierarchies() for entry in hierarchy.directory.iterdir()
            if entry.name.startswith(mine)]


# A loop of 15 MiB files into the working directory (14.3 GB of the host's disk in 8 s before). Prints
# the bytes it managed to write and the first errors.
DISK_FLOOD = """\
import os
chunk, written, refused = b"x" * (15 * 1024 * 1024), 0, []
for i in range(1000):
    try:
        with open(f"flood-{i}", "wb") as handle:
            handle.write(chunk)
    except OSError as error:
        refused.append(error.errno)
        if len(refused) > 20:
            break
    written += os.path.getsize(f"flood-{i}") if os.path.exists(f"flood-{i}") else 0
print(written, refused[:3])
"""

# Six forked children of {mb} MB each (4.9 GB under memory_mb=1024 before). Prints their exit codes.
FORKED_MEMORY = """\
import os, time
children = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        block = bytearray({mb} * 1024 * 1024)
        time.sleep(1)
        os._exit(0)
    children.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
"""

# A nested user and mount namespace with a tmpfs of 4 GiB filled with 3 GiB (held in the host's memory
# before). Prints how far it got.
NESTED_NAMESPACE = """\
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) != 0:      # CLONE_NEWUSER | CLONE_NEWNS
    print("unshare refused", os.strerror(ctypes.get_errno()))
    print("unshare -Urm:", subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode)
    raise SystemExit(0)
libc.prctl(4, 1, 0, 0, 0)                            # PR_SET_DUMPABLE: /proc/self is ours again
for name, line in (("setgroups", "deny"), ("uid_map", f"0 {os.getuid()} 1"), ("gid_map", f"0 {os.getgid()} 1")):
    with open(f"/proc/self/{name}", "w") as handle:
        handle.write(line)
os.mkdir("mnt")
assert libc.mount(b"none", b"mnt", b"tmpfs", 0, b"size=4g") == 0, os.strerror(ctypes.get_errno())
print("mounted", flush=True)
chunk, written = b"x" * (15 * 1024 * 1024), 0
for i in range(205):                                  # 3 GiB in files of 15 MiB (the file-size limit is 16)
    with open(f"mnt/hold-{i}", "wb") as handle:
        handle.write(chunk)
    written += len(chunk)
print("wrote", written)
"""
