"""The tree walk: depths, duplicates, cycles, the is_base rule, leaf skipping, parquet round trips."""
from __future__ import annotations

from dataclasses import replace

import pytest

from raygems.hub.listing import is_official_release, list_tree, read_tree, save_tree, tree_records
from raygems.hub.sources import RELATIONS, TreeSource
from raygems.hub.types import ModelRecord


class DictTreeSource(TreeSource):
    """An in-memory source: parent -> [(child id, relation, downloads)]; counts calls to children()."""

    def __init__(self, links, counts=None):
        self.links = links
        self.counts = counts or {}
        self.asked: list[str] = []

    def model(self, model_id):
        return ModelRecord(model_id, kind="base", downloads=1000, extra={"children_count": self.counts.get(model_id)})

    def children(self, model_id, kinds=RELATIONS):
        self.asked.append(model_id)
        return [ModelRecord(child, kind=relation, base_model=model_id, downloads=downloads,
                            extra={} if self.counts.get(child) is None else {"children_count": self.counts[child]})
                for child, relation, downloads in self.links.get(model_id, []) if relation in kinds]

    def model_card(self, model_id, revision=None):
        raise NotImplementedError

    def fetch(self, model):
        raise NotImplementedError


LINKS = {
    "org/Base-7B": [("org/Base-7B-Instruct", "finetune", 900), ("org/Base-7B-Math", "finetune", 50),
                    ("u1/a", "finetune", 5), ("u2/lora", "adapter", 2), ("q/Base-7B-GGUF", "quantized", 300),
                    ("other/Base-7B-Instruct", "finetune", 8)],
    "org/Base-7B-Instruct": [("u3/b", "finetune", 4), ("u1/a", "finetune", 5),          # u1/a listed twice
                             ("org/Base-7B-Instruct-v2", "finetune", 70)],
    "u3/b": [("u4/c", "finetune", 1), ("org/Base-7B-Instruct", "finetune", 900)],     # a cycle back up
    "u4/c": [("u5/d", "adapter", 0)],
}


def test_breadth_first_depths_duplicates_and_cycles():
    tree = list_tree(DictTreeSource(LINKS), "org/Base-7B", progress=False).set_index("model_id")
    assert tree.index.is_unique
    assert dict(tree["depth"]) == {"org/Base-7B": 0, "org/Base-7B-Instruct": 1, "org/Base-7B-Math": 1, "u1/a": 1,
                                   "u2/lora": 1, "other/Base-7B-Instruct": 1, "u3/b": 2,
                                   "org/Base-7B-Instruct-v2": 2, "u4/c": 3, "u5/d": 4}
    assert tree.loc["u1/a", "base_model"] == "org/Base-7B"                # the shallowest parent wins
    assert tree.loc["org/Base-7B", "kind"] == "base" and tree.loc["u5/d", "kind"] == "adapter"
    assert "q/Base-7B-GGUF" not in tree.index                            # quantized not asked for


def test_is_base_marks_the_root_and_its_official_instruct_release_only():
    tree = list_tree(DictTreeSource(LINKS), "org/Base-7B", progress=False).set_index("model_id")
    assert set(tree.index[tree["is_base"]]) == {"org/Base-7B", "org/Base-7B-Instruct"}
    rule = lambda mid, kind="finetune", parent="meta/Llama-3.1-8B": is_official_release(  # noqa: E731
        ModelRecord(mid, kind=kind, base_model=parent), "meta/Llama-3.1-8B")
    assert rule("meta/Llama-3.1-8B-Instruct") and rule("meta/Llama-3.1-8B-chat") and rule("meta/llama-8b-it")
    assert not rule("meta/Llama-3.1-8B-Instruct", kind="adapter")
    assert not rule("someone/Llama-3.1-8B-Instruct")                       # another organisation
    assert not rule("meta/Llama-3.1-8B-Guard")                             # same org, not an instruct version
    assert not rule("meta/Llama-3.1-8B-Instruct", parent="meta/Other")    # not a direct child of the root
    assert not rule("meta/Llama-3.1-8B-Instructions-Dataset-Model")


def test_max_depth_and_kinds():
    source = DictTreeSource(LINKS)
    assert list(list_tree(source, "org/Base-7B", max_depth=0, progress=False)["model_id"]) == ["org/Base-7B"]
    one = list_tree(source, "org/Base-7B", max_depth=1, kinds=("finetune", "quantized"), progress=False)
    assert one["depth"].max() == 1 and set(one["kind"]) == {"base", "finetune", "quantized"}
    with pytest.raises(ValueError, match="relation"):
        list_tree(source, "org/Base-7B", kinds=("finetune", "sibling"))
    with pytest.raises(ValueError, match="max_depth"):
        list_tree(source, "org/Base-7B", max_depth=-1)


def test_children_counts_let_the_walk_skip_leaves():
    counts = {"org/Base-7B": {"finetune": 5, "adapter": 1}, "org/Base-7B-Instruct": {"finetune": 3},
              "org/Base-7B-Math": {"finetune": 0, "quantized": 4}, "u1/a": 0, "u2/lora": 0,
              "other/Base-7B-Instruct": 0, "org/Base-7B-Instruct-v2": {"adapter": 0}}
    source = DictTreeSource(LINKS, counts)
    tree = list_tree(source, "org/Base-7B", progress=False)
    # Math has children, but only quantized ones, which were not asked for.
    assert set(source.asked) == {"org/Base-7B", "org/Base-7B-Instruct", "u3/b", "u4/c", "u5/d"}
    assert len(tree) == 10


def test_parquet_round_trip(tmp_path):
    tree = list_tree(DictTreeSource(LINKS), "org/Base-7B", progress=False)
    path = save_tree(tree, tmp_path / "sub" / "tree.parquet")
    back = read_tree(path)
    assert back.equals(tree)
    records = tree_records(back)
    assert records[0] == replace(DictTreeSource(LINKS).model("org/Base-7B"), is_base=True, extra={})
    assert {r.model_id: r.depth for r in records}["u5/d"] == 4
    with pytest.raises(FileNotFoundError):
        read_tree(tmp_path / "nope.parquet")
    with pytest.raises(ValueError, match="lacks columns"):
        save_tree(tree.drop(columns=["depth"]), tmp_path / "x.parquet")
