"""A node's fetch worker, in process, against the local hub: fetches running at once each report their own
bytes (not the other's), and the seconds spent asking the hub and waiting for room (the cost model reads them)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.download import plan_download
from raygems.hub.retry import RetryPolicy
from raygems.hub.serve import HubServer
from raygems.runtime.fetch import FetchSettings, FetchWorker

from tiny_tree_fixture import tiny_tree  # noqa: F401 - fixture

MODELS = ("mathwiz/tiny-math-v1", "quietmath/tiny-arith-pro", "quickft/tiny-sft")


def test_concurrent_fetches_report_their_own_bytes(tiny_tree, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(DirectoryCatalog(tiny_tree.root), bandwidth=4e6) as hub:
        # (constants.ENDPOINT stays: huggingface_hub's hf_hub_url only swaps in an endpoint for URLs that start
        # with it, so setting it in-process would send the downloads to huggingface.co)
        sizes = {m: plan_download(m, "main", endpoint=hub.endpoint).total_bytes for m in MODELS}
        worker = FetchWorker(FetchSettings(cache_dir=str(tmp_path / "cache"), concurrency=3, endpoint=hub.endpoint),
                             {}, "node0")
        with ThreadPoolExecutor(max_workers=3) as pool:
            reports = list(pool.map(worker.fetch, MODELS))
        again = worker.fetch(MODELS[0])
    for model, report in zip(MODELS, reports):
        assert report.failure is None and report.bytes == sizes[model]
        assert report.plan_s > 0 and report.wait_s >= 0 and report.seconds >= report.plan_s
    assert worker.status()["fetch_bytes"] == sum(sizes.values())
    assert again.bytes == 0 and again.seconds == pytest.approx(again.plan_s, abs=0.5)


@pytest.mark.parametrize("config_text, reason", [
    ('{"base_model_name_or_path": ', "corrupt adapter_config.json"),
    ('["not", "an", "object"]', "corrupt adapter_config.json (not a JSON object)"),
    ('{"base_model_name_or_path": "models--org--base/snapshots/abc"}',
     "adapter_config.json names base model 'models--org--base/snapshots/abc', not a hub model id"),
    ('{"base_model_name_or_path": 7}', "adapter_config.json names no base model"),
])
def test_an_adapter_whose_config_cannot_be_followed_fails_that_fetch_only(tmp_path, monkeypatch, config_text,
                                                                           reason):
    """One bad upload costs one arm: the fetch reports a failure (which the search records), it does not raise
    (which stopped the search, and every rerun at the same checkpoint)."""
    from huggingface_hub import constants

    from raygems.demo import install_tiny_tree

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    tree = install_tiny_tree(tmp_path / "tree")
    adapter = tree.adapters()[0].model_id
    (tree.root / adapter / "adapter_config.json").write_text(config_text)
    with HubServer(DirectoryCatalog(tree.root)) as hub:
        worker = FetchWorker(FetchSettings(cache_dir=str(tmp_path / "cache"), endpoint=hub.endpoint), {}, "node0")
        report = worker.fetch(adapter)
        assert report.path is None and report.failure == f"{adapter}: {reason}"
        assert worker.fetch(MODELS[0]).failure is None            # the worker goes on


@pytest.mark.parametrize("status, persists", [(404, True), (503, False)])
def test_a_fetch_failure_is_recorded_only_when_it_is_the_checkpoints_own(tiny_tree, tmp_path, monkeypatch,  # noqa: F811
                                                                        status, persists):
    """A repository that is gone fails its model for good (recorded: a rerun does not ask again); a hub still busy
    after the retries, or a cache limit the checkpoint does not fit, fails it for this run only."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    victim = MODELS[0]
    with HubServer(DirectoryCatalog(tiny_tree.root)) as hub:
        hub.fail_next(f"/api/models/{victim}", [status] * 20, retry_after=0)
        worker = FetchWorker(FetchSettings(cache_dir=str(tmp_path / "cache"), endpoint=hub.endpoint,
                                           retry=RetryPolicy(retries=2, backoff=0.01)), {}, "node0")
        report = worker.fetch(victim)
        assert victim in report.failure and str(status) in report.failure and report.failure_persists is persists
        small = FetchWorker(FetchSettings(cache_dir=str(tmp_path / "small"), endpoint=hub.endpoint,
                                          limit_bytes=1000), {}, "node0")
        too_large = small.fetch(MODELS[1])
        assert too_large.failure.startswith(f"{MODELS[1]} needs ") and "(1.0 KB, --cache-limit)" in too_large.failure
        assert too_large.failure_persists is False
