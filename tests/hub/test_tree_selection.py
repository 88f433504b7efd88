"""The paper's selection: per kind the most downloaded models plus a seeded random sample, and the root."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.hub.selection import paper_selection


def make_tree(num_finetunes=50, num_adapters=20, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"model_id": "org/base", "kind": "base", "downloads": 10, "likes": 0, "depth": 0}]
    for kind, n in (("finetune", num_finetunes), ("adapter", num_adapters)):
        for i in range(n):
            rows.append({"model_id": f"u/{kind}-{i:03d}", "kind": kind, "downloads": int(rng.integers(0, 10_000)),
                         "likes": int(rng.integers(0, 50)), "depth": 1 + i % 3})
    return pd.DataFrame(rows)


def test_top_and_random_per_kind_with_the_root():
    tree = make_tree()
    chosen = paper_selection(tree, top=10, random=5, seed=0)
    assert chosen.loc[chosen["selection"] == "root", "model_id"].tolist() == ["org/base"]
    for kind, size in (("finetune", 50), ("adapter", 20)):
        members = chosen[chosen["kind"] == kind]
        assert (members["selection"] == "top").sum() == 10 and (members["selection"] == "random").sum() == 5
        expected_top = tree[tree["kind"] == kind].nlargest(10, "downloads")["model_id"]
        assert set(members.loc[members["selection"] == "top", "model_id"]) == set(expected_top)
        # Random models are never more popular than the least popular top model.
        least_top = members.loc[members["selection"] == "top", "downloads"].min()
        assert (members.loc[members["selection"] == "random", "downloads"] <= least_top).all()
    # The root is kept even though it is not among the most downloaded.
    assert tree.loc[0, "downloads"] < chosen.loc[chosen["kind"] == "finetune", "downloads"].max()


def test_seeded_and_independent_of_row_order():
    tree = make_tree()
    a = paper_selection(tree, top=10, random=5, seed=3)
    b = paper_selection(tree.sample(frac=1, random_state=7), top=10, random=5, seed=3)
    assert set(a["model_id"]) == set(b["model_id"])
    c = paper_selection(tree, top=10, random=5, seed=4)
    assert set(a["model_id"]) != set(c["model_id"])
    # Rows keep the table's order.
    order = {m: i for i, m in enumerate(tree["model_id"])}
    assert list(a["model_id"]) == sorted(a["model_id"], key=order.get)


def test_small_kinds_are_kept_whole_and_ties_break_on_likes_then_id():
    tree = make_tree(num_finetunes=8, num_adapters=3)
    chosen = paper_selection(tree, top=5, random=100)
    assert len(chosen) == len(tree)
    tied = pd.DataFrame({"model_id": ["r", "b", "a", "c"], "kind": ["base", "finetune", "finetune", "finetune"],
                         "downloads": [1, 5, 5, 5], "likes": [0, 1, 1, 2], "depth": [0, 1, 1, 1]})
    top = paper_selection(tied, top=2, random=0)
    assert set(top["model_id"]) == {"r", "c", "a"}


def test_paper_sizes_on_a_large_tree():
    tree = make_tree(num_finetunes=700, num_adapters=250)
    chosen = paper_selection(tree)                     # 300 + 100 per kind, as in the paper
    assert (chosen["kind"] == "finetune").sum() == 400 and (chosen["kind"] == "adapter").sum() == 250
    assert len(chosen) == 651


def test_bad_input():
    tree = make_tree()
    with pytest.raises(ValueError, match="top"):
        paper_selection(tree, top=-1)
    with pytest.raises(ValueError, match="more than once"):
        paper_selection(pd.concat([tree, tree.iloc[[3]]]))
    with pytest.raises(ValueError, match="kind"):
        paper_selection(tree.drop(columns=["kind"]))
