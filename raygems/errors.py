"""The errors raygems reports as one line (`raygems COMMAND: error: ...`), never as a traceback.

* `UsageError` (exit 2): bad input, named with its value: a flag, a file, a setting.
* `SetupError` (exit 1): the environment cannot do what was asked: the hub cannot be reached, the disk is full,
  model-written code may not run here. Nothing recorded is lost; the message says how to go on.

Library callers catch them like any exception; both derive from `RaygemsError`.
"""
from __future__ import annotations


class RaygemsError(Exception):
    """An error with a message meant for the user; `exit_status` is what the command line returns."""

    exit_status = 1


class UsageError(RaygemsError, ValueError):
    """Bad input from the user (exit status 2). Also a ValueError, as library callers may expect."""

    exit_status = 2


class SetupError(RaygemsError):
    """The environment cannot do what was asked (exit status 1)."""


class HubUnreachable(SetupError):
    """The Hugging Face hub (or the endpoint in HF_ENDPOINT) cannot be reached, or offline mode is on."""

    def __init__(self, reason: str):
        super().__init__(
            f"the Hugging Face hub cannot be reached ({reason}). To work without it, use local files: a model "
            f"tree as a directory in the hub layout in place of a hub id (docs/architecture.md), benchmark files "
            f"with --data-dir or RAYGEMS_DATA_DIR (docs/tasks.md)")
        self.reason = reason


def last_line(message: str, limit: int = 300) -> str:
    """The exception line of a remote error's message (a Ray actor's death: its last line, the traceback's end)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else message


def stop_if_it_could_not_start(exc: BaseException, actor: str) -> None:
    """A Ray actor that failed in its own start (`actor_init_failed`: its constructor raised) would fail the same way
    on the next try and on every node (a plug-in its workers cannot import, a cache folder that cannot be made):
    SetupError naming `actor` and the reason, so that the search stops instead of starting it again and again."""
    if getattr(exc, "actor_init_failed", False):
        raise SetupError(f"{actor} could not start: {last_line(str(exc))}") from None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """`exc` named in one line, as a failure reason or inside an error message: its type and the first line of
    its message (at most `limit` characters), e.g. "OSError: [Errno 28] No space left on device"."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
