"""The paper's model selection (its appendix C): per kind, the most popular models plus a random sample.

"We select the 300 most popular models of the tree first and then an additional 100 random ones for both
the fine-tunings and adapters." Popularity is downloads (ties: likes, then model id, so the order is
total). The random draw is over the remaining models sorted by id, with a generator seeded by
`(seed, kind)`: the same seed gives the same selection whatever order the table came in. The root is
always kept, outside the per-kind quotas.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from raygems.hub.types import MODEL_KINDS, PAPER_RANDOM_MODELS, PAPER_TOP_MODELS


def paper_selection(tree: pd.DataFrame, top: int = PAPER_TOP_MODELS, random: int = PAPER_RANDOM_MODELS,
                    seed: int = 0) -> pd.DataFrame:
    """Rows of `tree` chosen as the paper chooses, in the table's order, with a `selection` column
    ('root', 'top' or 'random')."""
    if top < 0 or random < 0:
        raise ValueError(f"top and random must be >= 0, got top={top}, random={random}")
    for column in ("model_id", "kind", "downloads", "depth"):
        if column not in tree.columns:
            raise ValueError(f"tree table lacks column {column!r}")
    if tree["model_id"].duplicated().any():
        dupes = tree.loc[tree["model_id"].duplicated(), "model_id"].tolist()[:5]
        raise ValueError(f"tree table lists models more than once: {dupes}")

    selection = pd.Series(pd.NA, index=tree.index, dtype="object")
    is_root = tree["depth"] == 0
    selection[is_root] = "root"
    likes = tree["likes"] if "likes" in tree.columns else pd.Series(0, index=tree.index)
    for kind in sorted(set(tree.loc[~is_root, "kind"]), key=_kind_order):
        members = tree[(tree["kind"] == kind) & ~is_root]
        ranked = members.assign(_likes=likes[members.index]).sort_values(
            ["downloads", "_likes", "model_id"], ascending=[False, False, True], kind="mergesort")
        selection[ranked.index[:top]] = "top"
        rest = ranked.iloc[top:].sort_values("model_id", kind="mergesort")
        if len(rest) and random:
            rng = np.random.default_rng([seed, _kind_order(kind)])
            picked = rng.choice(len(rest), size=min(random, len(rest)), replace=False)
            selection[rest.index[np.sort(picked)]] = "random"
    chosen = selection.notna()
    return tree[chosen].assign(selection=selection[chosen].astype(str)).reset_index(drop=True)


def _kind_order(kind: str) -> int:
    return MODEL_KINDS.index(kind) if kind in MODEL_KINDS else len(MODEL_KINDS) + sum(map(ord, kind))
