"""Control groups for one sandbox run: a memory limit and a process limit for the whole process tree.

Resource limits (``setrlimit``) hold per process or per user: six forked processes of 800 MB each
stay under a 1 GiB address-space limit one by one, and every sandbox runs as the same ``nobody``,
so a process count per user is shared by all sandboxes running at once. A control group counts
every process the program starts, and everything they hold: anonymous memory, files in a tmpfs
(the sandbox's scratch directory), pipes, kernel memory.

``SandboxGroups`` makes one child group per hierarchy under this process's own group (so limits the
machine puts on us still hold above it), named ``raygems-sandbox-<pid>-<random>``: the memory
controller gets ``memory_bytes`` (swap included where swap is accounted), the pids controller
``max_tasks``. The sandbox's first process joins them before it starts anything (``procs_files``);
``remove`` kills whatever is left and deletes the groups. Each controller is taken from the cgroup v1
hierarchy that has it, else from the cgroup v2 hierarchy when it is enabled there (a v2 group with
processes of its own cannot enable controllers for children, so a v2 machine needs a delegated
group). ``available_controllers`` probes this once per process (creating and removing a test group)
and says which of "memory" and "pids" can be used; a machine without them runs sandboxes without
tree-wide limits, and ``SandboxResult.guarantees`` says so.
"""
from __future__ import annotations

import errno
import functools
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PREFIX = "raygems-sandbox-"
CONTROLLERS = ("memory", "pids")
_REMOVE_WAIT_S = 5.0


@dataclass(frozen=True)
class Hierarchy:
    """This process's own group in one mounted hierarchy, and which wanted controllers it has."""

    directory: Path
    version: int
    controllers: tuple[str, ...]


def _unescape(path: str) -> str:
    """Mount points in /proc/self/mountinfo escape space, tab, newline and backslash as octal."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        path = path.replace(code, chr(int(code[1:], 8)))
    return path


def _mounted_hierarchies() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root inside the hierarchy, "cgroup" or "cgroup2", super options) per cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                found.append((_unescape(fields[4]), _unescape(fields[3]), tail[0], set(tail[2].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """This process's group path per v1 controller, and under "" its cgroup v2 group."""
    groups = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


def _inside(mount_point: str, root: str, path: str) -> Path | None:
    relative = os.path.relpath(path, root)
    return None if relative.startswith("..") else Path(mount_point) / relative


def _v2_enabled(directory: Path, controller: str) -> bool:
    """Whether children of ``directory`` can get ``controller`` (enabling it when it is not yet)."""
    try:
        if controller not in (directory / "cgroup.controllers").read_text().split():
            return False
        if controller not in (directory / "cgroup.subtree_control").read_text().split():
            (directory / "cgroup.subtree_control").write_text(f"+{controller}")
        return True
    except OSError:  # EBUSY: our group holds processes itself (no internal processes in v2)
        return False


def _find_hierarchies() -> list[Hierarchy]:
    mounts, own = _mounted_hierarchies(), _own_groups()
    found: dict[Path, Hierarchy] = {}
    for controller in CONTROLLERS:
        directory, version = None, 0
        for mount_point, root, kind, options in mounts:
            if kind == "cgroup" and controller in options and controller in own:
                directory, version = _inside(mount_point, root, own[controller]), 1
                break
        if directory is None:
            for mount_point, root, kind, _ in mounts:
                if kind == "cgroup2" and "" in own:
                    candidate = _inside(mount_point, root, own[""])
                    if candidate is not None and _v2_enabled(candidate, controller):
                        directory, version = candidate, 2
                        break
        if directory is not None:
            known = found.get(directory)
            controllers = (known.controllers if known else ()) + (controller,)
            found[directory] = Hierarchy(directory, version, controllers)
    return list(found.values())


def _limit_files(hierarchy: Hierarchy, memory_bytes: int, max_tasks: int) -> list[tuple[str, str, bool]]:
    """(file, value, required) to write in a new group, in order (v1 wants the memory limit before
    the memory+swap limit)."""
    files = []
    if "memory" in hierarchy.controllers:
        if hierarchy.version == 1:
            files += [("memory.limit_in_bytes", str(memory_bytes), True),
                      ("memory.memsw.limit_in_bytes", str(memory_bytes), False)]
        else:
            files += [("memory.max", str(memory_bytes), True), ("memory.swap.max", "0", False)]
    if "pids" in hierarchy.controllers:
        files.append(("pids.max", str(max_tasks), True))
    return files


def _remove_stale(hierarchy: Hierarchy) -> None:
    """Delete empty groups left by sandbox runs of processes that no longer exist (killed hard)."""
    try:
        entries = list(hierarchy.directory.iterdir())
    except OSError:
        return
    for entry in entries:
        owner = entry.name[len(PREFIX):].split("-", 1)[0]
        if not (entry.name.startswith(PREFIX) and owner.isdigit()) or int(owner) == os.getpid():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            try:
                entry.rmdir()
            except OSError:
                pass
        except PermissionError:
            pass


@functools.lru_cache(maxsize=1)
def usable_hierarchies() -> tuple[Hierarchy, ...]:
    """The hierarchies where a test group could be made and limited here (probed once per process)."""
    usable = []
    try:
        hierarchies = _find_hierarchies()
    except OSError:
        return ()
    for hierarchy in hierarchies:
        _remove_stale(hierarchy)
        probe = hierarchy.directory / f"{PREFIX}{os.getpid()}-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            for name, value, required in _limit_files(hierarchy, 64 * 1024 ** 2, 8):
                if required:
                    (probe / name).write_text(value)
            usable.append(hierarchy)
        except OSError:
            pass
        finally:
            probe.rmdir()
    return tuple(usable)


def available_controllers() -> tuple[str, ...]:
    """Which of "memory" and "pids" a sandbox run can get here."""
    return tuple(c for c in CONTROLLERS if any(c in h.controllers for h in usable_hierarchies()))


def _counter(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed file (memory.events, memory.oom_control, pids.events)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class SandboxGroups:
    """The groups of one sandbox run: ``create``, let the first process join ``procs_files``, read
    ``peak_memory_bytes`` / ``oom_kills`` after the run, then ``remove`` (also after a timeout or an
    interrupt; safe to call twice)."""

    def __init__(self, memory_bytes: int, max_tasks: int) -> None:
        self.memory_bytes = memory_bytes
        self.max_tasks = max_tasks
        self.name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._groups: list[tuple[Hierarchy, Path]] = []

    def create(self) -> None:
        """Make the groups and set their limits. Raises OSError when that fails (after cleaning up)."""
        try:
            for hierarchy in usable_hierarchies():
                group = hierarchy.directory / self.name
                group.mkdir()
                self._groups.append((hierarchy, group))
                for name, value, required in _limit_files(hierarchy, self.memory_bytes, self.max_tasks):
                    if required or (group / name).exists():
                        (group / name).write_text(value)
        except OSError:
            self.remove()
            raise

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in CONTROLLERS if any(c in h.controllers for h, _ in self._groups))

    @property
    def procs_files(self) -> list[str]:
        return [str(group / "cgroup.procs") for _, group in self._groups]

    def _group(self, controller: str) -> tuple[Hierarchy, Path] | None:
        return next(((h, g) for h, g in self._groups if controller in h.controllers), None)

    def peak_memory_bytes(self) -> int | None:
        """The most memory the tree held at once (None without a memory group, or on cgroup v2
        kernels older than 5.19, which have no memory.peak)."""
        found = self._group("memory")
        if found is None:
            return None
        hierarchy, group = found
        try:
            name = "memory.max_usage_in_bytes" if hierarchy.version == 1 else "memory.peak"
            return int((group / name).read_text())
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """How many processes of the tree the kernel killed for going over the memory limit."""
        found = self._group("memory")
        if found is None:
            return 0
        hierarchy, group = found
        return _counter(group / ("memory.oom_control" if hierarchy.version == 1 else "memory.events"), "oom_kill")

    def remove(self) -> bool:
        """Kill every process still in the groups, then delete them. Never raises: False when a
        group could not be deleted within 5 s (it stays listed, and a later ``remove`` retries)."""
        deadline = time.monotonic() + _REMOVE_WAIT_S
        left = []
        for hierarchy, group in reversed(self._groups):
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        left.append((hierarchy, group))
                        break
                    _kill_members(group)
                    time.sleep(0.01)
        self._groups = left[::-1]
        return not left


def _kill_members(group: Path) -> None:
    try:
        if (group / "cgroup.kill").exists():  # cgroup v2, Linux 5.14+
            (group / "cgroup.kill").write_text("1")
            return
    except OSError:
        pass
    try:
        members = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
