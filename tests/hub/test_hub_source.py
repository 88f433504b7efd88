"""HubTreeSource against a local server that answers like the hub (real huggingface_hub client code)."""
from __future__ import annotations

import json

import pytest
from recorded_hub_helpers import RECORDED, ROOT_ID, hub_online, recorded_hub  # noqa: F401 - fixtures

from raygems.hub.listing import list_tree
from raygems.hub.sources import HubTreeSource
from raygems.hub.types import ModelRecord

ALL_KINDS = ("finetune", "adapter", "quantized", "merge")


def make_source(hub, tmp_path, **options):
    sleeps: list[float] = []
    source = HubTreeSource(endpoint=hub.endpoint, cache_dir=tmp_path / "cache", sleep=sleeps.append, **options)
    return source, sleeps


def recorded_models():
    return {m["id"]: m for m in json.loads((RECORDED / "models.json").read_text())}


def test_children_come_from_relation_tags_with_hub_metadata(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    children = {r.model_id: r for r in source.children(ROOT_ID, kinds=("finetune", "adapter"))}
    recorded = recorded_models()
    expected = {m for m, info in recorded.items()
                if any(t in info["tags"] for t in (f"base_model:finetune:{ROOT_ID}", f"base_model:adapter:{ROOT_ID}"))}
    assert set(children) == expected == {"acme-ai/Acme-1B-Instruct", "acme-ai/Acme-1B-Coder", "alice/acme-math-sft",
                                         "bob/acme-chat-dpo", "carol/acme-lora-gsm8k", "dave/acme-lora-sql"}
    carol = children["carol/acme-lora-gsm8k"]
    assert carol.kind == "adapter" and carol.base_model == ROOT_ID
    assert carol.downloads == recorded["carol/acme-lora-gsm8k"]["downloads"] == 57
    assert carol.likes == 1 and carol.library_name == "peft" and carol.pipeline_tag is None
    assert carol.revision == recorded["carol/acme-lora-gsm8k"]["sha"]
    assert carol.created_at.startswith("2025-03-11T09:15:20")
    # The listing asked the hub for exactly the fields it needs, with the documented filter syntax.
    listing = recorded_hub.requests_to("/api/models")[0]
    assert listing.params("filter") == [f"base_model:finetune:{ROOT_ID}"]
    assert {"downloads", "likes", "createdAt", "pipeline_tag", "library_name", "sha"} <= set(listing.params("expand"))


def test_whole_tree_with_depths_duplicates_and_leaf_skipping(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    tree = list_tree(source, ROOT_ID, kinds=ALL_KINDS, progress=False).set_index("model_id")
    assert len(tree) == len(recorded_models()) == 15          # every model once, the dual-parent one included
    assert tree.loc[ROOT_ID, "depth"] == 0 and tree.loc[ROOT_ID, "kind"] == "base"
    assert tree.loc["erin/acme-instruct-reasoner", "depth"] == 2
    assert tree.loc["hank/reasoner-v2", "depth"] == 3
    assert tree.loc["hank/reasoner-v2", "base_model"] == "erin/acme-instruct-reasoner"
    assert tree.loc["ivy/acme-math-reasoner-merge", "kind"] == "merge"
    assert tree.loc["quant-co/Acme-1B-Instruct-AWQ", "kind"] == "quantized"
    assert set(tree.index[tree["is_base"]]) == {ROOT_ID, "acme-ai/Acme-1B-Instruct"}
    # childrenModelCount says which models are leaves: their children are never listed.
    asked = {r.params("filter")[0].split(":", 2)[2] for r in recorded_hub.requests_to("/api/models")
             if r.params("filter") and not r.params("cursor")}
    leaves = {m for m, info in recorded_models().items() if sum(info["childrenModelCount"].values()) == 0}
    assert asked and not asked & leaves
    assert asked == set(tree.index) - leaves


def test_kinds_and_max_depth_limit_the_walk(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    shallow = list_tree(source, ROOT_ID, kinds=("finetune",), max_depth=1, progress=False)
    assert set(shallow["kind"]) == {"base", "finetune"} and shallow["depth"].max() == 1
    assert len(shallow) == 5
    no_merges = list_tree(source, ROOT_ID, progress=False)
    assert "ivy/acme-math-reasoner-merge" not in set(no_merges["model_id"])
    assert not set(no_merges["kind"]) & {"quantized", "merge"}


def test_listing_survives_429_then_503(recorded_hub, tmp_path):
    """The hub rate-limits, then fails, then answers: the listing still comes back complete."""
    source, _ = make_source(recorded_hub, tmp_path)
    recorded_hub.fail_next("/api/models", [429, 503], retry_after=0, exact=True)
    children = source.children(ROOT_ID, kinds=("finetune",))
    assert len(children) == 4
    first_three = recorded_hub.requests_to("/api/models")[:3]
    assert [r.path for r in first_three] == ["/api/models"] * 3      # two failures, then the answer


def test_model_info_backs_off_exponentially(recorded_hub, tmp_path):
    """model_info has no retries of its own in huggingface_hub: raygems' back-off does them."""
    source, sleeps = make_source(recorded_hub, tmp_path, backoff=0.5)
    recorded_hub.fail_next(f"/api/models/{ROOT_ID}", [429, 503, 502])
    root = source.model(ROOT_ID)
    assert root.model_id == ROOT_ID and root.downloads == 52000 and root.is_base
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(recorded_hub.requests_to(f"/api/models/{ROOT_ID}")) == 4


def test_back_off_gives_up_and_does_not_retry_client_errors(recorded_hub, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    from raygems.errors import UsageError

    source, sleeps = make_source(recorded_hub, tmp_path, retries=2, backoff=1.0)
    recorded_hub.fail_next(f"/api/models/{ROOT_ID}", [503, 503, 503, 503])
    with pytest.raises(HfHubHTTPError) as info:
        source.model(ROOT_ID)
    assert info.value.response.status_code == 503 and sleeps == [1.0, 2.0]
    sleeps.clear()
    with pytest.raises(UsageError, match="nobody/nothing: not found on the hub"):   # one line for the user
        source.model("nobody/nothing")
    assert sleeps == []


def test_retry_after_header_is_honoured(recorded_hub, tmp_path):
    source, sleeps = make_source(recorded_hub, tmp_path, backoff=0.1)
    recorded_hub.fail_next(f"/api/models/{ROOT_ID}", [429], retry_after=7)
    source.model(ROOT_ID)
    assert sleeps == [7.0]


def test_hub_refusing_children_count_falls_back_to_asking_every_node(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    recorded_hub.fail_next("/api/models", [400], exact=True)        # the first listing is refused
    tree = list_tree(source, ROOT_ID, kinds=("finetune",), max_depth=None, progress=False)
    assert "hank/reasoner-v2" in set(tree["model_id"])
    listings = [r for r in recorded_hub.requests_to("/api/models") if r.path == "/api/models"]
    assert "childrenModelCount" in listings[0].params("expand")
    assert len(listings) > 2 and all("childrenModelCount" not in r.params("expand") for r in listings[1:])
    # Without the counts every finetune is asked for its children, leaves included.
    asked = {r.params("filter")[0].split(":", 2)[2] for r in listings[1:] if not r.params("cursor")}
    assert asked == set(tree["model_id"])


def test_model_cards_from_the_hub(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    carol = source.model_card("carol/acme-lora-gsm8k")
    assert carol.base_models == [ROOT_ID] and carol.has_model_index
    assert carol.documentation_for("gsm8k") == "relevant"
    assert carol.documentation_for("mbpp") == "irrelevant"
    missing = source.model_card("hank/reasoner-v2")                 # no README.md in the repo
    assert missing.metadata == {} and not missing.has_eval_results
    bare = source.model_card("frank/acme-instruct-tools")           # README without front matter
    assert bare.metadata == {} and "No front matter" in bare.text


def test_fetch_downloads_the_snapshot_without_ignored_formats(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    record = source.model(ROOT_ID)
    folder = source.fetch(record)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", "config.json", "generation_config.json"]
    assert record.revision in str(folder)                             # the pinned commit's snapshot
    assert json.loads((folder / "config.json").read_text())["model_type"] == "qwen2"


def test_fetch_of_an_adapter(recorded_hub, tmp_path):
    source, _ = make_source(recorded_hub, tmp_path)
    adapter = ModelRecord("carol/acme-lora-gsm8k", kind="adapter", revision="main")
    folder = source.fetch(adapter)
    assert json.loads((folder / "adapter_config.json").read_text())["peft_type"] == "LORA"
