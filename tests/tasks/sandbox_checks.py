"""Checks shared by the sandbox tests."""
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
