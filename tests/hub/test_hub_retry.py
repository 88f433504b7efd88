"""The back-off policy on hub errors, on real huggingface_hub exception objects."""
from __future__ import annotations

import pytest

from raygems.hub.retry import RetryPolicy, call_with_retries, is_retryable


def hub_error(status: int, headers: dict | None = None):
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(status, request=httpx2.Request("GET", "http://127.0.0.1/api/models"),
                               headers=headers or {})
    return HfHubHTTPError(f"HTTP {status}", response=response)


class Flaky:
    """Raises the given errors in turn, then returns 'ok'."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_waits_double_and_are_capped():
    policy = RetryPolicy(retries=6, backoff=1.5, max_backoff=10)
    assert [policy.wait(k) for k in range(5)] == [1.5, 3.0, 6.0, 10, 10]
    assert policy.wait(0, retry_after=4) == 4 and policy.wait(3, retry_after=4) == 10


@pytest.mark.parametrize("status, retried", [(429, True), (500, True), (502, True), (503, True), (504, True),
                                             (400, False), (401, False), (404, False)])
def test_which_statuses_are_retried(status, retried):
    assert is_retryable(hub_error(status)) is retried


def test_connection_errors_are_retried_offline_mode_is_not():
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import OfflineModeIsEnabled

    assert is_retryable(httpx2.ConnectError("refused"))
    assert is_retryable(httpx2.ReadTimeout("slow"))
    assert not is_retryable(OfflineModeIsEnabled("offline"))
    assert not is_retryable(ValueError("bad input"))


def test_429_then_503_then_success():
    sleeps: list[float] = []
    call = Flaky([hub_error(429), hub_error(503)])
    assert call_with_retries(call, RetryPolicy(retries=5, backoff=2), what="test", sleep=sleeps.append) == "ok"
    assert call.calls == 3 and sleeps == [2, 4]


def test_gives_up_after_the_last_retry_with_the_hub_error():
    sleeps: list[float] = []
    call = Flaky([hub_error(503)] * 4)
    with pytest.raises(Exception) as info:
        call_with_retries(call, RetryPolicy(retries=2, backoff=1), what="test", sleep=sleeps.append)
    assert info.value.response.status_code == 503
    assert call.calls == 3 and sleeps == [1, 2]


def test_client_errors_fail_at_once():
    sleeps: list[float] = []
    call = Flaky([hub_error(404)])
    with pytest.raises(Exception):
        call_with_retries(call, RetryPolicy(), what="test", sleep=sleeps.append)
    assert call.calls == 1 and sleeps == []


def test_bad_policy_values():
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff=-1)


def test_a_copy_in_the_hub_cache_serves_when_the_hub_does_not_answer(tmp_path):
    """huggingface_hub falls back to its cache when the hub does not answer; the reachability check must not
    take that away: `cached_or_unreachable` finds the cached file, or gives the error back."""
    from raygems.errors import HubUnreachable
    from raygems.hub.retry import cached_or_unreachable

    repo = tmp_path / "datasets--openai--gsm8k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    cached = repo / "snapshots" / commit / "main" / "test.parquet"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PAR1")
    error = HubUnreachable("cannot connect to http://127.0.0.1:9: Connection refused")
    found = cached_or_unreachable("openai/gsm8k", "main/test.parquet", error, repo_type="dataset",
                                  cache_dir=str(tmp_path))
    assert found == str(cached)
    with pytest.raises(HubUnreachable):
        cached_or_unreachable("openai/gsm8k", "main/other.parquet", error, repo_type="dataset",
                              cache_dir=str(tmp_path))
