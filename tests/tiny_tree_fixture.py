"""Shared by tests/hub and tests/backends: the tiny tree, built once per test session, and a helper
that measures a model's accuracy on a toy task through a backend (the way the live search does)."""
from __future__ import annotations

import os

import pytest

from raygems.backends.base import Backend, GenerationRequest
from raygems.hub.types import ModelRecord


def tiny_tree_root():
    """Where the tests build the tiny tree: $RAYGEMS_TINY_TREE_DIR, else the user cache (so that later
    test sessions, and the vLLM environment's tests, reuse the build)."""
    from raygems.hub.tiny_tree import default_tiny_tree_root

    return os.environ.get("RAYGEMS_TINY_TREE_DIR") or default_tiny_tree_root()


@pytest.fixture(scope="session")
def tiny_tree():
    import torch

    from raygems.hub.tiny_tree import build_tiny_tree

    torch.set_num_threads(1)
    return build_tiny_tree(tiny_tree_root(), progress=False)


def toy_accuracy(backend: Backend, model: ModelRecord, task_name: str, num_items: int = 300,
                 variant: str = "system", load: bool = True) -> float:
    """Share of the first `num_items` evaluation items of toy task `task_name` that `model` answers
    correctly, prompts rendered with the model's tokenizer in prompt variant `variant`."""
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    task = get_task(task_name)
    queries = task.load()[:num_items]
    if load:
        backend.load(model)
    requests = [GenerationRequest(render_variant(backend.tokenizer, q["messages"], variant),
                                  task.max_new_tokens, tuple(task.stop)) for q in queries]
    outputs = backend.generate(requests)
    return sum(task.score(q, out.text) for q, out in zip(queries, outputs)) / len(queries)
