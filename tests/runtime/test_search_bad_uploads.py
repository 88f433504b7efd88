"""A live search over a tree with bad uploads (tests/bad_uploads.py): the models whose metadata cannot be read
fail at stage "metadata" with the file named, without being evaluated; the adapter whose base is nowhere fails
at load naming the base; the search finishes with the others (real tiny models, transformers on CPU, Ray)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from bad_uploads import GHOST_ADAPTER, GHOST_BASE, UNREADABLE, break_uploads

from raygems.backends import CheckpointError
from raygems.backends.checkpoint import locate
from raygems.demo import install_tiny_tree
from raygems.hub.sources import LocalTreeSource
from raygems.runtime import SearchConfig, run_search


@pytest.fixture
def broken_tree(tmp_path):
    tree = install_tiny_tree(tmp_path / "tree")
    break_uploads(tree.root)
    return tree


def test_an_adapter_whose_base_is_nowhere_fails_naming_the_base(broken_tree):
    adapter = next(r for r in LocalTreeSource(broken_tree.root).children(broken_tree.popular_base)
                   if r.model_id == GHOST_ADAPTER)
    with pytest.raises(CheckpointError, match=f"^adapter base model not found: {GHOST_BASE} "):
        locate(adapter)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_the_search_fails_the_bad_uploads_only_and_finishes(broken_tree, tmp_path):
    out = tmp_path / "run"
    result = run_search(SearchConfig(tree=str(broken_tree.root), tasks=("toy_arith",), per_task=20, budget=4,
                                     backend_settings={"batch_size": 64, "device": "cpu"}, cpus_per_model=1.0,
                                     progress=False, out=str(out)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    failed = {f["model_id"]: f for f in summary["failed_models"]}
    assert set(failed) == set(UNREADABLE) | {GHOST_ADAPTER} | set(broken_tree.broken)
    for model_id, (file, reason) in UNREADABLE.items():
        assert failed[model_id]["stage"] == "metadata"
        assert str(broken_tree.root / model_id / file) in failed[model_id]["reason"] and reason in failed[model_id][
            "reason"], failed[model_id]
    assert failed[GHOST_ADAPTER]["stage"] == "load"
    assert failed[GHOST_ADAPTER]["reason"].startswith(f"adapter base model not found: {GHOST_BASE}")
    assert summary["num_candidates"] == sum(r.kind != "merge" for r in broken_tree.records)   # kinds: finetune, adapter
    assert summary["chosen_model"] not in failed and summary["queries_paid"] > 0
    # not evaluated: no result row of an unreadable model; the saved tree keeps the mark for a resumed search
    results = pd.read_parquet(out / "store" / "results")
    assert not set(results["model_id"]) & set(UNREADABLE)
    saved = pd.read_parquet(out / "tree.parquet").set_index("model_id")["unreadable"].dropna()
    assert set(saved.index) == set(UNREADABLE)
