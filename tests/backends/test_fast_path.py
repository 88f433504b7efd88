"""The transformers backend's fast path on the tiny tree (CPU): a static KV cache, checkpoints of one
architecture swapped into the kept module (LoRA adapters merged), compiled decoding traced once.

The reference everywhere is the plain path (`fast_decode="off"`: dynamic cache, a fresh module per
checkpoint, peft for adapters), whose own tests are in test_transformers_backend.py.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from raygems.backends import CheckpointError, GenerationRequest
from raygems.backends.checkpoint import locate
from raygems.backends.reuse import kept_backend, process_backend, release_process_backend
from raygems.backends.static_decoding import StaticDecoder
from raygems.backends.transformers_backend import TransformersBackend
from raygems.backends.weight_swap import architecture_key, lora_support
from raygems.hub.types import ModelRecord
from tiny_tree_fixture import tiny_tree  # noqa: F401 - fixture

FULL_MODELS = ("quietmath/tiny-arith-pro", "quizbowl/tiny-closest", "chatfan/tiny-instruct-chat",
               "mergefan/tiny-sft-closest-merge")
ADAPTERS = ("loraworks/tiny-base-lora-arith", "loraworks/tiny-base-lora-quick", "loraworks/tiny-instruct-lora-closest")


def _requests(tokenizer, per_task: int = 6) -> list[GenerationRequest]:
    """Toy prompts of both tasks and both prompt variants (different lengths, limits and stop strings)."""
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    requests = []
    for name in ("toy_arith", "toy_choice"):
        task = get_task(name)
        for k, query in enumerate(task.load()[:per_task]):
            prompt = render_variant(tokenizer, query["messages"], "plain" if k % 3 == 0 else "system")
            requests.append(GenerationRequest(prompt, task.max_new_tokens, tuple(task.stop)))
    return requests


def _outputs(backend, requests=None) -> list[tuple[str, int, int]]:
    requests = requests if requests is not None else _requests(backend.tokenizer)
    return [(g.text, g.prompt_tokens, g.completion_tokens) for g in backend.generate(requests)]


def _fresh(model: ModelRecord, batch_size: int = 5) -> TransformersBackend:
    backend = TransformersBackend(batch_size=batch_size, fast_decode="off")
    backend.load(model)
    return backend


def _state(module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _assert_same_weights(module, reference) -> None:
    import torch

    mine, theirs = module.state_dict(), reference.state_dict()
    assert set(mine) == set(theirs)
    different = [name for name in mine if not torch.equal(mine[name], theirs[name])]
    assert not different, f"weights differ from a fresh load: {different[:3]}"


def test_swapped_checkpoints_give_the_outputs_of_a_fresh_load(tiny_tree):
    """Several full fine-tunes in a row through one module: weights bit-identical to a fresh load, and the
    static-cache greedy outputs identical to the dynamic-cache outputs of that fresh load."""
    fast = TransformersBackend(batch_size=5, fast_decode="static")
    module = None
    for k, model_id in enumerate(FULL_MODELS):
        fast.load(tiny_tree.record(model_id))
        assert fast.last_load["how"] == ("full" if k == 0 else "swap")
        module = module or fast.model
        assert fast.model is module                       # the same module all along
        reference = _fresh(tiny_tree.record(model_id))
        _assert_same_weights(fast.model, reference.model)
        assert fast.generation_config.to_diff_dict() == reference.generation_config.to_diff_dict()
        assert _outputs(fast) == _outputs(reference), model_id
    assert fast.settings()["kv_cache"] == "static" and fast.settings()["compiled"] is False
    fast.release()


def test_lora_adapters_are_merged_into_the_kept_module(tiny_tree):
    """Adapters (on the base and on the instruct model) merged into the kept module answer like peft on a
    fresh base; a full checkpoint afterwards gets its exact weights back (the merge is undone)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    fast = TransformersBackend(batch_size=5, fast_decode="static")
    fast.load(tiny_tree.record(tiny_tree.hidden_gem))
    module = fast.model
    for model_id in ADAPTERS:
        record = tiny_tree.record(model_id)
        fast.load(record)
        assert fast.last_load["how"] == "swap" and fast.model is module
        reference = _fresh(record)
        assert _outputs(fast) == _outputs(reference), model_id
        # the merged weights are peft's merge of the same adapter
        base = AutoModelForCausalLM.from_pretrained(locate(record).base_dir, dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, record.path).merge_and_unload()
        _assert_same_weights(fast.model, merged)
    fast.load(tiny_tree.record(tiny_tree.instruct))          # the last adapter's base: the merge is undone
    assert fast.last_load["how"] == "swap"
    _assert_same_weights(fast.model, _fresh(tiny_tree.record(tiny_tree.instruct)).model)
    fast.release()


def test_adapters_that_cannot_be_merged_load_with_peft(tiny_tree, tmp_path):
    """An adapter stored the legacy way (adapter_model.bin) is not merged: peft loads it, the kept module is
    given up, and the next full checkpoint builds a new one."""
    import torch
    from safetensors.torch import load_file

    source = Path(tiny_tree.record(ADAPTERS[0]).path)
    legacy = tmp_path / "legacy-lora"
    shutil.copytree(source, legacy)
    config = json.loads((legacy / "adapter_config.json").read_text())    # out of the tree's layout: the base
    config["base_model_name_or_path"] = str(locate(tiny_tree.record(ADAPTERS[0])).base_dir)  # by absolute path
    (legacy / "adapter_config.json").write_text(json.dumps(config))
    tensors = load_file(str(legacy / "adapter_model.safetensors"))
    (legacy / "adapter_model.safetensors").unlink()
    torch.save(tensors, legacy / "adapter_model.bin")
    record = ModelRecord(model_id="legacy/lora", kind="adapter", path=str(legacy))

    fast = TransformersBackend(batch_size=5, fast_decode="static")
    fast.load(tiny_tree.record(tiny_tree.hidden_gem))
    fast.load(record)
    assert fast.last_load["how"] == "peft" and fast.settings()["kv_cache"] == "dynamic"
    assert _outputs(fast) == _outputs(_fresh(tiny_tree.record(ADAPTERS[0])))
    fast.load(tiny_tree.record("numbersmith/tiny-arith"))
    assert fast.last_load["how"] == "full" and fast.settings()["kv_cache"] == "static"
    fast.release()


def test_another_architecture_gets_a_full_load(tiny_tree, tmp_path):
    """A checkpoint with other shapes is not swapped in: a new module is built (and kept from then on)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    gem = Path(tiny_tree.record(tiny_tree.hidden_gem).path)
    wider = tmp_path / "wider"
    shutil.copytree(gem, wider)
    config = AutoConfig.from_pretrained(gem)
    config.intermediate_size = 96
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(wider)
    other = ModelRecord(model_id="wide/tiny", path=str(wider))
    assert architecture_key(json.loads((gem / "config.json").read_text())) != \
        architecture_key(json.loads((wider / "config.json").read_text()))

    fast = TransformersBackend(batch_size=5, fast_decode="static")
    fast.load(tiny_tree.record(tiny_tree.hidden_gem))
    first = fast.model
    fast.load(other)
    assert fast.last_load["how"] == "full" and fast.model is not first
    assert fast.model.config.intermediate_size == 96
    assert _outputs(fast) == _outputs(_fresh(other))
    fast.load(other)
    assert fast.last_load["how"] == "swap"              # the same checkpoint again: nothing to copy
    fast.load(tiny_tree.record(tiny_tree.hidden_gem))
    assert fast.last_load["how"] == "full"
    fast.release()


def test_broken_checkpoints_fail_with_the_usual_reason_and_keep_the_module(tiny_tree):
    fast = TransformersBackend(batch_size=5, fast_decode="static")
    fast.load(tiny_tree.record(tiny_tree.hidden_gem))
    module = fast.model
    for model_id, reason in sorted(tiny_tree.broken.items()):
        with pytest.raises(CheckpointError) as error:
            fast.load(tiny_tree.record(model_id))
        assert error.value.reason.startswith(reason), (model_id, error.value.reason)
        fast.load(tiny_tree.record("numbersmith/tiny-arith"))
        assert fast.last_load["how"] == "swap" and fast.model is module
    _assert_same_weights(fast.model, _fresh(tiny_tree.record("numbersmith/tiny-arith")).model)
    fast.release()


def test_static_caches_are_reused_across_batches_and_limits(tiny_tree):
    """Batches of different sizes and token limits share bucketed caches and still match the dynamic cache."""
    fast = TransformersBackend(batch_size=4, fast_decode="static", cache_bucket=64)
    record = tiny_tree.record(tiny_tree.hidden_gem)
    fast.load(record)
    base = _requests(fast.tokenizer, 5)
    mixed = [GenerationRequest(r.prompt, 3 + (k % 4) * 7, r.stop) for k, r in enumerate(base)]
    assert _outputs(fast, mixed) == _outputs(_fresh(record, 4), mixed)
    assert len(fast._decoder.cache_shapes) <= fast._decoder.max_caches
    assert all(length % 64 == 0 for _, length in fast._decoder.cache_shapes)
    fast.unload()                                      # keeps the module for the next checkpoint
    assert fast.model is None and fast._shell is not None
    fast.release()
    assert fast._shell is None and fast._decoder is None


def test_compiled_decoding_is_traced_once_across_checkpoints(tiny_tree):
    """torch.compile (the cheap "eager" backend: tracing only) traces the decode step once; swapping weights,
    merging adapters and padding short batches cause no new trace, and outputs follow the new weights."""
    from torch._dynamo.utils import counters

    fast = TransformersBackend(batch_size=4, fast_decode="static", compile="on", compile_backend="eager")
    graphs = None
    for model_id in (tiny_tree.hidden_gem, "numbersmith/tiny-arith", ADAPTERS[1]):
        record = tiny_tree.record(model_id)
        fast.load(record)
        requests = _requests(fast.tokenizer, 3)[:5]     # 5 prompts: batches of 4 and 1 (padded to 4)
        assert _outputs(fast, requests) == _outputs(_fresh(record, 4), requests), model_id
        if graphs is None:
            graphs = counters["stats"]["unique_graphs"]
            assert graphs >= 1
        assert counters["stats"]["unique_graphs"] == graphs, "a swapped checkpoint was recompiled"
    settings = fast.settings()
    assert settings["compiled"] is True and settings["batch_padding"]
    fast.release()


def test_a_compiler_failure_falls_back_to_eager_decoding(tiny_tree):
    """If compiled generation raises (here: an unknown torch.compile backend), the batch is decoded eagerly,
    compilation stays off, and settings() says why; the checkpoint does not fail."""
    fast = TransformersBackend(batch_size=4, fast_decode="static", compile="on", compile_backend="no-such-backend")
    record = tiny_tree.record(tiny_tree.hidden_gem)
    fast.load(record)
    requests = _requests(fast.tokenizer, 2)
    assert _outputs(fast, requests) == _outputs(_fresh(record, 4), requests)
    settings = fast.settings()
    assert settings["compiled"] is False and "no-such-backend" in settings["compile_error"]
    fast.release()


def test_workers_keep_one_fast_backend(tiny_tree):
    """The runtime's evaluator reuses the process's fast backend across checkpoints (the module survives
    unload/assign), and builds a fresh plain backend each time otherwise."""
    from raygems.runtime.evaluation import EvaluatorSpec
    from raygems.tasks.pool import build_query_pool

    pool = build_query_pool(["toy_arith"], per_task=4, seed=0)
    spec = EvaluatorSpec(backend="transformers", settings={"batch_size": 8, "fast_decode": "static"})
    modules, hows = [], []
    for model_id in (tiny_tree.hidden_gem, "numbersmith/tiny-arith"):
        evaluator = spec.build(tiny_tree.record(model_id), pool)
        evaluator.load()
        rows = evaluator.evaluate(pool.query_ids)
        assert len(rows) == 2 * len(pool) and json.loads(rows[0]["backend_settings"])["kv_cache"] == "static"
        modules.append(id(evaluator.backend._shell.module))
        hows.append(evaluator.backend.last_load["how"])
        evaluator.unload()
    assert hows == ["full", "swap"] and modules[0] == modules[1]
    assert kept_backend() is evaluator.backend
    plain = {"batch_size": 8, "fast_decode": "off"}
    assert process_backend("transformers", plain) is not process_backend("transformers", plain)
    kept = kept_backend()
    other = process_backend("transformers", {"batch_size": 4, "fast_decode": "static"})
    assert kept_backend() is other and kept._shell is None   # the old one was released
    release_process_backend()
    assert kept_backend() is None


def test_fast_path_settings_and_helpers():
    import torch

    for bad in ({"fast_decode": "fast"}, {"compile": "maybe"}, {"cache_bucket": 0}, {"compile_backend": ""}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TransformersBackend(**bad)
    cuda = torch.cuda.is_available()
    assert TransformersBackend().reuse_per_process == cuda            # "auto": on for CUDA only
    assert TransformersBackend(fast_decode="static").reuse_per_process
    assert TransformersBackend(fast_decode="static").config.compiled() == cuda
    assert not TransformersBackend(fast_decode="static", compile="off").config.compiled()
    assert not TransformersBackend(fast_decode="off", compile="on").config.compiled()

    decoder = StaticDecoder(compile=False, cache_bucket=256)
    assert decoder.cache_length(100, 50) == 256 and decoder.cache_length(200, 100) == 512
    assert decoder.cache_length(100, 50, max_positions=200) == 200      # the exact need fits the limit
    assert decoder.cache_length(300, 50, max_positions=200) == 512      # it does not: the bucket

    config = {"model_type": "qwen3", "hidden_size": 64, "_name_or_path": "a", "torch_dtype": "float32",
              "eos_token_id": 2, "transformers_version": "5.0"}
    same = {**config, "_name_or_path": "b", "torch_dtype": "bfloat16", "eos_token_id": 3}
    assert architecture_key(config) == architecture_key(same)
    assert architecture_key(config) != architecture_key({**config, "hidden_size": 128})
    assert lora_support({"peft_type": "LORA", "bias": "none"}) is None
    assert "use_dora" in lora_support({"peft_type": "LORA", "use_dora": True})
    assert "bias" in lora_support({"peft_type": "LORA", "bias": "all"})
    assert "not LoRA" in lora_support({"peft_type": "IA3"})
    assert "modules_to_save" in lora_support({"peft_type": "LORA", "modules_to_save": ["lm_head"]})
