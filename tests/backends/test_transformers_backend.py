"""The transformers backend on the tiny tree's real checkpoints: left padding, stop strings, token counts,
LoRA adapters, settings, errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from raygems.backends import CheckpointError, Generation, GenerationRequest, available_backends, get_backend
from raygems.backends.transformers_backend import TransformersBackend
from raygems.hub.types import ModelRecord
from tiny_tree_fixture import tiny_tree, toy_accuracy  # noqa: F401 - fixture


def _requests(tokenizer, n_arith: int = 12, n_choice: int = 12) -> list[GenerationRequest]:
    """Toy prompts of different lengths (arith and choice, both prompt variants)."""
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    requests = []
    for name, count in (("toy_arith", n_arith), ("toy_choice", n_choice)):
        task = get_task(name)
        for k, query in enumerate(task.load()[:count]):
            prompt = render_variant(tokenizer, query["messages"], "plain" if k % 3 == 0 else "system")
            requests.append(GenerationRequest(prompt, task.max_new_tokens, tuple(task.stop)))
    return requests


@pytest.fixture(scope="module")
def gem_backend(tiny_tree):
    backend = get_backend("transformers", batch_size=8)
    backend.load(tiny_tree.record(tiny_tree.hidden_gem))
    yield backend
    backend.unload()


def test_batched_and_one_at_a_time_give_the_same_greedy_output(tiny_tree, gem_backend):
    requests = _requests(gem_backend.tokenizer)
    lengths = {len(gem_backend.tokenizer(r.prompt)["input_ids"]) for r in requests}
    assert len(lengths) > 3  # the batch really needs padding
    batched = gem_backend.generate(requests)
    alone = TransformersBackend(batch_size=1)
    alone.load(tiny_tree.record(tiny_tree.hidden_gem))
    single = alone.generate(requests)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [(g.prompt_tokens, g.completion_tokens) for g in batched] == \
        [(g.prompt_tokens, g.completion_tokens) for g in single]
    assert gem_backend.tokenizer.padding_side == "left"
    # and the answers are the trained ones: most arith completions are "a+b=c\n#### c"
    assert sum("####" in g.text for g in batched[:12]) >= 10


def test_token_counts(gem_backend):
    tokenizer = gem_backend.tokenizer
    requests = _requests(tokenizer, 6, 6)
    outputs = gem_backend.generate(requests)
    for request, output in zip(requests, outputs):
        assert isinstance(output, Generation)
        assert output.prompt_tokens == len(tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
        # the model ends its answer with the end-of-turn token, which is counted but not shown
        assert output.completion_tokens == len(tokenizer(output.text, add_special_tokens=False)["input_ids"]) + 1
        assert output.seconds > 0
    limited = gem_backend.generate([GenerationRequest(requests[0].prompt, 3, ())])[0]
    assert limited.completion_tokens == 3
    assert limited.text == outputs[0].text[:len(limited.text)] and len(limited.text) >= 3


@pytest.mark.parametrize("use_stop_strings", [True, False])
def test_stop_strings_cut_the_text_before_the_stop(tiny_tree, use_stop_strings):
    backend = TransformersBackend(batch_size=4, use_stop_strings=use_stop_strings)
    backend.load(tiny_tree.record(tiny_tree.hidden_gem))
    free = backend.generate(_requests(backend.tokenizer, 4, 0))
    stopped = backend.generate([GenerationRequest(r.prompt, r.max_new_tokens, ("=",))
                                for r in _requests(backend.tokenizer, 4, 0)])
    for full, cut in zip(free, stopped):
        assert "=" in full.text
        assert cut.text == full.text.split("=")[0]
        # counted up to and including the token that completed the stop string
        assert cut.completion_tokens == len(backend.tokenizer(cut.text + "=")["input_ids"])
    prompt = _requests(backend.tokenizer, 1, 0)[0].prompt
    two = backend.generate([GenerationRequest(prompt, 24, ("####", "+"))])[0]
    assert two.text == free[0].text.split("+")[0]  # the earliest stop string wins
    backend.unload()


def test_requests_with_different_limits_keep_their_order(gem_backend):
    requests = _requests(gem_backend.tokenizer, 4, 4)
    mixed = [GenerationRequest(r.prompt, 2 if k % 2 else r.max_new_tokens, r.stop) for k, r in enumerate(requests)]
    outputs = gem_backend.generate(mixed)
    reference = gem_backend.generate(requests)
    for k, (output, full) in enumerate(zip(outputs, reference)):
        if k % 2:
            assert output.completion_tokens <= 2 and full.text.startswith(output.text)
        else:
            assert output == Generation(full.text, full.prompt_tokens, full.completion_tokens, output.seconds)
    assert gem_backend.generate([]) == []


def test_adapters_load_on_their_base_and_swap_without_reloading_it(tiny_tree):
    backend = TransformersBackend(batch_size=64)
    good, quick = (tiny_tree.record(m) for m in ("loraworks/tiny-base-lora-arith", "loraworks/tiny-base-lora-quick"))
    base_accuracy = toy_accuracy(backend, tiny_tree.record(tiny_tree.popular_base), "toy_arith", 100)
    good_accuracy = toy_accuracy(backend, good, "toy_arith", 100)
    base_module = backend.model.get_base_model()
    quick_accuracy = toy_accuracy(backend, quick, "toy_arith", 100)
    assert backend.model.get_base_model() is base_module  # same base, only the adapter changed
    assert good_accuracy > quick_accuracy and good_accuracy > base_accuracy
    fresh = TransformersBackend(batch_size=64)
    assert toy_accuracy(fresh, quick, "toy_arith", 100) == quick_accuracy  # swapping == loading fresh
    assert toy_accuracy(backend, good, "toy_arith", 100) == good_accuracy   # and back again
    assert backend.settings()["peft"]
    backend.unload()
    assert backend.model is None and backend.tokenizer is None


def test_settings_are_recorded(gem_backend):
    import torch
    import transformers

    settings = gem_backend.settings()
    assert settings["backend"] == "transformers" and settings["version"] == transformers.__version__
    assert settings["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert settings["dtype"] in ("float32", "bfloat16")
    assert settings["batch_size"] == 8 and settings["decoding"] == "greedy"
    assert settings["padding_side"] == "left" and "max_new_tokens_policy" in settings
    assert gem_backend.generation_config.eos_token_id  # for model_system_prompt(tokenizer, generation_config)


def test_missing_folders_and_misuse_give_clear_errors(tmp_path):
    backend = TransformersBackend()
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        backend.load(ModelRecord(model_id="x/missing", path=str(tmp_path / "nope")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="missing tokenizer|missing config.json"):
        backend.load(ModelRecord(model_id="x/empty", path=str(empty)))
    with pytest.raises(RuntimeError, match="call load"):
        backend.generate([GenerationRequest("hi", 4)])
    with pytest.raises(ValueError, match="batch_size"):
        TransformersBackend(batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(dtype="float8")
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        get_backend("nope")
    assert {"transformers", "vllm"} <= set(available_backends())
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationRequest("hi", 0)
    with pytest.raises(TypeError, match="tuple of strings"):
        GenerationRequest("hi", 4, "\n")


def test_models_without_a_local_copy_fail_with_a_reason():
    """Backends load local folders; downloading is raygems.hub.download's job (the fetch stage's)."""
    backend = TransformersBackend()
    with pytest.raises(CheckpointError, match="no local copy of nobody/nothing: download it first"):
        backend.load(ModelRecord(model_id="nobody/nothing"))


def test_checkpoint_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(CheckpointError("missing tokenizer", "a/b")))
    assert error.reason == "missing tokenizer" and error.model_id == "a/b" and str(error) == "missing tokenizer"


def test_folder_layout_of_a_loaded_adapter_needs_no_tokenizer(tiny_tree):
    adapter = tiny_tree.adapters()[0]
    assert not (Path(adapter.path) / "tokenizer_config.json").exists()
    backend = TransformersBackend()
    backend.load(adapter)
    assert backend.tokenizer is not None and backend.tokenizer.eos_token == "<|im_end|>"
    backend.unload()


@pytest.fixture
def collections(tiny_tree, monkeypatch):
    """The garbage collections run meanwhile (automatic ones off: one could free a test's cycle too early).
    A process's first load (without `warm_up`) imports torch._dynamo through transformers' generation code, and
    `torch.fx.wrap` leaves its own frame in a reference cycle there, holding every frame under it and so the
    first model until a collection: one load is done before counting."""
    import gc

    TransformersBackend().load(tiny_tree.record("tiny-org/tiny-base"))
    gc.collect()
    runs = []
    collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: runs.append(args) or collect(*args))
    gc.disable()
    yield runs
    gc.enable()


def _weights(module) -> list:
    import weakref

    return [weakref.ref(p) for p in module.parameters()] + [weakref.ref(module)]


def _hold_in_a_cycle(thing) -> None:
    cycle = [thing]
    cycle.append(cycle)


@pytest.mark.parametrize("held_in_a_cycle", [False, True])
def test_unload_frees_the_weights_and_collects_garbage_only_when_a_cycle_holds_them(tiny_tree, collections,
                                                                                    held_in_a_cycle):
    """A full garbage collection costs ~0.2 s in a worker that imported torch and transformers: unload runs one
    only when reference counting did not free the model (here: a cycle holds it)."""
    for model_id in ("tiny-org/tiny-base", "loraworks/tiny-base-lora-arith"):   # a full model, an adapter
        backend = TransformersBackend()
        backend.load(tiny_tree.record(model_id))
        collections.clear()
        weights = _weights(backend.model)
        if held_in_a_cycle:
            _hold_in_a_cycle(backend.model)
        backend.unload()
        assert backend.model is None
        assert all(ref() is None for ref in weights), model_id   # freed before unload returned
        assert len(collections) == (1 if held_in_a_cycle else 0), model_id


@pytest.mark.parametrize("held_in_a_cycle", [False, True])
@pytest.mark.parametrize("failure", ["missing tensor", "adapter", "tokenizer"])
def test_after_a_failed_load_the_next_checkpoint_drop_collects_once(tiny_tree, collections, monkeypatch, failure,
                                                                     held_in_a_cycle):
    """What a failed load built can sit in reference cycles with its exception's frames, out of reach of the
    backend; and the runtime loads the next checkpoint on a new backend object. So the next load, on any backend
    object, collects once: the failed load's weights are gone before the next checkpoint's are read."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    built = []
    from_pretrained = AutoModelForCausalLM.from_pretrained

    def remember(*args, **kwargs):
        model, info = from_pretrained(*args, **kwargs)
        built.extend(_weights(model))
        if held_in_a_cycle:
            _hold_in_a_cycle(model)
        return model, info

    def broken(*args, **kwargs):
        raise OSError("unreadable")

    model_id = {"missing tensor": "hastyuploads/tiny-sft-missing-tensor",
                "adapter": "loraworks/tiny-base-lora-arith", "tokenizer": "tiny-org/tiny-base"}[failure]
    with monkeypatch.context() as patch:
        patch.setattr(AutoModelForCausalLM, "from_pretrained", remember)
        if failure == "adapter":
            patch.setattr(PeftModel, "from_pretrained", broken)
        if failure == "tokenizer":
            patch.setattr(TransformersBackend, "_load_tokenizer", broken)
        with pytest.raises((CheckpointError, OSError)):
            TransformersBackend().load(tiny_tree.record(model_id))
    failed = list(built)
    assert failed
    collections.clear()
    TransformersBackend().load(tiny_tree.record("quietmath/tiny-arith-pro"))   # a new object, as in the runtime
    assert all(ref() is None for ref in failed)
    assert len(collections) == 1
    TransformersBackend().load(tiny_tree.record("quietmath/tiny-arith-pro"))   # and only once
    assert len(collections) == 1


def test_the_fast_path_keeps_its_module_through_unload_and_frees_it_on_release(tiny_tree, collections):
    backend = TransformersBackend(fast_decode="static", compile="off")
    backend.load(tiny_tree.record("tiny-org/tiny-base"))
    weights = _weights(backend.model)
    collections.clear()
    backend.unload()
    assert backend.model is None and all(ref() is not None for ref in weights)   # kept for the next checkpoint
    backend.load(tiny_tree.record("quietmath/tiny-arith-pro"))                    # swapped into it
    assert weights[-1]() is backend.model
    backend.release()
    assert all(ref() is None for ref in weights) and not collections
