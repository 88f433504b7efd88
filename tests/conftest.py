"""Shared test fixtures.

* One local Ray cluster per test session (`ray_session`): starting Ray costs seconds, so tests share it.
* `shared_dir`: the read-only `../shared` folder beside the checkout (real benchmarks, matrices,
  leaderboard snapshots). Tests that need it skip when it is absent.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Quiet, deterministic, single-threaded workers (2-core machines: torch at 2 threads per process
# with other processes around slows down ~30x).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RAYGEMS_SHARED_DIR", REPO_ROOT.parent / "shared"))
#: A plug-in module as a user writes one (tests/plugins/raygems_example_plugins.py), importable here and in the
#: Ray workers.
PLUGINS_DIR = str(REPO_ROOT / "tests" / "plugins")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    return SHARED_DIR


@pytest.fixture
def example_plugins(monkeypatch):
    """The name of the example plug-in module (tests/plugins), importable here as in the Ray workers; the method,
    backend and task registries as they were afterwards (other tests list their names)."""
    from raygems.backends import BACKENDS
    from raygems.bandits.registry import METHODS
    from raygems.tasks.registry import TASKS

    name = "raygems_example_plugins"
    monkeypatch.syspath_prepend(PLUGINS_DIR)
    registries = (METHODS, BACKENDS, TASKS)
    for registry in registries:      # the built-ins found first: restoring must not take them away again
        registry.names()
    saved = {registry: dict(registry._entries) for registry in registries}
    yield name
    for registry, entries in saved.items():
        registry._entries = entries
    sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray cluster shared by every test that needs one (started on first use)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        workers_path = os.pathsep.join(filter(None, [PLUGINS_DIR, os.environ.get("PYTHONPATH")]))
        # address="local": a new cluster of the session's own, never one a crashed run left recorded in /tmp/ray
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled",
                                           "PYTHONPATH": workers_path}})   # the example plug-ins too
    yield ray
    # Shut down at the end of the session (not per test).


def pytest_sessionfinish(session, exitstatus):
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
