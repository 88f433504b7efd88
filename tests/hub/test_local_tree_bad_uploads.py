"""One bad upload costs one model: a copy of the tiny tree with unreadable metadata (tests/bad_uploads.py) lists
every model, marks the unreadable ones with the file and the reason, keeps the mark through tree.parquet, and
is served over HTTP by the local hub server without stopping it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bad_uploads import BASE_ID, GHOST_ADAPTER, GHOST_BASE, UNREADABLE, break_uploads
from recorded_hub_helpers import hub_online  # noqa: F401 - fixture

from raygems.cli import main
from raygems.demo import install_tiny_tree
from raygems.hub.cards import ModelCardError
from raygems.hub.catalog import DirectoryCatalog
from raygems.hub.listing import list_tree, read_tree, save_tree, tree_records
from raygems.hub.serve import HubServer
from raygems.hub.sources import RELATIONS, HubTreeSource, LocalTreeSource


@pytest.fixture
def broken_tree(tmp_path) -> tuple[Path, list[str]]:
    tree = install_tiny_tree(tmp_path / "tree")
    break_uploads(tree.root)
    return tree.root, list(tree.model_ids)


def test_every_model_is_listed_and_the_unreadable_ones_say_which_file_and_why(broken_tree):
    root, model_ids = broken_tree
    source = LocalTreeSource(root)
    assert source.roots() == [BASE_ID]
    tree = list_tree(source, BASE_ID, kinds=RELATIONS, progress=False).set_index("model_id")
    assert set(tree.index) == set(model_ids)
    marked = tree["unreadable"].dropna().to_dict()
    assert set(marked) == set(UNREADABLE)
    for model_id, (file, reason) in UNREADABLE.items():
        assert marked[model_id].startswith(f"{root / model_id / file}: ") and reason in marked[model_id], marked
    # what could still be read places them: the parent of the card (or the line that still names it), the
    # inferred relation; a card naming no readable parent and the adapter of a missing base go under the root
    assert tree.loc["chatfan/tiny-instruct-chat", ["kind", "base_model", "depth"]].tolist() == [
        "finetune", "tiny-org/tiny-base-instruct", 2]
    for model_id in ("quizbowl/tiny-closest", "oops/tiny-base-noisy", "mathwiz/tiny-math-v1", GHOST_ADAPTER):
        assert tree.loc[model_id, ["base_model", "depth"]].tolist() == [BASE_ID, 1], model_id
    assert tree.loc[GHOST_ADAPTER, "kind"] == "adapter" and pd.isna(tree.loc[GHOST_ADAPTER, "unreadable"])
    assert tree.loc["numbersmith/tiny-arith", "downloads"] == 0          # the bad value is not used
    assert tree.loc["numbersmith/tiny-arith", "likes"] == 2              # the good one next to it is
    assert source.base_models("quizbowl/tiny-closest") == [BASE_ID] and source.base_models("oops/tiny-base-noisy") == []
    with pytest.raises(ModelCardError, match="quizbowl/tiny-closest: front matter is not valid YAML"):
        source.model_card("quizbowl/tiny-closest")


def test_the_mark_survives_tree_parquet(broken_tree, tmp_path):
    root, _ = broken_tree
    tree = list_tree(LocalTreeSource(root), BASE_ID, progress=False)
    back = read_tree(save_tree(tree, tmp_path / "tree.parquet"))
    records = {r.model_id: r for r in tree_records(back)}
    assert {m for m, r in records.items() if r.unreadable} == set(UNREADABLE)
    assert records["numbersmith/tiny-arith"].unreadable == tree.set_index("model_id").loc[
        "numbersmith/tiny-arith", "unreadable"]
    # the records a search saves (ModelRecord.to_row) carry it too
    assert pd.DataFrame([r.to_row() for r in records.values()])["unreadable"].notna().sum() == len(UNREADABLE)


def test_raygems_tree_lists_a_broken_directory_and_counts_the_unreadable(broken_tree, tmp_path, capsys):
    root, model_ids = broken_tree
    out = tmp_path / "tree.parquet"
    assert main(["tree", str(root), "--out", str(out), "--no-progress", "--kinds", ",".join(RELATIONS)]) == 0
    assert f"{len(UNREADABLE)} with metadata that cannot be read" in capsys.readouterr().out
    saved = pd.read_parquet(out)
    assert len(saved) == len(model_ids) and saved["unreadable"].notna().sum() == len(UNREADABLE)


def test_the_hub_server_serves_the_others_and_what_it_can_of_the_broken(broken_tree, hub_online, tmp_path):
    root, model_ids = broken_tree
    catalog = DirectoryCatalog(root)
    assert set(catalog.unreadable()) == set(UNREADABLE)
    with HubServer(catalog) as hub:
        served = list_tree(HubTreeSource(endpoint=hub.endpoint, cache_dir=tmp_path), BASE_ID, kinds=RELATIONS,
                           progress=False).set_index("model_id")
        from huggingface_hub import HfApi

        noisy = HfApi(endpoint=hub.endpoint).model_info("oops/tiny-base-noisy")
        ghost = HfApi(endpoint=hub.endpoint).model_info(GHOST_ADAPTER, expand=["tags"])
    # as on the hub, a model is listed under the parents its tags name: a card with no readable parent is
    # not, the adapter is under the base its card names; every other model is there
    assert set(served.index) == set(model_ids) - {"oops/tiny-base-noisy", GHOST_ADAPTER}
    assert served.loc["quizbowl/tiny-closest", "base_model"] == BASE_ID            # from the salvaged line
    assert served.loc["numbersmith/tiny-arith", "downloads"] == 0
    assert noisy.card_data is None or dict(noisy.card_data) == {}
    assert f"base_model:adapter:{GHOST_BASE}" in ghost.tags
