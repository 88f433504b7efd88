"""Population families: model trees to replay search methods on, each modelling one real property.

| family | generator | what it models |
|---|---|---|
| `calibrated` | `generate_calibrated(tree)` | the paper's summary statistics per tree: K (Table 3), the best, mean and popular-base accuracy and the base's rank (Table 2's Best Available, Random Selection and Best Base rows), a skewed distribution (App. F: most models more than 10 points below the best, a few broken near chance). Nothing else: the top band above the base is evenly spaced and every model answers independently given its accuracy. |
| `dense-band` | `generate_dense_band(tree)` | the same statistics, plus what real repositories show at the top: a dense band of near-best models and a cluster just below the popular base, built from re-uploads (exact copies), merges and near-duplicates of each other. The band's shape is fitted so that Uniform and Sequential Halving reproduce the paper's ranks at N = 10..200 (`DENSE_BAND_FITS`, fitted by `experiments/statistics/calibrate_dense_band.py`). |
| `leaderboard` | `raygems.populations.leaderboard.generate_leaderboard_tree` | semi-real: per-model, per-task accuracies of real Open LLM Leaderboard rows (one architecture and size), answers drawn consistently with them. |
| `routerbench` | `load_routerbench()` | the real RouterBench zero-shot 0/1 matrix (11 models x 3,150 queries). |

Every generator is deterministic for a seed and returns a `FamilyTree` whose `.matrix` is a
`CorrectnessMatrix` with a models table (`model_id, kind, downloads, is_base, ...`), so `best-base` works
(RouterBench has no models table: best-base is left out there).

Item-level answers come from `raygems.populations.irt`: a three-parameter item-response model per task,
abilities solved so that each model's answers have exactly its target accuracy.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.populations import irt
from raygems.populations.leaderboard import generate_leaderboard_tree
from raygems.populations.population import FamilyTree, default_shared_dir
from raygems.replay.matrix import CorrectnessMatrix, load_matrix
from raygems.tasks.routerbench import ROUTERBENCH_TASKS   # the paper's RouterBench_s pool: 500 queries of each


@dataclass(frozen=True)
class PaperTreeStats:
    """What the paper reports about one tree (Tables 2, 3, 7)."""

    name: str
    finetunes: int                   # Table 3
    adapters: int                    # Table 3
    mean_accuracy: float             # Random Selection's accuracy (Table 2): the tree's mean
    best_accuracy: float             # Best Available (Table 2)
    base_accuracy: float             # Best Base (Table 2): the most popular official checkpoint
    base_rank: float                 # Best Base's rank (Table 2)
    uniform_rank: dict[int, float]   # Uniform's mean rank per N (Table 7)
    sh_rank: dict[int, float]        # Sequential Halving's mean rank per N (Table 7)
    ours_rank: dict[int, float]      # the paper's method (Table 7), for comparison only

    @property
    def num_models(self) -> int:
        return self.finetunes + self.adapters


PAPER_TREE_STATS: dict[str, PaperTreeStats] = {
    "qwen-3b": PaperTreeStats("qwen-3b", 331, 148, 0.588, 0.732, 0.716, 56.5,
                              {10: 166.3, 25: 115.6, 50: 91.2, 100: 63.2, 200: 30.5},
                              {10: 69.3, 25: 52.4, 50: 41.0, 100: 17.9, 200: 6.2},
                              {10: 11.3, 25: 5.3, 50: 3.5, 100: 2.1, 200: 1.4}),
    "qwen-7b": PaperTreeStats("qwen-7b", 317, 333, 0.599, 0.791, 0.783, 30.0,
                              {10: 173.8, 25: 126.4, 50: 81.9, 100: 60.7, 200: 45.0},
                              {10: 62.9, 25: 35.7, 50: 29.6, 100: 16.1, 200: 7.3},
                              {10: 15.8, 25: 12.3, 50: 3.6, 100: 2.0, 200: 1.7}),
    "mistral-7b": PaperTreeStats("mistral-7b", 240, 40, 0.431, 0.696, 0.556, 62.0,
                                 {10: 29.5, 25: 19.4, 50: 17.4, 100: 14.5, 200: 10.6},
                                 {10: 15.2, 25: 11.6, 50: 7.7, 100: 3.9, 200: 2.3},
                                 {10: 2.6, 25: 1.9, 50: 1.6, 100: 1.4, 200: 1.1}),
    "llama-8b": PaperTreeStats("llama-8b", 320, 297, 0.601, 0.747, 0.713, 41.0,
                               {10: 222.0, 25: 167.9, 50: 114.9, 100: 86.2, 200: 54.8},
                               {10: 75.2, 25: 50.9, 50: 29.9, 100: 14.8, 200: 4.3},
                               {10: 15.4, 25: 8.0, 50: 3.0, 100: 1.9, 200: 1.3}),
}
TREE_SEEDS = {"qwen-3b": 3, "qwen-7b": 7, "mistral-7b": 70, "llama-8b": 8}


# --------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class CalibratedConfig:
    """Family (a): a tree matching the paper's summary statistics, and nothing more.

    Accuracies, best first: the best model; `base_rank - 2` models evenly spaced (`band_shape` = 1) between
    the best and the popular base; the popular base; below it, `broken_share` of the tree near chance and the
    rest at `base - gap` with gamma-distributed gaps (shape `gap_shape`) whose scale is solved so the tree's
    mean accuracy is `mean_accuracy`. Targets are realised exactly (to 1/Q) by `irt.answers_with_counts`.
    """

    tree: str = "qwen-3b"
    num_models: int | None = None          # None: the paper's (Table 3)
    mean_accuracy: float | None = None     # None: the paper's; likewise the next three
    best_accuracy: float | None = None
    base_accuracy: float | None = None
    base_rank: int | None = None
    band_shape: float = 1.0                # > 1 packs the models above the base towards the best
    near_base_share: float = 0.0           # share of below-base models in a cluster just below the base
    near_base_spread: float = 0.02         # half-normal spread of that cluster (accuracy points / 100)
    broken_share: float = 0.05
    broken_accuracy: tuple[float, float] = (0.0, 0.25)
    gap_shape: float = 1.5
    tasks: tuple[str, ...] = ROUTERBENCH_TASKS
    queries_per_task: int = 500
    task_spread: float = 0.35              # per-task ability offsets N(0, spread^2): models differ in profile
    specialist_share: float = 0.12         # models much better at one task than the others
    seed: int = 0

    def stats(self) -> PaperTreeStats:
        if self.tree not in PAPER_TREE_STATS:
            raise ValueError(f"unknown paper tree {self.tree!r}; trees: {sorted(PAPER_TREE_STATS)}")
        return PAPER_TREE_STATS[self.tree]

    def resolved(self) -> dict[str, Any]:
        """The five calibration targets, the paper's unless overridden."""
        s = self.stats()
        return {
            "num_models": self.num_models or s.num_models,
            "mean_accuracy": self.mean_accuracy if self.mean_accuracy is not None else s.mean_accuracy,
            "best_accuracy": self.best_accuracy if self.best_accuracy is not None else s.best_accuracy,
            "base_accuracy": self.base_accuracy if self.base_accuracy is not None else s.base_accuracy,
            "base_rank": self.base_rank or int(math.floor(s.base_rank + 0.5)),
        }

    @property
    def num_queries(self) -> int:
        return self.queries_per_task * len(self.tasks)


@dataclass(frozen=True)
class DenseBandConfig(CalibratedConfig):
    """Family (b): the calibrated statistics plus a dense near-best band built from lineages.

    Models above the base and in the near-base cluster (the "dense" part, best first) are founders
    (independent answers) or derived from a model of similar accuracy generated before them:
    `reupload_share` exact copies (same answers, same accuracy: an exact tie), `merge_share` merges
    (each answer from one of two parents, then adjusted to the child's accuracy) and
    `near_duplicate_share` near-duplicates (the parent's answers with `redraw_share` of items redrawn).
    The shape parameters (`band_shape`, `near_base_share`, `near_base_spread`) come from `DENSE_BAND_FITS`.
    """

    reupload_share: float = 0.08
    merge_share: float = 0.30
    near_duplicate_share: float = 0.25
    redraw_share: float = 0.15
    founders: int = 3                      # the best few are always independent
    parent_window: int = 8                 # a derived model's parents are among the 8 nearest better models


#: Band shapes fitted per tree so Uniform and SH reproduce the paper's ranks at N = 10, 25, 50, 100, 200
#: (experiments/statistics/calibrate_dense_band.py; fit quality in docs/statistics.md).
DENSE_BAND_FITS: dict[str, dict[str, float]] = {
    "qwen-3b": {"band_shape": 0.3, "near_base_share": 0.2, "near_base_spread": 0.0025},
    "qwen-7b": {"band_shape": 0.2, "near_base_share": 0.2, "near_base_spread": 0.005},
    "mistral-7b": {"band_shape": 2.0, "near_base_share": 0.0, "near_base_spread": 0.005},
    "llama-8b": {"band_shape": 0.2, "near_base_share": 0.3, "near_base_spread": 0.0025},
}


# ------------------------------------------------------------------------------------------ generators
def generate_calibrated(tree: str | CalibratedConfig = "qwen-3b", seed: int | None = None,
                        **overrides) -> FamilyTree:
    """Family (a): a tree calibrated to the paper's summary statistics of `tree` (see `CalibratedConfig`)."""
    config = _config(CalibratedConfig, tree, seed, overrides)
    return _generate(config, "calibrated")


def generate_dense_band(tree: str | DenseBandConfig = "qwen-3b", seed: int | None = None,
                        **overrides) -> FamilyTree:
    """Family (b): the calibrated statistics plus a dense near-best band of re-uploads, merges and
    near-duplicates, shaped (`DENSE_BAND_FITS`) to reproduce the paper's Uniform and SH ranks."""
    if isinstance(tree, str):
        fitted = {k: v for k, v in DENSE_BAND_FITS.get(tree, {}).items() if k not in overrides}
        overrides = {**fitted, **overrides}
    config = _config(DenseBandConfig, tree, seed, overrides)
    return _generate(config, "dense-band")


def _config(cls, tree, seed, overrides):
    if isinstance(tree, CalibratedConfig):
        if type(tree) is not cls:
            raise ValueError(f"this generator takes a {cls.__name__}, got a {type(tree).__name__}")
        config = replace(tree, **overrides) if overrides else tree
    else:
        if tree not in PAPER_TREE_STATS:
            raise ValueError(f"unknown paper tree {tree!r}; trees: {sorted(PAPER_TREE_STATS)}")
        known = {f for f in cls.__dataclass_fields__}
        bad = [k for k in overrides if k not in known]
        if bad:
            raise ValueError(f"unknown setting {bad[0]!r} for {cls.__name__}; settings: {sorted(known)}")
        config = cls(tree=tree, seed=TREE_SEEDS[tree], **overrides)
    if seed is not None:
        config = replace(config, seed=int(seed))
    _validate(config)
    return config


def _validate(config: CalibratedConfig) -> None:
    t = config.resolved()
    if not 0 < t["base_accuracy"] < t["best_accuracy"] <= 1:
        raise ValueError(f"need 0 < base_accuracy < best_accuracy <= 1, got {t['base_accuracy']}, "
                         f"{t['best_accuracy']}")
    if not 0 < t["mean_accuracy"] < t["base_accuracy"]:
        raise ValueError(f"mean_accuracy must lie between 0 and the base's accuracy, got {t['mean_accuracy']}")
    if not 2 <= t["base_rank"] < t["num_models"] - 1:
        raise ValueError(f"base_rank must lie in [2, K-1), got {t['base_rank']} with K={t['num_models']}")
    if not 0 <= config.broken_share < 1 or not 0 <= config.near_base_share < 1:
        raise ValueError("broken_share and near_base_share must lie in [0, 1)")
    if config.broken_share + config.near_base_share >= 1:
        raise ValueError("broken_share + near_base_share must be below 1")
    if config.queries_per_task < 1:
        raise ValueError(f"queries_per_task must be at least 1, got {config.queries_per_task}")
    if isinstance(config, DenseBandConfig):
        shares = config.reupload_share + config.merge_share + config.near_duplicate_share
        if not 0 <= shares <= 1:
            raise ValueError(f"reupload_share + merge_share + near_duplicate_share must lie in [0, 1], got {shares}")


def target_accuracies(config: CalibratedConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Target accuracies, best first, and each model's role: 'band' (above the base), 'base' (the popular
    base), 'near_base', 'degraded' or 'broken'."""
    t = config.resolved()
    k, best, base, rank = t["num_models"], t["best_accuracy"], t["base_accuracy"], t["base_rank"]
    q = config.num_queries
    above = rank - 1
    u = np.arange(above) / above                       # 0 (the best) .. < 1
    band = best - (best - base) * u ** config.band_shape
    below = k - rank
    n_broken = int(round(config.broken_share * k))
    n_near = int(round(config.near_base_share * below))
    n_degraded = below - n_broken - n_near
    if n_degraded < 1:
        raise ValueError("no models left for the degraded group: lower broken_share or near_base_share")
    broken = np.sort(rng.uniform(*config.broken_accuracy, n_broken))[::-1]
    near = base - 1.0 / q - np.abs(rng.normal(0.0, config.near_base_spread, n_near))
    gaps = rng.gamma(config.gap_shape, 1.0, n_degraded)
    floor = config.broken_accuracy[1]
    fixed = band.sum() + base + broken.sum() + near.sum()
    needed = t["mean_accuracy"] * k - fixed

    def degraded(scale: float) -> np.ndarray:
        return np.clip(base - 1.0 / q - scale * gaps, floor, base - 1.0 / q)

    lo, hi = 0.0, 10.0
    if degraded(lo).sum() < needed or degraded(hi).sum() > needed:
        raise ValueError(f"cannot reach mean accuracy {t['mean_accuracy']} with these shares and gaps")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if degraded(mid).sum() > needed else (lo, mid)
    rest = degraded(0.5 * (lo + hi))
    targets = np.concatenate([band, [base], near, rest, broken])
    roles = np.array(["band"] * above + ["base"] + ["near_base"] * n_near + ["degraded"] * n_degraded
                     + ["broken"] * n_broken)
    return targets, roles


def planned_counts(config: CalibratedConfig, family: str):
    """The first, cheap half of a generation: items, target accuracies, roles and correct counts per model
    (best first), with the random stream positioned for the answers. Independent-sampling methods (Uniform,
    SH, ...) depend on the counts only, which is what the dense band's fit uses."""
    # The key uses len(family), and "calibrated" and "dense-band" have the same length: the two families share a
    # stream, so a dense-band tree draws the same items as the calibrated tree of its seed. Kept as it is:
    # changing the key would change every generated tree and the evidence computed on them.
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0xFA, len(family))))
    items = irt.draw_items(config.tasks, config.queries_per_task, rng)
    targets, roles = target_accuracies(config, rng)
    order = np.argsort(-targets, kind="stable")         # best first (the band is already)
    targets, roles = targets[order], roles[order]
    counts = np.rint(targets * config.num_queries).astype(np.int64)
    base_index = int(np.flatnonzero(roles == "base")[0])
    # strictly above / below the base where the role says so (rounding must not create ties with it)
    counts[roles == "band"] = np.maximum(counts[roles == "band"], counts[base_index] + 1)
    below = (roles != "band") & (roles != "base")
    counts[below] = np.minimum(counts[below], counts[base_index] - 1)
    return rng, items, roles, counts, base_index


def _generate(config: CalibratedConfig, family: str) -> FamilyTree:
    rng, items, roles, counts, base_index = planned_counts(config, family)
    k, q = counts.size, config.num_queries
    offsets, specialist = _task_offsets(config, k, items, rng)
    theta = irt.solve_abilities(counts / q, items, offsets)
    p = irt.correct_probability(theta[:, None] + offsets, items)
    values, z = irt.answers_with_counts(p, counts, rng)

    lineage = np.array(["independent"] * k, dtype=object)
    parents = np.full((k, 2), -1)
    if isinstance(config, DenseBandConfig):
        values, counts, lineage, parents = _lineages(config, values, z, counts, roles, rng)

    models = _models_table(config, family, roles, lineage, parents, counts / q, specialist, base_index, rng)
    perm = _row_order(k, base_index, models, rng)
    models = models.iloc[perm].reset_index(drop=True)
    matrix = CorrectnessMatrix(values[perm], tuple(models["model_id"]), tuple(items["query_id"]),
                               tuple(items["task"]), models)
    name = f"{family}-{config.tree}"
    return FamilyTree(family, name, config, matrix, items, notes={"targets": config.resolved()})


def _task_offsets(config: CalibratedConfig, k: int, items: pd.DataFrame, rng: np.random.Generator):
    """Per-model, per-item ability offsets: a profile over tasks (N(0, task_spread)), and specialists with
    one strong task (+0.7) and the rest weaker (-0.35); centred so they shift the profile, not the level."""
    tasks = list(config.tasks)
    task_of = items["task"].map({t: i for i, t in enumerate(tasks)}).to_numpy()
    per_task = rng.normal(0.0, config.task_spread, (k, len(tasks)))
    specialist = rng.random(k) < config.specialist_share
    strong = rng.integers(len(tasks), size=k)
    per_task[specialist] -= 0.35
    per_task[specialist, strong[specialist]] += rng.normal(1.05, 0.3, int(specialist.sum()))
    per_task -= per_task.mean(axis=1, keepdims=True)
    return per_task[:, task_of], np.where(specialist, np.asarray(tasks, dtype=object)[strong], None)


def _lineages(config: DenseBandConfig, values, z, counts, roles, rng):
    """Rebuild the dense part's answers as lineages (rows are best first)."""
    k = values.shape[0]
    lineage = np.array(["independent"] * k, dtype=object)
    parents = np.full((k, 2), -1)
    dense = np.flatnonzero(np.isin(roles, ["band", "near_base"]))
    shares = np.array([config.reupload_share, config.merge_share, config.near_duplicate_share])
    for rank_position, i in enumerate(dense):
        if rank_position < config.founders:
            continue
        earlier = dense[max(0, rank_position - config.parent_window):rank_position]
        u = rng.random()
        if u < shares[0]:
            p = int(rng.choice(earlier))
            values[i], counts[i] = values[p], counts[p]
            lineage[i], parents[i, 0] = "reupload", p
        elif u < shares[:2].sum() and earlier.size >= 2:
            a, b = (int(x) for x in rng.choice(earlier, size=2, replace=False))
            start = irt.merge_rows(values[a], values[b], rng)
            values[i] = irt.derive_answers(start, z[i], int(counts[i]), 0.05, rng)
            lineage[i], parents[i] = "merge", (a, b)
        elif u < shares.sum():
            p = int(rng.choice(earlier))
            values[i] = irt.derive_answers(values[p], z[i], int(counts[i]), config.redraw_share, rng)
            lineage[i], parents[i, 0] = "near_duplicate", p
    return values, counts, lineage, parents


def _models_table(config, family, roles, lineage, parents, accuracy, specialist, base_index, rng):
    stats = config.stats()
    k = roles.size
    tree = config.tree
    adapter_share = stats.adapters / stats.num_models
    kind = np.where(rng.random(k) < adapter_share, "adapter", "finetune").astype(object)
    # the root base: a decent but weaker official checkpoint (a quarter of the way down the below-base group)
    below = np.flatnonzero(np.isin(roles, ["near_base", "degraded"]))
    root = int(below[len(below) // 4])
    kind[base_index], kind[root] = "finetune", "base"
    names = np.array([f"user{rng.integers(1, 10 ** 5):05d}/{tree}-{kind[i]}-{i:04d}" for i in range(k)],
                     dtype=object)
    names[root], names[base_index] = f"{tree}/base", f"{tree}/instruct"
    downloads = np.floor(np.exp(rng.normal(1.2, 1.6, k))).astype(np.int64)
    popular = rng.random(k) < 0.03
    downloads[popular] = np.floor(np.exp(rng.normal(8.0, 1.5, int(popular.sum())))).astype(np.int64)
    downloads[root] = int(np.exp(rng.normal(12.5, 0.3)))
    downloads[base_index] = int(np.exp(rng.normal(14.0, 0.3)))
    is_base = np.zeros(k, dtype=bool)
    is_base[[root, base_index]] = True
    parent_name = [names[p] if p >= 0 else (None if i == root else names[root] if i == base_index else
                                            names[base_index]) for i, p in enumerate(parents[:, 0])]
    return pd.DataFrame({
        "model_id": names,
        "kind": kind,
        "base_model": parent_name,
        "downloads": downloads,
        "is_base": is_base,
        "role": roles,
        "lineage": lineage,
        "reupload_of": [names[p] if lin == "reupload" else None for p, lin in zip(parents[:, 0], lineage)],
        "merge_of": [f"{names[a]}+{names[b]}" if lin == "merge" else None
                     for (a, b), lin in zip(parents, lineage)],
        "specialist_task": specialist,
        "target_accuracy": accuracy,
    })


def _row_order(k, base_index, models, rng):
    """Official checkpoints first (root, instruct), the rest shuffled: row order says nothing about quality."""
    root = int(np.flatnonzero((models["kind"] == "base").to_numpy())[0])
    rest = np.setdiff1d(np.arange(k), [root, base_index])
    return np.concatenate([[root, base_index], rng.permutation(rest)])


# ----------------------------------------------------------------------------------------- RouterBench
ROUTERBENCH_FOLDER = "data/matrices/routerbench-0shot-11x3150"


def load_routerbench(shared_dir: str | Path | None = None) -> FamilyTree:
    """Family (d): the real RouterBench zero-shot matrix (11 models x 3,150 queries; no models table)."""
    folder = Path(shared_dir or default_shared_dir()) / ROUTERBENCH_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(f"no RouterBench matrix at {folder} (set RAYGEMS_SHARED_DIR)")
    return FamilyTree("routerbench", "routerbench", {"path": str(folder)}, load_matrix(folder))


# ------------------------------------------------------------------------------------------- dispatch
FAMILIES = ("calibrated", "dense-band", "leaderboard", "routerbench")


def generate_family(family: str, tree: str | None = None, seed: int | None = None, **options) -> FamilyTree:
    """One entry point for every family: `generate_family("dense-band", "qwen-7b", seed=1)`,
    `generate_family("leaderboard", sample="paper")`, `generate_family("routerbench")`."""
    if family == "calibrated":
        return generate_calibrated(tree or "qwen-3b", seed, **options)
    if family == "dense-band":
        return generate_dense_band(tree or "qwen-3b", seed, **options)
    if family == "leaderboard":
        return generate_leaderboard_tree(seed=0 if seed is None else seed, **options)
    if family == "routerbench":
        return load_routerbench(**options)
    raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")


def write_family(tree: FamilyTree, folder: str | Path) -> Path:
    """Write a population where `raygems sweep` (and `raygems replay`) can read it:
    FOLDER/matrix_models_x_items.npy + index.json (the RouterBench layout), models.parquet, family.json."""
    folder = Path(folder)
    tree.matrix.to_npy(folder / "matrix_models_x_items.npy")
    if tree.models is not None:
        tree.models.to_parquet(folder / "models.parquet", index=False)
    config = asdict(tree.config) if hasattr(tree.config, "__dataclass_fields__") else dict(tree.config)
    info = {"family": tree.family, "name": tree.name, "config": config, "summary": tree.summary()}
    (folder / "family.json").write_text(json.dumps(info, indent=1, default=str))
    return folder
