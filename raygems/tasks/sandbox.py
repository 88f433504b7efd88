"""Run untrusted Python programs (MBPP completions) in a throw-away sandbox.

Each call of ``run_program`` runs one program in its own process tree:

* **isolation** (bubblewrap, preferred): a new mount namespace that shows only ``/usr`` (and the
  ``/bin``, ``/lib*`` links), the Python installation (read-only) and a fresh temporary directory (the
  only writable place, also the working directory, ``HOME`` and ``TMPDIR``); new network (no interfaces
  but a downed loopback), PID, IPC and UTS namespaces; a new session; an empty environment apart from
  ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and ``PYTHONHASHSEED``. Run as root, the program drops to
  the ``nobody`` user inside, so the process limit below applies and nothing it can see is writable.
* **resource limits** (set by a small launcher inside the sandbox, before the program starts): CPU
  time, address space (memory), number of processes of the user, file size (which also caps what the
  program can print) and open files; no core dumps.
* **wall time**: past ``timeout_s`` the sandbox's PID namespace is killed; killing a PID namespace's
  first process makes the kernel kill every process in it, so fork storms, daemons and
  ``setsid`` escapes are all gone. A small reaper process between us and the sandbox (a child
  subreaper) collects every one of them, so the call returns only when none is left, not even a
  zombie. When the program ends by itself the namespace goes the same way: nothing it started
  outlives it.

Without bubblewrap, ``unshare`` (util-linux) gives the network and PID namespaces, a fresh /proc and
the same limits, but no file-system isolation (the program can write wherever its user may), and, run
as root from a Python installation that only root can read, no privilege drop, so the process limit
does not hold (root is exempt): a fork storm is then bounded by the wall time only.
``SandboxResult.isolation`` says which one ran. Install bubblewrap with ``apt-get install -y bubblewrap``.

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

ENV_FLAG = "RAYGEMS_ALLOW_CODE_EXECUTION"
NOBODY_UID = 65534
NOBODY_GID = 65534
_TAIL_BYTES = 4096
_TEARDOWN_WAIT_S = 5.0


class CodeExecutionDisabled(RuntimeError):
    """Model-written code may only run when the user opted in."""

    def __init__(self) -> None:
        super().__init__(
            "Running model-written code is disabled. MBPP completions are Python programs that must "
            f"be executed to be scored; enable this explicitly with {ENV_FLAG}=1 in the environment "
            "(or pass allow=True / allow_code_execution=True). They run in a sandbox "
            "(see raygems.tasks.sandbox and docs/tasks.md)."
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
    """Limits for one program run. ``cpu_s`` defaults to the wall time."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    cpu_s: float | None = None
    max_processes: int = 64
    max_file_mb: int = 16
    max_open_files: int = 256

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64 (the interpreter needs it), got {self.memory_mb!r}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be positive, got {self.cpu_s!r}")
        for name in ("max_processes", "max_file_mb", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")


@dataclass
class SandboxResult:
    """What happened to one program.

    ``reason``: "ok" (exit status 0), "error" (non-zero exit, e.g. a failed assert), "memory"
    (MemoryError or address-space limit), "timeout" (wall time), "cpu-time", "output-limit" (file-size
    limit, e.g. endless printing), "killed" (another signal); the MBPP scorer adds "exited-early".
    ``returncode`` is None after a timeout; a signal N shows as 128 + N. ``stdout``/``stderr`` are
    the last 4 KiB of each. ``isolation``: "bwrap" or "unshare".
    """

    passed: bool
    returncode: int | None
    reason: str
    stdout: str
    stderr: str
    seconds: float
    isolation: str


# ------------------------------------------------------------------------------------------------
# The launcher: runs inside the sandbox, sets the limits, drops privileges, then runs the program.
# ------------------------------------------------------------------------------------------------
_LAUNCHER = """\
def _enter_sandbox():
    import json, os, resource, sys
    config = json.loads(sys.argv[1])
    for name, (soft, hard) in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if config["uid"] is not None:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
    sys.argv = sys.argv[2:]
    return sys.argv[0], config["run_name"]
_program, _run_name = _enter_sandbox()
del _enter_sandbox
import runpy
runpy.run_path(_program, run_name=_run_name)
"""


# ------------------------------------------------------------------------------------------------
# The reaper: our direct child. It makes itself a child subreaper, runs the isolation command and
# reaps every process of the sandbox that ends up orphaned (bwrap's monitor exits without waiting for
# the namespace's init, whose zombie would otherwise be left to the machine's init), then exits with
# the command's status (128 + N for a signal). It dies with us (parent-death signal).
# ------------------------------------------------------------------------------------------------
_REAPER = """\
import ctypes, os, signal, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl(36, 1, 0, 0, 0)                      # PR_SET_CHILD_SUBREAPER
_libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)     # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):             # the parent died before the prctl
    sys.exit(137)
_child = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
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
        probe = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if probe.returncode == 0:
            return name
        errors.append(f"{command[0]} failed: {probe.stderr.decode(errors='replace').strip()[:200]}")
    raise SandboxUnavailable(
        "cannot sandbox model-written code here (" + "; ".join(errors) + "). "
        "Install bubblewrap: apt-get install -y bubblewrap"
    )


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


def _rlimits(limits: SandboxLimits, drop_to_nobody: bool) -> dict[str, tuple[int, int]]:
    cpu = int(max(1, round(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s)))
    if drop_to_nobody:
        nproc = limits.max_processes
    else:  # RLIMIT_NPROC counts every process of the user: leave room for the ones already running
        nproc = _user_process_count(os.getuid()) + limits.max_processes
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.max_file_mb * 1024 * 1024
    return {
        "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL one second later
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_NPROC": (nproc, nproc),
        "RLIMIT_FSIZE": (file_size, file_size),
        "RLIMIT_NOFILE": (limits.max_open_files, limits.max_open_files),
        "RLIMIT_CORE": (0, 0),
    }


def _bwrap_command(workdir: Path, info_fd: int, launcher_args: list[str], is_root: bool) -> list[str]:
    executable, prefix = _interpreter()
    command = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    created: set[Path] = set()
    for path, how in ((prefix, "--ro-bind"), (Path(executable).parent, "--ro-bind"), (workdir, "--bind")):
        if path == Path("/usr") or Path("/usr") in path.parents:
            continue
        for ancestor in _ancestors(path):
            if ancestor not in created:
                command += ["--perms", "0755", "--dir", str(ancestor)]
                created.add(ancestor)
        if path not in created:
            command += [how, str(path), str(path)]
            created.add(path)
    command += [
        "--dev", "/dev", "--proc", "/proc",
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", str(workdir), "--setenv", "TMPDIR", str(workdir),
        "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0",
        "--chdir", str(workdir), "--info-fd", str(info_fd),
    ]
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


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _wait_for_exit(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``process`` to exit; False on timeout. Uses a pidfd where the
    kernel has them (woken the moment the process exits; Popen.wait polls with sleeps of up to 50 ms,
    which costs more than a short program's run)."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return process.poll() is not None
            if poller.poll(remaining * 1000):
                process.wait()
                return True
    finally:
        os.close(pidfd)


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


def _reason(returncode: int | None, timed_out: bool, stderr: str) -> str:
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
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory"
    if signum is not None and signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        return "killed"
    return "error"


def run_program(code: str, timeout_s: float = 10.0, memory_mb: int = 1024, allow: bool | None = None,
                *, limits: SandboxLimits | None = None, run_name: str = "__main__") -> SandboxResult:
    """Run Python source ``code`` in a sandbox and report how it ended.

    ``allow``: True to run, False to refuse, None to follow ``RAYGEMS_ALLOW_CODE_EXECUTION``.
    ``limits`` overrides ``timeout_s``/``memory_mb`` with a full ``SandboxLimits``.
    ``run_name``: the program's ``__name__`` (anything but "__main__" skips its ``if __name__ == "__main__"``
    block, as test harnesses that import a solution do).
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

    base = Path(tempfile.mkdtemp(prefix="raygems-sandbox-"))
    workdir = base / "work"
    workdir.mkdir(mode=0o700)
    program = workdir / "program.py"
    program.write_text(code, encoding="utf-8")
    if drop_to_nobody:
        os.chown(workdir, NOBODY_UID, NOBODY_GID)
    config = {"limits": _rlimits(limits, drop_to_nobody),
              "uid": NOBODY_UID if drop_to_nobody else None, "gid": NOBODY_GID, "run_name": run_name}
    launcher_args = ["-I", "-S", "-B", "-c", _LAUNCHER, json.dumps(config), str(program)]

    info_read, info_write = os.pipe()
    stdout_path, stderr_path = base / "stdout", base / "stderr"
    timed_out = False
    namespace_init: int | None = None
    process: subprocess.Popen | None = None
    finished = False
    started = time.monotonic()
    try:
        if isolation == "bwrap":
            command = _bwrap_command(workdir, info_write, launcher_args, is_root)
            pass_fds: tuple[int, ...] = (info_write,)
        else:
            command = _unshare_command(launcher_args, is_root)
            pass_fds = ()
        executable, _ = _interpreter()
        command = [executable, "-I", "-S", "-B", "-c", _REAPER, str(os.getpid()),
                   shutil.which(command[0]) or command[0], *command[1:]]
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True, pass_fds=pass_fds, close_fds=True,
            )
        os.close(info_write)
        info_write = -1
        timed_out = not _wait_for_exit(process, limits.timeout_s)
        namespace_init = _namespace_init(info_read, process, isolation)
        _kill_tree(process, namespace_init)
        returncode = process.returncode
        finished = True
    finally:
        os.close(info_read)
        if info_write != -1:
            os.close(info_write)
        if not finished:   # interrupted (KeyboardInterrupt, a cancelled task, a bug): leave nothing behind
            if process is not None:
                _kill_tree(process, None)
            shutil.rmtree(base, ignore_errors=True)
    seconds = time.monotonic() - started
    stdout, stderr = _read_tail(stdout_path), _read_tail(stderr_path)
    shutil.rmtree(base, ignore_errors=True)
    reason = _reason(returncode, timed_out, stderr)
    return SandboxResult(passed=reason == "ok", returncode=None if timed_out else returncode,
                         reason=reason, stdout=stdout, stderr=stderr, seconds=seconds, isolation=isolation)


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
