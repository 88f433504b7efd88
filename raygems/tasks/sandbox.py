"""Run untrusted Python programs (MBPP completions) in a throw-away sandbox.

Each call of ``run_program`` runs one program in its own process tree:

* **isolation** (bubblewrap, preferred): a new mount namespace that shows only ``/usr`` (and the
  ``/bin``, ``/lib*`` links), the Python installation (read-only) and a fresh tmpfs of
  ``disk_mb`` (the only writable place, also the working directory, ``HOME`` and ``TMPDIR``; the
  program file is bound into it read-only); new network (no interfaces but a downed loopback), PID,
  IPC and UTS namespaces; a new session; an empty environment apart from ``PATH``, ``HOME``,
  ``TMPDIR``, ``LANG`` and ``PYTHONHASHSEED``. Run as root, the program drops to the ``nobody`` user
  inside, so nothing it can see is writable but its scratch directory. A seccomp filter
  (``raygems.tasks.seccomp``) refuses new user namespaces, inside which it could mount file systems
  of its own.
* **limits for the whole process tree** (``raygems.tasks.cgroups``): a memory cgroup of
  ``memory_mb`` (everything the tree holds: its processes, the tmpfs, its output) and a pids cgroup
  of ``max_processes``, both joined before the sandbox starts.
* **limits per process** (set by a small launcher inside the sandbox, before the program starts): CPU
  time, address space (``memory_mb``: a single oversized allocation fails with MemoryError rather than
  an out-of-memory kill), file size (which also caps what the program can print) and open files; no
  core dumps; the number of processes of the user where no pids cgroup is available.
* **wall time**: past ``timeout_s`` the sandbox's PID namespace is killed; killing a PID namespace's
  first process makes the kernel kill every process in it, so fork storms, daemons and
  ``setsid`` escapes are all gone. A small reaper process between us and the sandbox (a child
  subreaper) collects every one of them, so the call returns only when none is left, not even a
  zombie. When the program ends by itself the namespace goes the same way: nothing it started
  outlives it. The cgroups are then removed (also after a timeout or an interrupt).
* **output**: stdout and stderr go to memory files (``memfd``) charged to the sandbox's memory cgroup;
  the caller keeps their last 4 KiB. With ``channel_bytes``, the program also gets a pipe of its own
  (file descriptor ``SANDBOX_CHANNEL_FD``, a global of the program) whose first ``channel_bytes``
  bytes come back as ``SandboxResult.channel``: the MBPP scorer reads call results from it.

Without bubblewrap, ``unshare`` (util-linux) gives the network and PID namespaces, a fresh /proc,
the same per-process limits and the same cgroups, but no file-system isolation (the program can write
wherever its user may, without a size limit), no seccomp filter, and, run as root from a Python
installation that only root can read, no privilege drop.
``SandboxResult.isolation`` says which one ran and ``SandboxResult.guarantees`` which of the
guarantees above held. Install bubblewrap with ``apt-get install -y bubblewrap``.

Executing model-written code is opt-in: pass ``allow=True`` or set ``RAYGEMS_ALLOW_CODE_EXECUTION=1``;
otherwise ``run_program`` raises ``CodeExecutionDisabled``.
"""
from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from raygems.tasks.cgroups import SandboxGroups, available_controllers
from raygems.tasks.seccomp import syscall_filter

ENV_FLAG = "RAYGEMS_ALLOW_CODE_EXECUTION"
NOBODY_UID = 65534
NOBODY_GID = 65534
MIB = 1024 * 1024
_TAIL_BYTES = 4096
_TEARDOWN_WAIT_S = 5.0
# Processes of the tree besides the program: the reaper, bwrap and the namespace's init (bwrap's
# own), or the reaper and unshare.
_SUPERVISORS = {"bwrap": 3, "unshare": 2}

# What SandboxResult.guarantees can list.
ISOLATED_FILES = "isolated-files"            # sees /usr, the Python installation and its scratch directory only
SCRATCH_DISK_LIMIT = "scratch-disk-limit"    # writes go to a tmpfs of disk_mb, nowhere else
TREE_MEMORY_LIMIT = "tree-memory-limit"      # memory_mb for every process of the tree together
TREE_PROCESS_LIMIT = "tree-process-limit"    # max_processes for the tree, not per user
NO_USER_NAMESPACES = "no-user-namespaces"    # creating a user namespace fails
NO_KERNEL_KEYRING = "no-kernel-keyring"      # add_key, request_key and keyctl fail: nothing outlives the sandbox there
ALL_GUARANTEES = (ISOLATED_FILES, SCRATCH_DISK_LIMIT, TREE_MEMORY_LIMIT, TREE_PROCESS_LIMIT, NO_USER_NAMESPACES,
                  NO_KERNEL_KEYRING)


class CodeExecutionDisabled(RuntimeError):
    """Model-written code may only run when the user opted in."""

    def __init__(self) -> None:
        super().__init__(
            "Running model-written code is disabled. MBPP completions are Python programs that must "
            f"be executed to be scored; enable this explicitly with {ENV_FLAG}=1 in the environment "
            "(or pass allow=True / allow_code_execution=True). They run in a sandbox "
            "(see raygems.tasks.sandbox and docs/sandbox.md)."
        )


class SandboxUnavailable(RuntimeError):
    """Neither bubblewrap nor unshare can create namespaces on this machine."""


def code_execution_enabled(allow: bool | None = None) -> bool:
    """``allow`` when given, else whether ``RAYGEMS_ALLOW_CODE_EXECUTION`` is ``1``/``true``/``yes``."""
    if allow is not None:
        return bool(allow)
    return os.environ.get(ENV_FLAG, "").strip().lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one program run. ``cpu_s`` defaults to the wall time. ``memory_mb`` and
    ``max_processes`` hold for the whole process tree where cgroups are available;
    ``process_memory_mb`` is each process's address space (None: ``max(memory_mb, 1024)``; an address
    space is far larger than what a process holds, so this one only stops single huge allocations and is
    the only memory limit where cgroups are not available); ``disk_mb`` is the size of the scratch
    directory (bubblewrap only)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    process_memory_mb: int | None = None
    cpu_s: float | None = None
    max_processes: int = 64
    max_file_mb: int = 16
    max_open_files: int = 256
    disk_mb: int = 64

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64 (the interpreter needs it), got {self.memory_mb!r}")
        if self.process_memory_mb is not None and self.process_memory_mb < 64:
            raise ValueError(f"process_memory_mb must be at least 64, got {self.process_memory_mb!r}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be positive, got {self.cpu_s!r}")
        for name in ("max_processes", "max_file_mb", "max_open_files", "disk_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")


@dataclass
class SandboxResult:
    """What happened to one program.

    ``reason``: "ok" (exit status 0), "error" (non-zero exit, e.g. an uncaught exception), "memory"
    (MemoryError, the address-space limit or an out-of-memory kill in the tree's memory cgroup),
    "timeout" (wall time), "cpu-time", "output-limit" (file-size limit, e.g. endless printing),
    "killed" (another signal). ``returncode`` is None after a timeout; a signal N shows as 128 + N.
    ``stdout``/``stderr`` are the last 4 KiB of each. ``isolation``: "bwrap" or "unshare".
    ``channel``: what the program wrote to its channel (at most ``channel_bytes``;
    ``channel_overflow`` when it tried to write more). ``peak_memory_mb``: the most the whole tree held
    at once (None without a memory cgroup). ``guarantees``: which of ``ISOLATED_FILES``,
    ``SCRATCH_DISK_LIMIT``, ``TREE_MEMORY_LIMIT``, ``TREE_PROCESS_LIMIT``, ``NO_USER_NAMESPACES`` and
    ``NO_KERNEL_KEYRING`` held for this run (network, PID namespace, wall time and per-process limits always do).
    """

    passed: bool
    returncode: int | None
    reason: str
    stdout: str
    stderr: str
    seconds: float
    isolation: str
    channel: bytes = b""
    channel_overflow: bool = False
    peak_memory_mb: float | None = None
    guarantees: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------
# The launcher: runs inside the sandbox, sets the limits, drops privileges, then runs the program.
# ------------------------------------------------------------------------------------------------
_LAUNCHER = """\
def _enter_sandbox():
    import json, os, resource, sys
    config = json.loads(sys.argv[1])
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")  # over the tree's memory limit, the kernel kills the program first, not the reaper
    for name, (soft, hard) in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if config["uid"] is not None:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
    sys.argv = sys.argv[2:]
    return sys.argv[0], config["run_name"], config["globals"]
_program, _run_name, _globals = _enter_sandbox()
del _enter_sandbox
import runpy
runpy.run_path(_program, init_globals=_globals, run_name=_run_name)
"""


# ------------------------------------------------------------------------------------------------
# The reaper: our direct child. It makes itself a child subreaper, waits until we have moved it into
# the sandbox's cgroups (one byte on its start pipe), runs the isolation command and reaps every
# process of the sandbox that ends up orphaned (bwrap's monitor exits without waiting for the
# namespace's init, whose zombie would otherwise be left to the machine's init), then exits with the
# command's status (128 + N for a signal). It dies with us (parent-death signal).
# ------------------------------------------------------------------------------------------------
_REAPER = """\
import ctypes, os, signal, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl(36, 1, 0, 0, 0)                      # PR_SET_CHILD_SUBREAPER
_libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)     # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):             # the parent died before the prctl
    sys.exit(137)
_start = int(sys.argv[2])
if os.read(_start, 1) != b"1":                   # the parent gave up before the sandbox started
    sys.exit(137)
os.close(_start)
_child = os.posix_spawn(sys.argv[3], sys.argv[3:], os.environ)
_status = 0
while True:
    try:
        _pid, _raw = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if _pid == _child:
        _code = os.waitstatus_to_exitcode(_raw)
        _status = 128 - _code if _code < 0 else _code
sys.exit(_status)
"""


def _interpreter() -> tuple[str, Path]:
    """The real (non-venv) Python executable and the installation prefix it needs to see."""
    executable = os.path.realpath(sys.executable)
    return executable, Path(os.path.realpath(sys.base_prefix))


def _ancestors(path: Path) -> list[Path]:
    return list(reversed(path.parents))[1:]  # without "/"


def _run_reaped(command: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``command`` to the end under the reaper (``_REAPER``), so that every process it leaves behind,
    such as the init of a PID namespace killed with its parent, is collected there instead of becoming a
    zombie handed to the host's init."""
    executable, _ = _interpreter()
    start_read, start_write = os.pipe()
    try:
        os.write(start_write, b"1")
        os.close(start_write)
        start_write = -1
        return subprocess.run([executable, "-I", "-S", "-B", "-c", _REAPER, str(os.getpid()), str(start_read),
                               shutil.which(command[0]) or command[0], *command[1:]],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                              pass_fds=(start_read,))
    finally:
        os.close(start_read)
        if start_write >= 0:
            os.close(start_write)


@functools.lru_cache(maxsize=1)
def available_isolation() -> str:
    """"bwrap" or "unshare", whichever works here (probed once per process)."""
    probes = {
        "bwrap": ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "--unshare-pid",
                  "--die-with-parent"] + ([] if os.geteuid() == 0 else ["--unshare-user"]) + ["true"],
        "unshare": ["unshare", "--net", "--pid", "--fork", "--kill-child"]
                   + ([] if os.geteuid() == 0 else ["--map-root-user"]) + ["true"],
    }
    errors = []
    for name, command in probes.items():
        if shutil.which(command[0]) is None:
            errors.append(f"{command[0]} is not installed")
            continue
        probe = _run_reaped(command, timeout_s=30)
        if probe.returncode == 0:
            return name
        errors.append(f"{command[0]} failed: {probe.stderr.decode(errors='replace').strip()[:200]}")
    raise SandboxUnavailable(
        "cannot sandbox model-written code here (" + "; ".join(errors) + "). "
        "Install bubblewrap: apt-get install -y bubblewrap"
    )


def _guarantees(isolation: str, controllers: tuple[str, ...]) -> tuple[str, ...]:
    held = []
    if isolation == "bwrap":
        held += [ISOLATED_FILES, SCRATCH_DISK_LIMIT]
    if "memory" in controllers:
        held.append(TREE_MEMORY_LIMIT)
    if "pids" in controllers:
        held.append(TREE_PROCESS_LIMIT)
    if isolation == "bwrap" and syscall_filter() is not None:
        held += [NO_USER_NAMESPACES, NO_KERNEL_KEYRING]
    return tuple(held)


def expected_guarantees() -> tuple[str, ...]:
    """The guarantees a run gets on this machine (see ``SandboxResult.guarantees``)."""
    return _guarantees(available_isolation(), available_controllers())


def _user_process_count(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _rlimits(limits: SandboxLimits, drop_to_nobody: bool, tree_process_limit: bool) -> dict[str, tuple[int, int]]:
    cpu = int(max(1, round(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s)))
    memory = (limits.process_memory_mb or max(limits.memory_mb, 1024)) * MIB
    file_size = limits.max_file_mb * MIB
    rlimits = {
        "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL one second later
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_FSIZE": (file_size, file_size),
        "RLIMIT_NOFILE": (limits.max_open_files, limits.max_open_files),
        "RLIMIT_CORE": (0, 0),
    }
    if not tree_process_limit:  # the per-user count, shared by every sandbox running as the same user
        if drop_to_nobody:
            nproc = limits.max_processes
        else:  # leave room for the user's processes already running
            nproc = _user_process_count(os.getuid()) + limits.max_processes
        rlimits["RLIMIT_NPROC"] = (nproc, nproc)
    return rlimits


def _bwrap_command(workdir: Path, program: Path, disk_bytes: int, info_fd: int, seccomp_fd: int | None,
                   launcher_args: list[str], is_root: bool) -> list[str]:
    executable, prefix = _interpreter()
    command = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    created: set[Path] = set()
    for path in (prefix, Path(executable).parent, workdir):
        if path == Path("/usr") or Path("/usr") in path.parents:
            continue
        for ancestor in _ancestors(path):
            if ancestor not in created:
                command += ["--perms", "0755", "--dir", str(ancestor)]
                created.add(ancestor)
        if path not in created:
            if path == workdir:  # the scratch directory: a tmpfs of its own, writable by the program
                command += ["--size", str(disk_bytes), "--perms", "1777", "--tmpfs", str(path)]
            else:
                command += ["--ro-bind", str(path), str(path)]
            created.add(path)
    command += [
        "--ro-bind", str(program), str(workdir / program.name),
        "--dev", "/dev", "--proc", "/proc",
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", str(workdir), "--setenv", "TMPDIR", str(workdir),
        "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0",
        "--chdir", str(workdir), "--info-fd", str(info_fd),
    ]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    if is_root:  # the launcher needs these two capabilities to drop to nobody, and nothing else
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-user"]
    return command + [executable] + launcher_args


def _unshare_command(launcher_args: list[str], is_root: bool) -> list[str]:
    executable, _ = _interpreter()
    command = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
    if not is_root:
        command += ["--map-root-user"]
    return command + [executable] + launcher_args


def _world_readable(prefix: Path) -> bool:
    """Whether a user without privileges can use the Python installation at ``prefix``."""
    for path in [*_ancestors(prefix), prefix]:
        try:
            if not os.stat(path).st_mode & 0o005:
                return False
        except OSError:
            return False
    return True


def _read_tail(fd: int) -> str:
    size = os.fstat(fd).st_size
    data = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    return data.decode("utf-8", errors="replace")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


class _Channel:
    """The read end of the program's channel: keeps the first ``limit`` bytes, then stops reading
    and closes (the program's further writes fail)."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd: int | None = fd
        self.limit = limit
        self.data = bytearray()
        self.overflow = False
        os.set_blocking(fd, False)

    def pump(self) -> None:
        """Read what is there now; close on end of file or past the limit."""
        while self.fd is not None:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if chunk:
                self.data += chunk
                if len(self.data) <= self.limit:
                    continue
                self.overflow = True
                del self.data[self.limit:]
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _wait_for_exit(process: subprocess.Popen, timeout_s: float, channel: _Channel | None = None) -> bool:
    """Wait up to ``timeout_s`` for ``process`` to exit, reading ``channel`` meanwhile; False on
    timeout. Uses a pidfd where the kernel has them (woken the moment the process exits; Popen.wait
    polls with sleeps of up to 50 ms, which costs more than a short program's run)."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd: int | None = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            poller = select.poll()
            if pidfd is not None:
                poller.register(pidfd, select.POLLIN)
            if channel is not None and channel.fd is not None:
                poller.register(channel.fd, select.POLLIN)
            remaining = deadline - time.monotonic()
            if process.poll() is not None:
                break
            if remaining <= 0:
                return False
            wait_ms = remaining * 1000 if pidfd is not None else min(remaining, 0.01) * 1000
            for fd, _ in poller.poll(wait_ms):
                if channel is not None and fd == channel.fd:
                    channel.pump()
    finally:
        if pidfd is not None:
            os.close(pidfd)
    process.wait()
    if channel is not None:
        channel.pump()  # the rest: every writer has exited by now
    return True


def _kill_tree(process: subprocess.Popen, namespace_init: int | None) -> None:
    """End the sandbox and wait until every process of it is gone and reaped.

    Killing the PID namespace's first process makes the kernel kill every process in the namespace;
    the reaper then collects them all and exits. Only when that does not happen in time (the
    namespace was never reported) is the reaper's whole process group killed."""
    if process.poll() is None and namespace_init:
        try:
            os.kill(namespace_init, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if _wait_for_exit(process, _TEARDOWN_WAIT_S):
            return
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()


def _reason(returncode: int | None, timed_out: bool, stderr: str, oom_kills: int) -> str:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return "ok"
    signum = -returncode if returncode is not None and returncode < 0 else (
        returncode - 128 if returncode is not None and returncode > 128 else None)
    if signum == signal.SIGXCPU:
        return "cpu-time"
    if signum == signal.SIGXFSZ or "File too large" in stderr:  # CPython ignores SIGXFSZ: EFBIG
        return "output-limit"
    if oom_kills or "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory"
    if signum is not None and signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        return "killed"
    return "error"


def _pipe_with(data: bytes) -> int:
    """A pipe's read end that yields ``data`` (at most a pipe buffer, 64 KiB) and then end of file."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return read_end


def run_program(code: str, timeout_s: float = 10.0, memory_mb: int = 1024, allow: bool | None = None,
                *, limits: SandboxLimits | None = None, run_name: str = "__main__",
                channel_bytes: int = 0) -> SandboxResult:
    """Run Python source ``code`` in a sandbox and report how it ended.

    ``allow``: True to run, False to refuse, None to follow ``RAYGEMS_ALLOW_CODE_EXECUTION``.
    ``limits`` overrides ``timeout_s``/``memory_mb`` with a full ``SandboxLimits``.
    ``run_name``: the program's ``__name__`` (anything but "__main__" skips its ``if __name__ == "__main__"``
    block, as test harnesses that import a solution do).
    ``channel_bytes``: when positive, the program gets a pipe (its global ``SANDBOX_CHANNEL_FD``) whose
    first ``channel_bytes`` bytes come back in ``SandboxResult.channel``.
    Raises ``CodeExecutionDisabled`` when execution is not enabled and ``SandboxUnavailable`` when no
    isolation works on this machine; never raises because of what the program does.
    """
    if not code_execution_enabled(allow):
        raise CodeExecutionDisabled()
    limits = limits or SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)
    isolation = available_isolation()
    is_root = os.geteuid() == 0
    _, prefix = _interpreter()
    drop_to_nobody = is_root and (isolation == "bwrap" or _world_readable(prefix))
    groups = SandboxGroups(limits.memory_mb * MIB, limits.max_processes + _SUPERVISORS[isolation])

    base = Path(tempfile.mkdtemp(prefix="raygems-sandbox-"))
    workdir = base / "work"
    workdir.mkdir(mode=0o700)
    program = (base if isolation == "bwrap" else workdir) / "program.py"
    program.write_text(code, encoding="utf-8")
    if drop_to_nobody:
        os.chown(workdir, NOBODY_UID, NOBODY_GID)

    fds: list[int] = []        # ours, closed at the end
    child_fds: list[int] = []  # the child's ends, closed once it started
    stdout_fd, stderr_fd = os.memfd_create("stdout"), os.memfd_create("stderr")
    fds += [stdout_fd, stderr_fd]
    info_read, info_write = os.pipe()
    start_read, start_write = os.pipe()
    fds += [info_read, start_write]
    child_fds += [info_write, start_read]
    channel = None
    sandbox_globals = {}
    if channel_bytes > 0:
        channel_read, channel_write = os.pipe()
        channel = _Channel(channel_read, channel_bytes)
        child_fds.append(channel_write)
        sandbox_globals["SANDBOX_CHANNEL_FD"] = channel_write
    seccomp_filter = syscall_filter() if isolation == "bwrap" else None
    seccomp_fd = _pipe_with(seccomp_filter) if seccomp_filter is not None else None
    if seccomp_fd is not None:
        child_fds.append(seccomp_fd)

    timed_out = False
    namespace_init: int | None = None
    process: subprocess.Popen | None = None
    finished = False
    started = time.monotonic()
    try:
        try:
            groups.create()
        except OSError as error:
            raise SandboxUnavailable(f"cannot create the sandbox's cgroups: {error}") from error
        config = {"limits": _rlimits(limits, drop_to_nobody, "pids" in groups.controllers),
                  "uid": NOBODY_UID if drop_to_nobody else None, "gid": NOBODY_GID, "run_name": run_name,
                  "globals": sandbox_globals}
        launcher_args = ["-I", "-S", "-B", "-c", _LAUNCHER, json.dumps(config), str(workdir / program.name)]
        if isolation == "bwrap":
            command = _bwrap_command(workdir, program, limits.disk_mb * MIB, info_write, seccomp_fd,
                                     launcher_args, is_root)
        else:
            command = _unshare_command(launcher_args, is_root)
        executable, _ = _interpreter()
        command = [executable, "-I", "-S", "-B", "-c", _REAPER, str(os.getpid()), str(start_read),
                   shutil.which(command[0]) or command[0], *command[1:]]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout_fd, stderr=stderr_fd, cwd=workdir,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True, pass_fds=tuple(child_fds), close_fds=True,
        )
        for fd in child_fds:
            os.close(fd)
        child_fds = []
        try:
            for procs_file in groups.procs_files:  # the reaper joins the groups before it starts anything
                with open(procs_file, "w") as handle:
                    handle.write(str(process.pid))
        except OSError as error:
            raise SandboxUnavailable(f"cannot move the sandbox into its cgroups: {error}") from error
        os.write(start_write, b"1")
        timed_out = not _wait_for_exit(process, limits.timeout_s, channel)
        namespace_init = _namespace_init(info_read, process, isolation)
        _kill_tree(process, namespace_init)
        if channel is not None:
            channel.pump()  # what a timed-out program wrote last
        returncode = process.returncode
        finished = True
    finally:
        if not finished and process is not None:  # interrupted (KeyboardInterrupt, a bug): leave nothing behind
            _kill_tree(process, _namespace_init(info_read, process, isolation))
        stdout, stderr = _read_tail(stdout_fd), _read_tail(stderr_fd)
        peak, oom_kills, controllers = groups.peak_memory_bytes(), groups.oom_kills(), groups.controllers
        for fd in fds + child_fds:
            os.close(fd)
        if channel is not None:
            channel.close()
        groups.remove()
        shutil.rmtree(base, ignore_errors=True)
    seconds = time.monotonic() - started
    guarantees = _guarantees(isolation, controllers)
    reason = _reason(returncode, timed_out, stderr, oom_kills)
    return SandboxResult(passed=reason == "ok", returncode=None if timed_out else returncode,
                         reason=reason, stdout=stdout, stderr=stderr, seconds=seconds, isolation=isolation,
                         channel=bytes(channel.data) if channel else b"",
                         channel_overflow=bool(channel and channel.overflow),
                         peak_memory_mb=None if peak is None else peak / MIB, guarantees=guarantees)


def _namespace_init(info_read: int, process: subprocess.Popen, isolation: str) -> int | None:
    """The host PID of the sandbox's PID-namespace init: bwrap reports it on its info fd; under
    unshare it is the only child of unshare, the reaper's only child."""
    if isolation == "unshare":
        for launcher in _children(process.pid):
            children = _children(launcher)
            if children:
                return children[0]
        return None
    os.set_blocking(info_read, False)
    try:
        data = os.read(info_read, 65536)
    except BlockingIOError:
        return None
    try:
        return int(json.loads(data.decode())["child-pid"])
    except (ValueError, KeyError):
        return None
