"""`Backend` declares everything the runtime calls: a backend that implements only the abstract methods gets the
declared defaults (no state kept across checkpoints, no generation config, `release()` is `unload()`), and the
bundled backends override them where they keep state."""
from __future__ import annotations

from raygems.backends import Backend


class Minimal(Backend):
    name = "minimal"

    def __init__(self):
        self.unloaded = 0

    def load(self, model):
        pass

    def generate(self, requests):
        return []

    def unload(self):
        self.unloaded += 1

    def settings(self):
        return {"backend": self.name}

    @property
    def tokenizer(self):
        return None


def test_a_backend_implementing_only_the_abstract_methods_has_the_declared_defaults():
    backend = Minimal()
    assert backend.reuse_per_process is False and backend.generation_config is None
    backend.release()
    assert backend.unloaded == 1


def test_the_bundled_backends_declare_what_they_keep():
    from raygems.backends.transformers_backend import TransformersBackend
    from raygems.backends.vllm_backend import VLLMBackend

    assert VLLMBackend.reuse_per_process is True                       # its engine outlives a checkpoint
    assert TransformersBackend(device="cpu").reuse_per_process is False  # the plain path keeps nothing
    assert TransformersBackend(device="cpu").generation_config is None  # nothing loaded yet
    for backend in (TransformersBackend, VLLMBackend):
        assert backend.release is not Backend.release
