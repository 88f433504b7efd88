"""Fixtures for tests that talk to the hub: a local server answering from recorded responses.

The recorded tree (tests/data/hub_responses/acme_tree) is hand-written in the hub API's documented schema;
the real `huggingface_hub` client parses it. Offline mode (set for the whole test session) is lifted for
these tests only: the server listens on 127.0.0.1 and nothing else is contacted.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from recorded_hub import RecordedCatalog

from raygems.hub.serve import HubServer

RECORDED = Path(__file__).resolve().parents[1] / "data" / "hub_responses" / "acme_tree"
ROOT_ID = "acme-ai/Acme-1B"


@pytest.fixture
def hub_online(monkeypatch):
    """Let huggingface_hub make HTTP requests (to the local recorded server only)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def recorded_hub(hub_online):
    """The recorded acme tree, two models per listing page (so pagination is exercised)."""
    with HubServer(RecordedCatalog.from_dir(RECORDED), page_size=2) as hub:
        yield hub
