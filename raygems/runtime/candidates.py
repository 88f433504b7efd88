"""What a search evaluates: its candidates (a tree listed from the hub or a local folder, or a recorded
matrix's models), its query pool, the popular base among them, and what a learned prior keeps.

`raygems.runtime.search` runs a search on them; `raygems.plan` plays the same search through a simulation
(the plan of a search reads its candidates and pool exactly as the search would).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raygems.hub.types import ModelRecord
from raygems.popularity import popular_base
from raygems.runtime.config import SearchConfig

__all__ = ["PriorDecision", "apply_prior", "list_tree_candidates", "load_candidates", "load_search_matrix",
           "matrix_candidates", "popular_base_of", "query_pool"]


def load_candidates(config: SearchConfig) -> tuple[list[ModelRecord], Any]:
    """Candidate models and the query pool."""
    if config.matrix is not None:
        return matrix_candidates(config)
    pool = query_pool(config)   # first: it is checked (code execution) before a hub tree is listed
    return list_tree_candidates(config), pool


def query_pool(config: SearchConfig):
    """The search's query pool: drawn from its tasks (seeded), or a matrix's queries."""
    if config.matrix is not None:
        return matrix_candidates(config)[1]
    from raygems.tasks.pool import build_query_pool

    return build_query_pool(list(config.tasks), per_task=config.per_task, seed=config.pool_seed,
                            data_dir=config.data_dir)


def list_tree_candidates(config: SearchConfig) -> list[ModelRecord]:
    """The models of the search's tree (`config.tree`: a hub id or a local folder holding one tree), at most
    `max_models` of them, the most downloaded first."""
    from raygems.hub.listing import list_tree, tree_records
    from raygems.hub.sources import LocalTreeSource, open_tree_source

    source = open_tree_source(config.tree)
    if isinstance(source, LocalTreeSource):
        roots = source.roots()
        if len(roots) != 1:
            raise ValueError(f"{config.tree} holds {len(roots)} root models ({roots[:5]}); a search needs one tree")
        base_id = roots[0]
    else:
        base_id = config.tree
    tree = list_tree(source, base_id, kinds=config.kinds, max_depth=config.max_depth, progress=config.progress)
    if config.max_models is not None and len(tree) > config.max_models:
        tree = tree.sort_values("downloads", ascending=False, kind="stable").head(config.max_models)
    return tree_records(tree)


@functools.lru_cache(maxsize=2)
def load_search_matrix(path: str, models: str | None):
    """The recorded correctness matrix of a `--matrix` search (the last two kept: a plan of several methods
    reads it once)."""
    from raygems.replay import load_matrix

    return load_matrix(path, models=models)


def matrix_candidates(config: SearchConfig):
    from raygems.tasks.pool import QueryPool

    matrix = load_search_matrix(config.matrix, config.models)
    models = matrix.models
    candidates = []
    for i, model_id in enumerate(matrix.model_ids):
        row = models.iloc[i].to_dict() if models is not None else {}
        candidates.append(ModelRecord(model_id=model_id, kind="finetune",
                                      downloads=int(row.get("downloads", 0) or 0),
                                      is_base=bool(row.get("is_base", False))))
    tasks = matrix.tasks or ("all",) * matrix.num_queries
    frame = pd.DataFrame({
        "query_id": list(matrix.query_ids), "task": list(tasks), "source_id": list(matrix.query_ids),
        "messages": "[]", "reference": "", "max_new_tokens": 1, "stop": "[]", "extra": "{}",
    })
    return candidates, QueryPool(frame, tasks=tuple(dict.fromkeys(tasks)), per_task=None, seed=0)


def popular_base_of(candidates: list[ModelRecord]) -> int:
    """Index of the candidates' popular base (`raygems.popularity.popular_base`)."""
    return popular_base([m.downloads for m in candidates], [m.is_base for m in candidates])


@dataclass
class PriorDecision:
    """What a learned prior did to a search: the candidates kept, the ones pruned before any download,
    the first-round tie-break priority, and starting beliefs for methods that take them."""

    kept: list[ModelRecord]
    pruned: list[str] = field(default_factory=list)
    priority: list[float] | None = None
    method_options: dict[str, Any] = field(default_factory=dict)


def apply_prior(config: SearchConfig, candidates: list[ModelRecord]) -> PriorDecision:
    """Order candidates by a learned prior and prune the bottom share before anything is downloaded."""
    if config.prior is None:
        return PriorDecision(candidates)
    from raygems.bandits import get_method
    from raygems.prior import ModelPrior

    prior = ModelPrior.load(config.prior)
    table = pd.DataFrame([m.to_row() for m in candidates])
    task = config.prior_task or config.tasks[0]
    scores = prior.scores(table, task)
    keep_n = max(2, int(np.ceil(config.prior_keep * len(candidates))))
    order = np.argsort(-scores, kind="stable")
    kept_idx = set(order[:keep_n].tolist()) | {popular_base_of(candidates)}   # the base stays: it is the reference
    kept_idx = sorted(kept_idx)
    decision = PriorDecision(kept=[candidates[i] for i in kept_idx],
                             pruned=[candidates[i].model_id for i in range(len(candidates)) if i not in kept_idx],
                             priority=[float(scores[i]) for i in kept_idx])
    if get_method(config.method).accepts_beliefs:
        kept_table = table.iloc[kept_idx].reset_index(drop=True)
        alpha, beta = prior.beliefs(kept_table, task, strength=float(config.method_options.get("prior_strength", 1.0)))
        decision.method_options = {"prior_alpha": alpha, "prior_beta": beta}
    return decision
