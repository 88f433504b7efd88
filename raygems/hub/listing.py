"""Walk a model tree from its root and write it as a tree table (one `ModelRecord.to_row()` per model).

The walk is breadth first, so every model is recorded at its smallest depth under the first parent that
lists it: a merge of two models in the tree, or a model listed twice, appears once, and a cycle in the
base-model links (possible in hand-written cards) ends the walk instead of looping.

`is_base` marks the models the paper calls the popular base versions: the root itself, and the root
organisation's own instruction-tuned releases of it, i.e. direct finetunes of the root whose repository
belongs to the root's organisation and whose name marks an instruct/chat version
(`OFFICIAL_NAME_PATTERN`: `Qwen/Qwen2.5-3B` -> `Qwen/Qwen2.5-3B-Instruct`, `google/gemma-2-2b` ->
`google/gemma-2-2b-it`). Everything else, including that organisation's other finetunes (coder, math
versions), is `is_base=False`.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import fields, replace
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from raygems.hub.sources import RELATIONS, TreeSource, _check_kinds
from raygems.hub.types import DEFAULT_KINDS, ModelRecord

#: Names of official instruction-tuned releases (matched on the part after the organisation).
OFFICIAL_NAME_PATTERN = r"(?i)(?:^|[-_.])(?:instruct|chat|it)(?:$|[-_.])"

#: Columns of a tree table, in ModelRecord order.
TREE_COLUMNS = tuple(f.name for f in fields(ModelRecord) if f.name != "extra")


def is_official_release(record: ModelRecord, root_id: str, pattern: str = OFFICIAL_NAME_PATTERN) -> bool:
    """The rule of the module docstring, for one record."""
    if record.model_id == root_id:
        return True
    if record.kind != "finetune" or record.base_model != root_id or "/" not in root_id or "/" not in record.model_id:
        return False
    org, name = record.model_id.split("/", 1)
    return org == root_id.split("/", 1)[0] and re.search(pattern, name) is not None


def _may_have_children(record: ModelRecord, kinds: Sequence[str]) -> bool:
    """False only when the source said how many children the record has and none is of `kinds`."""
    count = record.extra.get("children_count")
    if count is None:
        return True
    if isinstance(count, dict):
        return any(int(count.get(k) or 0) > 0 for k in kinds)
    return int(count) > 0


def list_tree(source: TreeSource, base_id: str, kinds: Sequence[str] = DEFAULT_KINDS,
              max_depth: int | None = None, progress: bool = True,
              official_pattern: str = OFFICIAL_NAME_PATTERN) -> pd.DataFrame:
    """The tree under `base_id`: the root (depth 0) and its descendants of `kinds`, down to `max_depth`.

    `max_depth=None` walks the whole tree; `max_depth=1` lists direct children only. Rows are ordered by depth,
    then model id.
    """
    kinds = _check_kinds(kinds)
    if not kinds:
        raise ValueError("kinds is empty: choose some of " + ", ".join(RELATIONS))
    if max_depth is not None and max_depth < 0:
        raise ValueError(f"max_depth must be >= 0 or None, got {max_depth}")

    root = replace(source.model(base_id), kind="base", base_model=None, depth=0, is_base=True)
    records: dict[str, ModelRecord] = {root.model_id: root}
    queue: deque[ModelRecord] = deque([root])
    with tqdm(desc=f"tree of {base_id}", unit="node", disable=not progress) as bar:
        while queue:
            node = queue.popleft()
            bar.update(1)
            if (max_depth is not None and node.depth >= max_depth) or not _may_have_children(node, kinds):
                continue
            for child in source.children(node.model_id, kinds):
                if child.model_id in records:        # second parent, duplicate listing or cycle
                    continue
                child = replace(child, base_model=node.model_id, depth=node.depth + 1)
                child = replace(child, is_base=is_official_release(child, root.model_id, official_pattern))
                records[child.model_id] = child
                queue.append(child)
            bar.set_postfix(models=len(records), queued=len(queue))
    # one order whatever the source lists first (the hub lists by relation, a folder by name): a search's arms,
    # and so its choices, do not depend on where the tree was listed from
    return tree_frame(sorted(records.values(), key=lambda r: (r.depth, r.model_id)))


def tree_frame(records) -> pd.DataFrame:
    """A tree table from ModelRecords, with stable dtypes (parquet round-trips it unchanged)."""
    frame = pd.DataFrame([r.to_row() for r in records], columns=list(TREE_COLUMNS))
    for column in ("downloads", "likes", "depth"):
        frame[column] = frame[column].astype("int64")
    frame["is_base"] = frame["is_base"].astype(bool)
    return frame


def save_tree(tree: pd.DataFrame, path: str | Path) -> Path:
    """Write a tree table as parquet (creating the parent folder; atomically: a crash leaves the old file or the
    new one, never a torn one)."""
    from raygems.files import write_parquet

    missing = [c for c in TREE_COLUMNS if c not in tree.columns]
    if missing:
        raise ValueError(f"tree table lacks columns {missing}")
    return write_parquet(Path(path), tree)


def read_tree(path: str | Path) -> pd.DataFrame:
    """Read a tree table written by `save_tree` (or any parquet with ModelRecord columns)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tree table {str(path)!r} does not exist")
    tree = pd.read_parquet(path)
    for required in ("model_id", "downloads"):
        if required not in tree.columns:
            raise ValueError(f"{path}: not a tree table (no {required!r} column)")
    return tree


def tree_records(tree: pd.DataFrame) -> list[ModelRecord]:
    """The ModelRecords of a tree table (extra columns go to `record.extra`)."""
    return [ModelRecord.from_row(row) for row in tree.to_dict(orient="records")]
