"""The code sandbox against adversarial programs: each ends within 10 s, leaves no process and no
cgroup behind, changes nothing outside its directory, reaches no network, cannot see the parent's
environment, and its whole process tree stays within one memory, process and disk budget."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from raygems.tasks import sandbox
from raygems.tasks.cgroups import available_controllers
from raygems.tasks.sandbox import (CodeExecutionDisabled, SandboxLimits, available_isolation,
                                   code_execution_enabled, expected_guarantees, run_program)
from sandbox_checks import (DISK_FLOOD, FORKED_MEMORY, NESTED_NAMESPACE, boot_ticks, leftover_cgroups,
                            orphaned_zombies, processes_mentioning)

CONTAINED_S = 10.0


def run_contained(code: str, sandbox_tmp: Path, **limits) -> sandbox.SandboxResult:
    """Run ``code``; check it ended within 10 s, left no process (running or zombie) and no directory."""
    started, started_ticks = time.monotonic(), boot_ticks()
    result = run_program(code, allow=True, limits=SandboxLimits(**{"timeout_s": 3.0, **limits}))
    elapsed = time.monotonic() - started
    assert elapsed < CONTAINED_S, f"took {elapsed:.1f} s"
    assert processes_mentioning(str(sandbox_tmp)) == []
    assert orphaned_zombies(started_ticks) == []
    assert list(sandbox_tmp.iterdir()) == []  # the sandbox directory is removed
    assert leftover_cgroups() == []
    return result


def needs(*guarantees: str) -> None:
    """Skip, saying why, where this machine cannot give ``guarantees`` (they all hold on the project's
    machines: bubblewrap, cgroup v1 memory and pids controllers, x86-64)."""
    missing = [g for g in guarantees if g not in expected_guarantees()]
    if missing:
        pytest.skip(f"this machine cannot give {missing} (isolation {available_isolation()}, "
                    f"cgroup controllers {available_controllers()}); see docs/sandbox.md")


def test_execution_is_opt_in(monkeypatch):
    monkeypatch.delenv(sandbox.ENV_FLAG, raising=False)
    assert not code_execution_enabled()
    with pytest.raises(CodeExecutionDisabled, match="RAYGEMS_ALLOW_CODE_EXECUTION=1"):
        run_program("print(1)")
    with pytest.raises(CodeExecutionDisabled):
        run_program("print(1)", allow=False)
    monkeypatch.setenv(sandbox.ENV_FLAG, "1")
    assert code_execution_enabled() and not code_execution_enabled(False)
    assert run_program("print(1)").passed


def test_a_good_program_passes(sandbox_tmp):
    result = run_contained("def f(x):\n    return x + 1\nassert f(1) == 2\nprint('ok')", sandbox_tmp)
    assert result.passed and result.reason == "ok" and result.returncode == 0
    assert result.stdout == "ok\n" and result.isolation in ("bwrap", "unshare")


def test_a_failing_assert_fails(sandbox_tmp):
    result = run_contained("assert 1 + 1 == 3", sandbox_tmp)
    assert not result.passed and result.reason == "error" and "AssertionError" in result.stderr


def test_infinite_loop(sandbox_tmp):
    result = run_contained("while True:\n    pass", sandbox_tmp)
    assert not result.passed and result.reason in ("timeout", "cpu-time")


def test_cpu_limit_below_wall_time(sandbox_tmp):
    result = run_contained("while True:\n    pass", sandbox_tmp, timeout_s=8.0, cpu_s=1.0)
    assert result.reason == "cpu-time"


def test_sleep(sandbox_tmp):
    result = run_contained("import time\ntime.sleep(1000)", sandbox_tmp)
    assert result.reason == "timeout" and result.seconds < 4


def test_memory_bomb(sandbox_tmp):
    assert run_contained("x = bytearray(8 * 1024 ** 3)", sandbox_tmp).reason == "memory"
    grow = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))"
    assert run_contained(grow, sandbox_tmp, memory_mb=256).reason == "memory"


def test_endless_printing(sandbox_tmp):
    result = run_contained("while True:\n    print('spam' * 1000)", sandbox_tmp)
    assert result.reason == "output-limit"
    assert len(result.stdout) <= 4096


def test_fork_storm(sandbox_tmp):
    code = ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    result = run_contained(code, sandbox_tmp)
    assert not result.passed


def test_process_limit(sandbox_tmp):
    if os.geteuid() != 0:
        pytest.skip("the per-sandbox process count is exact only when the sandbox runs as nobody")
    code = ("import os, time\nn = 0\nfor _ in range(500):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
            "    n += 1\nprint(n)\n")
    result = run_contained(code, sandbox_tmp, max_processes=20)
    assert result.passed and int(result.stdout) < 20


def test_daemon_that_outlives_the_program_is_killed(sandbox_tmp):
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(60)\n    os._exit(0)\nprint('parent done')\n")
    result = run_contained(code, sandbox_tmp)
    assert result.passed and result.seconds < 2


def test_writes_outside_the_directory_change_nothing(sandbox_tmp, tmp_path):
    if available_isolation() != "bwrap":
        pytest.skip("file-system isolation needs bubblewrap (apt-get install -y bubblewrap)")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("original")
    token = uuid.uuid4().hex
    targets = [outside / "pwned.txt", outside / "keep.txt", Path.home() / f".raygems-pwned-{token}",
               Path(__file__).resolve().parents[2] / f"pwned-{token}", Path("/tmp") / f"pwned-{token}",
               Path("/var/tmp") / f"pwned-{token}", Path("/dev/shm") / f"pwned-{token}"]
    code = ("import os\nblocked = 0\n"
            f"for target in {[str(t) for t in targets]!r}:\n"
            "    try:\n        with open(target, 'w') as f:\n            f.write('pwned')\n"
            "    except OSError:\n        blocked += 1\n"
            "open('inside.txt', 'w').write('fine')\n"
            "import tempfile\ntempfile.NamedTemporaryFile().write(b'fine')\n"
            "open(os.path.expanduser('~/home.txt'), 'w').write('fine')\n"
            f"assert blocked == {len(targets)}, blocked\n")
    result = run_contained(code, sandbox_tmp)
    assert result.passed, result.stderr
    assert (outside / "keep.txt").read_text() == "original"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not any(t.exists() for t in targets if t.name != "keep.txt")


def test_sandbox_sees_no_project_files(sandbox_tmp):
    if available_isolation() != "bwrap":
        pytest.skip("file-system isolation needs bubblewrap")
    here = str(Path(__file__).resolve())
    result = run_contained(f"import os\nassert not os.path.exists({here!r})\nassert not os.path.exists('/etc/passwd')",
                           sandbox_tmp)
    assert result.passed, result.stderr


def test_no_network(sandbox_tmp):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = ("import socket\nprint(sorted(name for _, name in socket.if_nameindex()))\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
            "except OSError as e:\n    print('refused', type(e).__name__)\n")
    try:
        result = run_contained(code, sandbox_tmp)
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert "connected" not in result.stdout and "refused" in result.stdout
    assert result.stdout.splitlines()[0] == "['lo']"


def test_parent_environment_is_not_visible(sandbox_tmp, monkeypatch):
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("RAYGEMS_TEST_SECRET", secret)
    code = ("import os\nprint(dict(os.environ))\n"
            "for entry in os.listdir('/proc'):\n    if entry.isdigit() or entry == 'self':\n"
            "        try:\n            print(entry, open(f'/proc/{entry}/environ', 'rb').read())\n"
            "        except OSError as e:\n            print(entry, 'unreadable', e)\n")
    result = run_contained(code, sandbox_tmp)
    assert secret not in result.stdout and secret not in result.stderr
    env = eval(result.stdout.splitlines()[0])  # the dict printed by the program
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "PWD", "LC_CTYPE"}
    assert env["HOME"] == env["TMPDIR"]


def test_fallback_isolation_with_unshare(sandbox_tmp, monkeypatch):
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    monkeypatch.setattr(sandbox, "available_isolation", lambda: "unshare")
    monkeypatch.setenv("RAYGEMS_TEST_SECRET", "fallback-secret")
    ok = run_contained("import os\nprint(os.environ.get('RAYGEMS_TEST_SECRET'))", sandbox_tmp)
    assert ok.passed and ok.isolation == "unshare" and "fallback-secret" not in ok.stdout
    assert run_contained("import time\ntime.sleep(100)", sandbox_tmp).reason == "timeout"
    daemon = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\n")
    assert run_contained(daemon, sandbox_tmp).passed
    # No fork storm here: run as root from an interpreter that nobody may read, the fallback cannot
    # drop to an unprivileged user, so the process limit does not apply (see docs/tasks.md).
    net = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"
    unreachable = run_contained(net, sandbox_tmp)
    assert not unreachable.passed and "Error" in unreachable.stderr


@pytest.mark.parametrize("bad", [{"timeout_s": 0}, {"memory_mb": 10}, {"cpu_s": -1}, {"max_processes": 0},
                                 {"disk_mb": 0}])
def test_bad_limits(bad):
    with pytest.raises(ValueError):
        SandboxLimits(**bad)


def test_every_guarantee_holds_here(sandbox_tmp):
    needs(*sandbox.ALL_GUARANTEES)
    result = run_contained("print('hi')", sandbox_tmp)
    assert result.passed and result.guarantees == sandbox.ALL_GUARANTEES
    assert 0 < result.peak_memory_mb < 64


def test_a_disk_flood_fills_only_the_scratch_directory(sandbox_tmp):
    """The issue's loop of 15 MiB files took 14.3 GB of the host's disk; here it gets ENOSPC at disk_mb."""
    needs(sandbox.SCRATCH_DISK_LIMIT, sandbox.TREE_MEMORY_LIMIT)
    result = run_contained(DISK_FLOOD, sandbox_tmp, disk_mb=64)
    written, refused = result.stdout.split(" ", 1)
    assert int(written) <= 64 * 1024 * 1024 and "28" in refused  # ENOSPC
    assert result.peak_memory_mb < 100  # the tmpfs is memory, charged to the sandbox


@pytest.mark.parametrize("memory_mb, child_mb", [(1024, 800), (90, 50)])
def test_forked_processes_share_one_memory_limit(sandbox_tmp, memory_mb, child_mb):
    """Six children of 800 MB each took 4.9 GB under memory_mb=1024 (a per-process limit); the tree's
    memory cgroup keeps them all within memory_mb (90 MiB: less than 100 MB of the host)."""
    needs(sandbox.TREE_MEMORY_LIMIT)
    result = run_contained(FORKED_MEMORY.format(mb=child_mb), sandbox_tmp, memory_mb=memory_mb, timeout_s=8.0)
    assert 0.8 * memory_mb < result.peak_memory_mb <= memory_mb  # pushed up to the limit, not past it
    assert "0, 0, 0, 0, 0, 0" not in result.stdout  # not every child got its memory


def test_the_seccomp_filter_exists_for_x86_64_and_aarch64_only():
    from raygems.tasks.seccomp import syscall_filter

    assert len(syscall_filter("x86_64")) == 21 * 8 and len(syscall_filter("aarch64")) == 19 * 8
    assert syscall_filter("riscv64") is None


def test_no_user_namespaces_inside(sandbox_tmp):
    """A nested user namespace could mount a tmpfs outside every limit (3 GiB held in the issue)."""
    needs(sandbox.NO_USER_NAMESPACES)
    result = run_contained(NESTED_NAMESPACE, sandbox_tmp)
    assert result.passed and "unshare refused Operation not permitted" in result.stdout, result
    assert "unshare -Urm: 1" in result.stdout


KEYRING = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ADD_KEY, KEYCTL = (248, 250) if os.uname().machine == "x86_64" else (217, 219)
added = libc.syscall(ADD_KEY, b"user", b"raygems-sandbox-test", b"x" * 100, 100, -4)   # @u, nobody's keyring
print("add_key", added, os.strerror(ctypes.get_errno()))
ring = libc.syscall(KEYCTL, 0, -4, 0)                                              # KEYCTL_GET_KEYRING_ID
print("keyctl", ring, os.strerror(ctypes.get_errno()))
"""


def test_the_kernel_keyring_is_out_of_reach(sandbox_tmp):
    """Keys in nobody's keyring would outlive the sandbox: a later program could read what an earlier one
    left there."""
    needs(sandbox.NO_KERNEL_KEYRING)
    result = run_contained(KEYRING, sandbox_tmp)
    assert result.passed, result
    assert "add_key -1 Operation not permitted" in result.stdout, result.stdout
    assert "keyctl -1 Operation not permitted" in result.stdout, result.stdout


def test_probing_the_isolation_leaves_no_process_behind(tmp_path):
    """The probe's bwrap kills its PID namespace's init when it exits; that init is reaped by the probe's
    reaper, not handed to the machine's init as a zombie. Run in a fresh process that is a subreaper itself,
    so that anything the probe orphaned would come back to it."""
    import subprocess
    import sys

    probe = (
        "import ctypes, os, time\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"   # PR_SET_CHILD_SUBREAPER
        "from raygems.tasks.sandbox import available_isolation\n"
        "print(available_isolation())\n"
        "time.sleep(0.5)\n"
        "try:\n"
        "    print('left behind', os.waitpid(-1, os.WNOHANG))\n"
        "except ChildProcessError:\n"
        "    print('nothing left')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "nothing left", done.stdout


def test_without_the_seccomp_filter_the_memory_cgroup_still_holds_a_nested_tmpfs(sandbox_tmp, monkeypatch):
    """Defence in depth: with user namespaces allowed (filter off) the tmpfs is mounted, but its pages
    are charged to the sandbox's memory cgroup: the 3 GiB stop at memory_mb."""
    needs(sandbox.TREE_MEMORY_LIMIT)
    monkeypatch.setattr(sandbox, "syscall_filter", lambda: None)
    result = run_contained(NESTED_NAMESPACE, sandbox_tmp, memory_mb=90, timeout_s=8.0)
    assert "mounted" in result.stdout and "wrote" not in result.stdout, result
    assert result.peak_memory_mb <= 90 and not result.passed
    assert sandbox.NO_USER_NAMESPACES not in result.guarantees


def test_the_process_limit_is_per_sandbox_not_per_user(sandbox_tmp):
    """Every sandbox runs as nobody: with a per-user limit a fork storm in one starves the others."""
    needs(sandbox.TREE_PROCESS_LIMIT)
    storm = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    stormed = []
    thread = threading.Thread(target=lambda: stormed.append(run_program(
        storm, allow=True, limits=SandboxLimits(timeout_s=4.0, max_processes=64))))
    thread.start()
    time.sleep(1.5)
    forks = ("import os\npids = [os.fork() for _ in range(1)]\nchildren = []\n"
             "for _ in range(20):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
             "    children.append(pid)\nfor pid in children:\n    os.waitpid(pid, 0)\nprint(len(children))\n")
    try:
        result = run_program(forks, allow=True, limits=SandboxLimits(timeout_s=4.0))
    finally:
        thread.join()
    assert stormed[0].reason == "timeout" and result.passed and "20" in result.stdout, result


def test_a_sandboxs_cgroups_go_after_a_keyboard_interrupt(sandbox_tmp):
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    started_ticks = boot_ticks()
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_program("import time\ntime.sleep(30)", allow=True, limits=SandboxLimits(timeout_s=20.0))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert leftover_cgroups() == [] and list(sandbox_tmp.iterdir()) == []
    assert processes_mentioning(str(sandbox_tmp)) == [] and orphaned_zombies(started_ticks) == []


def test_the_channel_returns_what_the_program_wrote_up_to_its_limit(sandbox_tmp):
    code = ("import os\nos.write(SANDBOX_CHANNEL_FD, b'hello\\n')\nleft = 200000\n"
            "try:\n    while left:\n        left -= os.write(SANDBOX_CHANNEL_FD, b'x' * left)\n"
            "except BrokenPipeError:\n    print('cut off')\n")
    small = run_program(code, allow=True, channel_bytes=1000)
    assert small.channel == b"hello\n" + b"x" * 994 and small.channel_overflow and "cut off" in small.stdout
    ample = run_program(code, allow=True, channel_bytes=300000)
    assert ample.channel == b"hello\n" + b"x" * 200000 and not ample.channel_overflow
    assert run_program("print(1)", allow=True).channel == b""
