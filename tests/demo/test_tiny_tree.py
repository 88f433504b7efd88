"""The tiny local model tree: real checkpoints in the local hub layout, a real quality ladder, and broken
checkpoints that fail the way they were built to fail. The tree is installed from the shipped weights once per
session by the fixture `tiny_tree` (tests/tiny_tree_fixture.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from raygems.backends import CheckpointError, get_backend
from raygems.hub.cards import parse_model_card
from raygems.demo import default_tiny_tree_root, install_tiny_tree
from raygems.demo.tiny_tree import MANIFEST
from raygems.demo.tree_spec import BASE
from tiny_tree_fixture import tiny_tree, toy_accuracy  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def backend():
    backend = get_backend("transformers", batch_size=64)
    yield backend
    backend.unload()


def test_tree_shape(tiny_tree):
    ids = tiny_tree.model_ids
    assert 12 <= len(ids) <= 20 and len(set(ids)) == len(ids)
    kinds = {r.kind for r in tiny_tree.records}
    assert kinds == {"base", "finetune", "adapter", "merge"}
    assert len(tiny_tree.adapters()) >= 2
    assert max(r.depth for r in tiny_tree.records) >= 2
    base = tiny_tree.record(tiny_tree.popular_base)
    assert base.model_id == BASE and base.kind == "base" and base.base_model is None and base.is_base
    instruct = tiny_tree.record(tiny_tree.instruct)
    assert instruct.is_base and instruct.base_model == BASE and instruct.model_id.startswith("tiny-org/")
    assert [r.model_id for r in tiny_tree.records if r.is_base] == [BASE, tiny_tree.instruct]
    # heavy-tailed downloads: the popular base leads, the hidden gem is barely downloaded
    downloads = sorted((r.downloads for r in tiny_tree.records), reverse=True)
    assert downloads[0] == base.downloads and downloads[1] == instruct.downloads
    assert downloads[0] > 2 * downloads[1] > 4 * downloads[2]
    assert tiny_tree.record(tiny_tree.hidden_gem).downloads < 0.001 * base.downloads
    assert set(tiny_tree.broken) <= set(ids) and len(tiny_tree.broken) == 4


def test_models_are_tiny_qwen3_with_head_dim_32(tiny_tree):
    from safetensors.torch import load_file

    for record in tiny_tree.working():
        if record.kind == "adapter":
            continue
        folder = Path(record.path)
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "qwen3" and config["head_dim"] == 32
        parameters = sum(t.numel() for t in load_file(str(folder / "model.safetensors")).values())
        assert 100_000 <= parameters <= 300_000, (record.model_id, parameters)
        assert (folder / "generation_config.json").is_file()


def test_model_cards_and_hub_metadata(tiny_tree):
    for record in tiny_tree.records:
        folder = Path(record.path)
        card = parse_model_card((folder / "README.md").read_text(), record.model_id)
        assert card.pipeline_tag == "text-generation"
        assert card.library_name == ("peft" if record.kind == "adapter" else "transformers")
        if record.kind == "base":
            assert card.base_models == []
        else:
            assert card.base_models[0] == record.base_model
            assert card.base_model_relation == record.kind
        hub = json.loads((folder / ".raygems_hub.json").read_text())
        assert hub["downloads"] == record.downloads and hub["likes"] == record.likes
        assert hub["created_at"] == record.created_at and hub["revision"] == record.revision
        assert len(hub["revision"]) == 40


def test_the_local_tree_source_lists_the_same_tree(tiny_tree):
    from raygems.hub.listing import list_tree
    from raygems.hub.sources import LocalTreeSource

    table = list_tree(LocalTreeSource(tiny_tree.root), BASE, kinds=("finetune", "adapter", "merge"),
                      progress=False)
    assert sorted(table["model_id"]) == sorted(tiny_tree.model_ids)
    by_id = table.set_index("model_id")
    for record in tiny_tree.records:
        row = by_id.loc[record.model_id]
        assert row["kind"] == record.kind and row["downloads"] == record.downloads
        assert row["depth"] == record.depth and bool(row["is_base"]) == record.is_base


def test_adapters_name_their_base_by_hub_id_and_load_with_peft(tiny_tree):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from raygems.backends.checkpoint import locate

    for adapter in tiny_tree.adapters():
        config = json.loads((Path(adapter.path) / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == adapter.base_model   # a hub id, as an upload names it
        assert config["r"] == 8
        assert not (Path(adapter.path) / "tokenizer.json").exists()  # the base's tokenizer is used
        files = locate(adapter)                                      # found in the same local hub layout
        assert files.is_adapter and files.base_dir == Path(tiny_tree.record(adapter.base_model).path)
    adapter = tiny_tree.adapters()[0]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(locate(adapter).base_dir), adapter.path)
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_tokenizer_ids_agree_and_the_system_prompt_is_real(tiny_tree):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from raygems.demo.builder.tokenizer import SYSTEM_PROMPT
    from raygems.tasks import get_task
    from raygems.tasks.prompting import model_system_prompt, render_variant

    folder = Path(tiny_tree.record(BASE).path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    query = get_task("toy_arith").load()[0]
    assert model_system_prompt(tokenizer) == SYSTEM_PROMPT
    system = render_variant(tokenizer, query["messages"], "system")
    plain = render_variant(tokenizer, query["messages"], "plain")
    assert SYSTEM_PROMPT in system and SYSTEM_PROMPT not in plain
    for text in (system, plain, "12+34=46\n#### 46"):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == raw.encode(text, add_special_tokens=False).ids
    assert tokenizer.convert_ids_to_tokens(tokenizer("1234")["input_ids"]) == ["1", "2", "3", "4"]


def test_broken_checkpoints_fail_with_their_reason(tiny_tree, backend):
    for model_id, reason in tiny_tree.broken.items():
        with pytest.raises(CheckpointError) as caught:
            backend.load(tiny_tree.record(model_id))
        assert caught.value.reason.startswith(reason), (model_id, caught.value.reason)
    assert tiny_tree.broken["hastyuploads/tiny-sft-missing-tensor"] == \
        "missing tensor model.layers.0.mlp.up_proj.weight"


@pytest.mark.slow
def test_the_quality_ladder_is_real(tiny_tree, backend):
    """Measured with the transformers backend: the hidden gem is the best on toy_arith and far above the
    popular base; checkpoints along the training run climb; the good adapter beats the mediocre one. The
    weights are shipped, so this holds on any CPU; greedy decoding may round differently on another CPU's
    float kernels, so the accuracies recorded when the weights were built are matched within 0.05."""
    arith = {r.model_id: toy_accuracy(backend, r, "toy_arith", num_items=150) for r in tiny_tree.working()}
    gem, base = arith[tiny_tree.hidden_gem], arith[tiny_tree.popular_base]
    assert max(arith, key=arith.get) == tiny_tree.hidden_gem, arith
    assert gem >= 0.8 and base <= 0.2 and gem - base >= 0.6, arith
    ladder = [BASE, "mathwiz/tiny-math-v1", "quickft/tiny-sft", tiny_tree.hidden_gem]
    assert [arith[m] for m in ladder] == sorted(arith[m] for m in ladder), arith
    assert arith["loraworks/tiny-base-lora-arith"] >= arith["loraworks/tiny-base-lora-quick"] + 0.2, arith
    assert arith["loraworks/tiny-base-lora-arith"] >= base + 0.2, arith
    specialist = tiny_tree.expected_best["toy_choice"]
    choice = {m: toy_accuracy(backend, tiny_tree.record(m), "toy_choice", num_items=150)
              for m in (specialist, tiny_tree.hidden_gem, BASE)}
    assert choice[specialist] > choice[tiny_tree.hidden_gem] > choice[BASE], choice
    recorded = tiny_tree.accuracy_at_build
    for model_id, accuracy in arith.items():
        assert abs(accuracy - recorded[model_id]["toy_arith"]) <= 0.05, (model_id, accuracy, recorded[model_id])
    for model_id, accuracy in choice.items():
        assert abs(accuracy - recorded[model_id]["toy_choice"]) <= 0.05, (model_id, accuracy, recorded[model_id])


def test_a_second_install_finds_the_tree_in_place(tiny_tree, monkeypatch):
    from raygems.demo import tiny_tree as installer

    def install_again(*args, **kwargs):
        raise AssertionError("the tree was written again")

    monkeypatch.setattr(installer, "_install", install_again)
    written = {path: path.stat().st_mtime_ns for path in tiny_tree.root.rglob("*") if path.is_file()}
    again = install_tiny_tree(tiny_tree.root)
    assert {path: path.stat().st_mtime_ns for path in tiny_tree.root.rglob("*") if path.is_file()} == written
    assert again.records == tiny_tree.records and again.key == tiny_tree.key
    manifest = json.loads((tiny_tree.root / MANIFEST).read_text())
    assert manifest["key"] == tiny_tree.key and manifest["built_on"]["cpu"]


def test_installs_are_identical_wherever_they_are_written(tiny_tree, tmp_path):
    """The revision of every model is a hash of its files: two installs hold the same files."""
    other = install_tiny_tree(tmp_path / "tree")
    assert [r.revision for r in other.records] == [r.revision for r in tiny_tree.records]
    assert other.key != tiny_tree.key     # the key includes where the tree is


def test_installing_needs_neither_torch_nor_transformers(tmp_path):
    """The demo's first step stays well under a second: importing torch alone takes longer."""
    import subprocess
    import sys

    code = ("import sys; from raygems.demo import install_tiny_tree; install_tiny_tree(sys.argv[1]); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tree")], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
    assert (tmp_path / "tree" / "hastyuploads" / "tiny-sft-missing-tensor" / "model.safetensors").is_file()


def test_damaged_shipped_files_are_refused(tmp_path):
    import shutil

    from raygems.demo.tiny_tree import SHIPPED_FILES

    files = tmp_path / "files"
    shutil.copytree(SHIPPED_FILES, files)
    weights = files / "models" / BASE / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ValueError, match="missing or damaged"):
        install_tiny_tree(tmp_path / "tree", files=files)


def test_default_root_honours_raygems_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYGEMS_CACHE", str(tmp_path))
    assert default_tiny_tree_root() == tmp_path / "tiny-tree"
    monkeypatch.delenv("RAYGEMS_CACHE")
    assert default_tiny_tree_root() == Path.home() / ".cache" / "raygems" / "tiny-tree"


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds no tiny tree"):
        install_tiny_tree(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]  # nothing added either
