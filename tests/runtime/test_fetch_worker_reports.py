"""A node's fetch worker, in process, against the local hub: fetches running at once each report their own
bytes (not the other's), and the seconds spent asking the hub and waiting for room (the cost model reads them)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.download import plan_download
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
