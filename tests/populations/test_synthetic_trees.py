"""Synthetic trees: deterministic, shaped like the paper's Figure 4, with a popular base that is not the best."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.populations import PAPER_TREES, generate_tree


def test_deterministic_for_a_seed():
    a, b = generate_tree("qwen-3b"), generate_tree("qwen-3b")
    assert np.array_equal(a.matrix.values, b.matrix.values)
    assert a.models.equals(b.models)
    c = generate_tree("qwen-3b", seed=99)
    assert not np.array_equal(a.matrix.values, c.matrix.values)


@pytest.mark.parametrize("name", sorted(PAPER_TREES))
def test_paper_sized_trees_have_the_papers_shape(name):
    tree = generate_tree(name)
    config = PAPER_TREES[name]
    s = tree.summary()
    assert s["K"] == config.num_finetunes + config.num_adapters and s["Q"] == 2500
    assert s["share_10_points_below_best"] > 0.5                 # most models are far below the best
    assert s["share_within_2_points"] < 0.1                      # a thin top tail
    assert 1 < s["popular_base_rank"] < 0.3 * s["K"]             # good, but not the best
    acc = tree.matrix.accuracies
    models = tree.models
    assert acc[models["broken"].to_numpy()].max() < 0.45         # broken uploads answer at about chance
    downloads = models["downloads"].to_numpy()
    assert np.median(downloads) <= 15                           # most get a handful (paper: <= 15 / month)
    assert downloads.max() == downloads[models["is_base"].to_numpy()].max()
    assert set(models["kind"]) == {"base", "finetune", "adapter"}


def test_reuploads_copy_their_parent():
    tree = generate_tree("qwen-7b")
    models = tree.models
    ids = list(models["model_id"])
    copies = models[models["reupload_of"].notna()]
    assert len(copies) > 0
    for i, parent in zip(copies.index, copies["reupload_of"]):
        assert np.array_equal(tree.matrix.values[i], tree.matrix.values[ids.index(parent)])


def test_per_task_abilities_are_correlated():
    tree = generate_tree("llama-8b")
    ok = ~tree.models["broken"].to_numpy()
    tasks = np.asarray(tree.matrix.tasks)
    per_task = np.stack([tree.matrix.values[ok][:, tasks == t].mean(axis=1) for t in tree.config.tasks])
    corr = np.corrcoef(per_task)
    assert corr[np.triu_indices(len(tree.config.tasks), 1)].mean() > 0.3


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown tree preset"):
        generate_tree("gpt-5")
    with pytest.raises(ValueError, match="unknown task"):
        generate_tree("qwen-3b", tasks=("chess",))
