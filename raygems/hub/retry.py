"""Retries with exponential back-off for calls to the Hugging Face hub.

The hub answers busy periods with HTTP 429 (rate limit) and 5xx, and connections drop. `huggingface_hub`
already retries some calls (listing pages) but not others (`model_info`), and gives up after a few
seconds: `call_with_retries` wraps a whole operation (a full listing, a card download) so that a
failure anywhere in it repeats the operation after waiting `backoff * 2**attempt` seconds (capped; a
`Retry-After` header, when the hub sends one, is honoured if longer). Client errors (404, 401, 400)
and offline mode are not retried: waiting does not fix them.

A hub that cannot be reached at all (refused or dropped connections, unknown host) is given
`CONNECT_DEADLINE_S` seconds, not the whole back-off: then `HubUnreachable` says so in one line, and how to
work without the hub. With `HF_HUB_OFFLINE=1` that happens at once. Before the first call to an endpoint,
`check_reachable` opens one TCP connection to it (huggingface_hub's downloads retry a refused connection for
~25 s on their own, printing a line per try): nothing listening there is `HubUnreachable` in a moment.
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import urlsplit

from raygems.errors import HubUnreachable, UsageError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth waiting for.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: How long (attempts and waits together) connection failures are retried before the hub counts as unreachable.
CONNECT_DEADLINE_S = 8.0
#: How long `check_reachable` waits for a TCP connection to the hub.
CONNECT_TIMEOUT_S = 5.0
_ANSWERED: set[str] = set()   # endpoints that accepted a connection in this process


def check_reachable(endpoint: str | None = None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise `HubUnreachable` at once when nothing accepts a TCP connection at `endpoint` (default: `HF_ENDPOINT`
    or huggingface.co): refused, unknown host, or no answer within `timeout_s`. `UsageError` when it is not an
    http(s) URL. Skipped in offline mode (cached files may serve) and behind a proxy (set in the environment);
    an endpoint that answered once in this process is not asked again (`forget_reachable`). A caller that can
    serve a cached copy (huggingface_hub falls back to its cache when the hub does not answer) tries that
    before giving up: see `cached_or_unreachable`."""
    from urllib.request import getproxies, proxy_bypass

    from huggingface_hub import constants

    endpoint = endpoint or constants.ENDPOINT
    if constants.HF_HUB_OFFLINE or endpoint in _ANSWERED:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"hub endpoint {endpoint!r}: not a URL such as https://huggingface.co")
    if getproxies() and not proxy_bypass(parts.hostname):   # the proxy, not this machine, connects
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except ValueError:
        raise UsageError(f"hub endpoint {endpoint!r}: not a URL such as https://huggingface.co") from None
    except OSError as exc:
        raise HubUnreachable(f"cannot connect to {endpoint}: {exc.strerror or type(exc).__name__}") from None
    _ANSWERED.add(endpoint)


def forget_reachable() -> None:
    """Forget which endpoints answered (`check_reachable` asks them again)."""
    _ANSWERED.clear()


def cached_or_unreachable(repo_id: str, filename: str, error: HubUnreachable, **where) -> str:
    """The path of huggingface_hub's cached copy of `filename` in `repo_id` (`where`: repo_type, revision,
    cache_dir), which a download falls back to when the hub does not answer; `error` when there is none."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, filename, **{k: v for k, v in where.items() if v is not None})
    if isinstance(cached, str):
        return cached
    raise error


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: attempt k (0-based) waits min(backoff * 2**k, max_backoff) seconds."""

    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"backoff and max_backoff must be >= 0, got {self.backoff}, {self.max_backoff}")

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        delay = min(self.backoff * (2 ** attempt), self.max_backoff)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of whichever HTTP stacks huggingface_hub may use."""
    errors: list[type[BaseException]] = [TimeoutError]
    for module_name, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                               ("requests", ("ConnectionError", "Timeout"))):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.extend(getattr(module, n) for n in names if isinstance(getattr(module, n, None), type))
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status is not None else None


def is_offline(exc: BaseException) -> bool:
    """Whether huggingface_hub refused the call because offline mode is on (HF_HUB_OFFLINE=1)."""
    try:
        from huggingface_hub.errors import OfflineModeIsEnabled
    except ImportError:  # pragma: no cover - very old huggingface_hub
        return False
    return isinstance(exc, OfflineModeIsEnabled)


def is_connection_error(exc: BaseException) -> bool:
    """A refused, dropped or timed-out connection (no HTTP answer at all)."""
    return http_status(exc) is None and isinstance(exc, _TRANSPORT_ERRORS) and not is_offline(exc)


def is_retryable(exc: BaseException) -> bool:
    """True for rate limits, server errors and dropped connections; False for everything else."""
    if is_offline(exc):
        return False
    status = http_status(exc)
    if status is not None:
        return status in RETRY_STATUSES
    return isinstance(exc, _TRANSPORT_ERRORS)


def unreachable(exc: BaseException) -> HubUnreachable | None:
    """The `HubUnreachable` that `exc` amounts to (offline mode, no connection), or None. A download that
    found neither the hub nor a cached copy (`LocalEntryNotFoundError`) counts: it means the hub was not asked
    (offline mode) or did not answer."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    if is_offline(exc) or (isinstance(exc, LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE):
        return HubUnreachable("HF_HUB_OFFLINE=1 is set")
    if isinstance(exc, LocalEntryNotFoundError):
        cause = exc.__cause__ or exc.__context__
        return unreachable(cause) if cause is not None else HubUnreachable("no answer, and no cached copy")
    if is_connection_error(exc):
        detail = str(exc).strip().splitlines()
        return HubUnreachable(f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__)
    return None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def call_with_retries(call: Callable[[], T], policy: RetryPolicy, *, what: str,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `call()`; on a retryable error wait and run it again, up to `policy.retries` more times.
    Raises `HubUnreachable` in offline mode, and when connections fail for `CONNECT_DEADLINE_S`."""
    spent = 0.0   # seconds in attempts and waits so far
    for attempt in range(policy.retries + 1):
        started = time.monotonic()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered by is_retryable
            spent += time.monotonic() - started
            delay = policy.wait(attempt, _retry_after(exc))
            gave_up = attempt >= policy.retries or not is_retryable(exc)
            if gave_up or (is_connection_error(exc) and spent + delay > CONNECT_DEADLINE_S):
                problem = unreachable(exc)
                if problem is not None:
                    raise problem from exc
                raise
            spent += delay
            status = http_status(exc)
            logger.warning("%s failed (%s); retry %d/%d in %.1f s", what,
                           f"HTTP {status}" if status else type(exc).__name__, attempt + 1, policy.retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
