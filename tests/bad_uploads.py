"""Bad uploads written into a copy of the tiny tree: one per kind of metadata that cannot be read, and an adapter
whose base is nowhere. Each must cost its own model only (tests/hub/test_local_tree_bad_uploads.py,
tests/runtime/test_search_bad_uploads.py)."""
from __future__ import annotations

import json
from pathlib import Path

from raygems.hub.sources import LOCAL_HUB_FILE

BASE_ID = "tiny-org/tiny-base"
GHOST_BASE = "ghost-org/tiny-ghost"
GHOST_ADAPTER = "loraworks/tiny-base-lora-quick"

#: model id -> (file that is bad, a fragment of the reason the listing gives). Their metadata cannot be read.
UNREADABLE = {
    "mathwiz/tiny-math-v1": (LOCAL_HUB_FILE, "not valid JSON"),
    "numbersmith/tiny-arith": (LOCAL_HUB_FILE, "downloads 'many' is not a whole number"),
    "quizbowl/tiny-closest": ("README.md", "front matter is not valid YAML"),           # base_model still readable
    "oops/tiny-base-noisy": ("README.md", "front matter is not valid YAML"),            # names no readable parent
    "chatfan/tiny-instruct-chat": ("README.md", "base_model_relation 'bogus' is not one of"),
}


def break_uploads(root: Path) -> None:
    """Spoil the models of UNREADABLE, and make GHOST_ADAPTER's card and adapter_config.json name GHOST_BASE,
    which is not in the tree."""
    (root / "mathwiz/tiny-math-v1" / LOCAL_HUB_FILE).write_text('{"downloads": 3412, "likes": ')
    (root / "numbersmith/tiny-arith" / LOCAL_HUB_FILE).write_text(json.dumps({"downloads": "many", "likes": 2}))
    _edit(root / "quizbowl/tiny-closest/README.md", "tags:\n", "tags: [unclosed\n")
    (root / "oops/tiny-base-noisy/README.md").write_text("---\nbase_model: {id: tiny-org/tiny-base\n---\n# noisy\n")
    _edit(root / "chatfan/tiny-instruct-chat/README.md", "base_model_relation: finetune", "base_model_relation: bogus")
    _edit(root / GHOST_ADAPTER / "README.md", f"base_model: {BASE_ID}\n", f"base_model: {GHOST_BASE}\n")
    config = root / GHOST_ADAPTER / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": GHOST_BASE}))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))
