"""LocalTreeSource on a small tree written in the local hub layout of docs/architecture.md."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from raygems.hub.listing import list_tree
from raygems.hub.sources import HubTreeSource, LocalTreeSource, open_tree_source


def write_model(root: Path, model_id: str, card: dict | None, hub: dict | None = None,
                files: dict[str, str] | None = None, text: str = "") -> Path:
    import yaml

    folder = root / model_id
    folder.mkdir(parents=True)
    front = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n" if card is not None else ""
    (folder / "README.md").write_text(front + f"# {model_id}\n{text}")
    if hub is not None:
        (folder / ".raygems_hub.json").write_text(json.dumps(hub))
    for name, content in (files or {"config.json": "{}"}).items():
        (folder / name).write_text(content)
    return folder


@pytest.fixture
def local_tree(tmp_path) -> Path:
    root = tmp_path / "hub"
    write_model(root, "tiny/base", {"pipeline_tag": "text-generation", "library_name": "transformers"},
                {"downloads": 5000, "likes": 10, "created_at": "2025-01-01T00:00:00Z", "revision": "r-base"})
    write_model(root, "tiny/base-instruct", {"base_model": "tiny/base", "base_model_relation": "finetune"},
                {"downloads": 9000, "likes": 30, "revision": "r-inst"})
    write_model(root, "ann/math", {"base_model": "tiny/base", "library_name": "transformers"},
                {"downloads": 12, "likes": 0, "revision": "r-math"},
                text="| Benchmark | Score |\n|---|---|\n| GSM8K | 61.0 |\n")
    write_model(root, "ann/lora", {"base_model": "tiny/base-instruct", "library_name": "peft"},
                {"downloads": 3}, files={"adapter_config.json": "{}"})
    write_model(root, "ann/q4", {"base_model": "tiny/base-instruct"}, {"downloads": 40},
                files={"model-q4.gguf": "gguf"})
    write_model(root, "ann/awq", {"base_model": "tiny/base"}, {"downloads": 41},
                files={"config.json": json.dumps({"quantization_config": {"quant_method": "awq"}})})
    write_model(root, "ann/merge", {"base_model": ["ann/math", "tiny/base-instruct"]}, {"downloads": 7})
    write_model(root, "bob/deep", {"base_model": "ann/math"}, None)          # no .raygems_hub.json
    write_model(root, "other/unrelated", {"pipeline_tag": "fill-mask"}, {"downloads": 1})
    (root / "notes").mkdir()                                                  # not a model folder
    (root / "notes" / "readme.txt").write_text("not a model")
    return root


def test_relations_declared_or_inferred_from_files(local_tree):
    source = LocalTreeSource(local_tree)
    kinds = {r.model_id: r.kind for r in source.children("tiny/base")}
    assert kinds == {"tiny/base-instruct": "finetune", "ann/math": "finetune", "ann/awq": "quantized"}
    kinds = {r.model_id: r.kind for r in source.children("tiny/base-instruct")}
    assert kinds == {"ann/lora": "adapter", "ann/q4": "quantized", "ann/merge": "merge"}
    assert [r.model_id for r in source.children("tiny/base", kinds=("adapter",))] == []


def test_records_carry_hub_metadata_and_paths(local_tree):
    source = LocalTreeSource(local_tree)
    base = source.model("tiny/base")
    assert (base.downloads, base.likes, base.revision) == (5000, 10, "r-base")
    assert base.created_at == "2025-01-01T00:00:00Z" and base.pipeline_tag == "text-generation"
    assert base.is_base and base.kind == "base"
    assert Path(base.path) == (local_tree / "tiny" / "base").resolve()
    deep = {r.model_id: r for r in source.children("ann/math")}["bob/deep"]
    assert (deep.downloads, deep.revision) == (0, "main")                   # defaults without .raygems_hub.json
    assert source.fetch(deep) == (local_tree / "bob" / "deep").resolve()


def test_list_tree_over_a_local_directory(local_tree):
    tree = list_tree(LocalTreeSource(local_tree), "tiny/base", kinds=("finetune", "adapter", "quantized", "merge"),
                     progress=False).set_index("model_id")
    assert set(tree.index) == {"tiny/base", "tiny/base-instruct", "ann/math", "ann/lora", "ann/q4", "ann/awq",
                               "ann/merge", "bob/deep"}
    assert tree.loc["ann/merge", "depth"] == 2 and tree.loc["bob/deep", "depth"] == 2
    assert set(tree.index[tree["is_base"]]) == {"tiny/base", "tiny/base-instruct"}
    assert tree.loc["tiny/base-instruct", "path"].endswith("tiny/base-instruct")


def test_roots_cards_and_errors(local_tree, tmp_path):
    source = LocalTreeSource(local_tree)
    assert set(source.roots()) == {"tiny/base", "other/unrelated"}
    assert source.model_card("ann/math").documentation_for("gsm8k") == "relevant"
    assert source.model_card("ann/merge").base_models == ["ann/math", "tiny/base-instruct"]
    with pytest.raises(ValueError, match="not in the local tree"):
        source.children("no/such")
    with pytest.raises(ValueError, match="relation"):
        source.children("tiny/base", kinds=("sibling",))
    with pytest.raises(FileNotFoundError):
        LocalTreeSource(tmp_path / "absent")



def test_unreadable_metadata_is_marked_not_raised(tmp_path):
    """Values of the wrong type, in the card or the hub file (the tiny-tree cases: test_local_tree_bad_uploads.py)."""
    root = tmp_path / "bad"
    write_model(root, "x/base", {"library_name": "transformers"}, {"downloads": 10})
    write_model(root, "x/y", {"base_model": "x/base", "base_model_relation": "cousin"}, {"downloads": 1})
    write_model(root, "x/odd", {"base_model": ["x/base", {"not": "an id"}], "pipeline_tag": ["a", "list"]},
                {"downloads": True, "likes": 4, "revision": 7})
    write_model(root, "x/list", {"base_model": "x/base"}, None)
    (root / "x/list/.raygems_hub.json").write_text("[1, 2]")
    source = LocalTreeSource(root)
    assert source.roots() == ["x/base"]
    records = {r.model_id: r for r in source.children("x/base")}
    assert set(records) == {"x/y", "x/odd", "x/list"}
    assert records["x/y"].kind == "finetune"
    assert "base_model_relation 'cousin' is not one of" in records["x/y"].unreadable
    odd = records["x/odd"]
    assert "base_model must be a model id or a list of them" in odd.unreadable
    assert "downloads True is not a whole number" in odd.unreadable
    assert "revision 7 is not a commit id" in odd.unreadable
    assert (odd.downloads, odd.likes, odd.revision, odd.pipeline_tag) == (0, 4, "main", None)
    assert "expected an object" in records["x/list"].unreadable
    assert source.model("x/base").unreadable is None


def test_open_tree_source(local_tree):
    assert isinstance(open_tree_source(local_tree), LocalTreeSource)
    assert isinstance(open_tree_source(str(local_tree)), LocalTreeSource)
    assert isinstance(open_tree_source("Qwen/Qwen2.5-3B", retries=1), HubTreeSource)
