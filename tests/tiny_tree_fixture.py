"""Shared by tests/demo, tests/backends and tests/runtime: the tiny tree, installed once per test session from
the shipped weights, and `toy_accuracy` (a model's accuracy on a toy task through a backend, as the search
measures it)."""
from __future__ import annotations

import os

import pytest

from raygems.demo.builder.measure import toy_accuracy  # noqa: F401 - re-exported for the tests


def tiny_tree_root():
    """Where the tests install the tiny tree: $RAYGEMS_TINY_TREE_DIR, else the user cache (so that later
    test sessions, and the vLLM environment's tests, reuse it)."""
    from raygems.demo import default_tiny_tree_root

    return os.environ.get("RAYGEMS_TINY_TREE_DIR") or default_tiny_tree_root()


@pytest.fixture(scope="session")
def tiny_tree():
    import torch

    from raygems.demo import install_tiny_tree

    torch.set_num_threads(1)
    return install_tiny_tree(tiny_tree_root())
