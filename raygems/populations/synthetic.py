"""Synthetic model trees: a base model, its fine-tunes and adapters, and their answers to a query pool.

What makes them realistic (each a property the paper or the leaderboards show):
* **Queries** follow a 3-parameter item-response model per task: a difficulty, a discrimination (some items
  barely separate models) and a guessing floor (1/4 for 4-option tasks, 1/2 for Winogrande, 0 for
  generated answers); a few items are unsolvable (wrong gold labels) and a few trivial.
* **Models** inherit their parent's abilities plus a fine-tuning effect: most fine-tunes lose general ability
  (narrow data, bad hyper-parameters), few gain; adapters move less than full fine-tunes; some specialise
  (a math fine-tune gains on GSM8K and loses elsewhere). Abilities are per task and correlated through a
  shared general factor, so a model good at one task tends to be good at others.
* **Broken uploads** (missing tensors, wrong chat template, collapsed training) answer at or below chance.
* **Re-uploads** copy their parent exactly (same weights, same greedy answers).
* **Downloads** are heavy-tailed and nearly blind to quality: the official base and instruct releases take
  most of them; the vast majority of fine-tunes get a handful.
The result is an accuracy distribution shaped like the paper's Figure 4: most models more than 10 points
below the best, a thin top tail, and a popular base that is good but not the best.

Nothing here is fitted to the paper's tables (issue #2: "do not tune the generator to reproduce the
paper's numbers"); presets only set tree sizes (Table 3) and how strong the official release is.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from raygems.populations.irt import GUESS_FLOOR, TASK_DIFFICULTY
from raygems.replay.matrix import CorrectnessMatrix
from raygems.tasks.routerbench import ROUTERBENCH_TASKS


@dataclass(frozen=True)
class TreeConfig:
    """Knobs of a synthetic tree. Defaults give a mid-sized tree with a strong official instruct model."""

    name: str = "synthetic"
    num_finetunes: int = 330          # full fine-tunes, including the root and the official instruct model
    num_adapters: int = 150           # LoRA adapters
    queries_per_task: int = 500
    tasks: tuple[str, ...] = ROUTERBENCH_TASKS
    base_ability: float = 0.6         # the root's general ability (logit scale, vs item difficulty ~ 0)
    instruct_gain: float = 0.5        # the official instruct release over the root
    task_spread: float = 0.35         # spread of task-specific abilities around the general one
    degrade_share: float = 0.65       # fine-tunes that lose ability ...
    degrade_mean: float = -0.9        # ... by about this much
    neutral_share: float = 0.30       # fine-tunes close to their parent
    headroom: float = 0.3             # how far (ability units) above the official instruct model the
                                      # architecture can be pushed: improvements shrink as they approach it
    adapter_scale: float = 0.5        # adapters move this fraction of a full fine-tune
    specialist_share: float = 0.12    # models that specialise on one task
    broken_share: float = 0.05
    reupload_share: float = 0.03
    deep_share: float = 0.25          # share of models whose parent is itself a fine-tune (depth >= 2)
    seed: int = 0

    @property
    def num_models(self) -> int:
        return self.num_finetunes + self.num_adapters

    @property
    def num_queries(self) -> int:
        return self.queries_per_task * len(self.tasks)


#: Tree sizes of the paper's Table 3 (fine-tunes + adapters) and a plausible strength of the official release.
PAPER_TREES: dict[str, TreeConfig] = {
    "qwen-3b": TreeConfig(name="qwen-3b", num_finetunes=331, num_adapters=148, base_ability=0.6, headroom=0.25,
                          seed=3),
    "qwen-7b": TreeConfig(name="qwen-7b", num_finetunes=317, num_adapters=333, base_ability=1.1, headroom=0.15,
                          seed=7),
    "mistral-7b": TreeConfig(name="mistral-7b", num_finetunes=240, num_adapters=40, base_ability=-0.2,
                             instruct_gain=0.1, headroom=1.0, seed=70),
    "llama-8b": TreeConfig(name="llama-8b", num_finetunes=320, num_adapters=297, base_ability=0.7, headroom=0.35,
                           seed=8),
}


@dataclass
class SyntheticTree:
    """A generated tree: its correctness matrix (with models table), abilities and query parameters."""

    config: TreeConfig
    matrix: CorrectnessMatrix
    abilities: np.ndarray      # (K, T) per-task ability
    queries: pd.DataFrame      # query_id, task, difficulty, discrimination, guess

    @property
    def models(self) -> pd.DataFrame:
        return self.matrix.models

    def summary(self) -> dict[str, float]:
        acc = self.matrix.accuracies
        popular = self.matrix.popular_base()
        ranks = self.matrix.ranks()
        return {
            "K": self.matrix.num_models, "Q": self.matrix.num_queries,
            "best": float(acc.max()), "mean": float(acc.mean()),
            "popular_base_accuracy": float(acc[popular]), "popular_base_rank": int(ranks[popular]),
            "share_10_points_below_best": float(np.mean(acc < acc.max() - 0.10)),
            "share_within_2_points": float(np.mean(acc >= acc.max() - 0.02)),
        }


def generate_tree(config: TreeConfig | str = "qwen-3b", **overrides) -> SyntheticTree:
    """Generate a tree from a config or a preset name (see PAPER_TREES). Deterministic for a seed."""
    if isinstance(config, str):
        if config not in PAPER_TREES:
            raise ValueError(f"unknown tree preset {config!r}; presets: {sorted(PAPER_TREES)}")
        config = PAPER_TREES[config]
    config = replace(config, **overrides) if overrides else config
    _validate(config)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0x7EE,)))
    queries = _make_queries(config, rng)
    models, abilities, copies_of = _make_models(config, rng)
    values = _answer(config, queries, abilities, copies_of, rng)
    query_ids = tuple(queries["query_id"])
    matrix = CorrectnessMatrix(values, tuple(models["model_id"]), query_ids, tuple(queries["task"]), models)
    return SyntheticTree(config, matrix, abilities, queries)


#: Peak bytes per (model, query) pair while a tree is generated (float64 abilities x items and the 0/1 matrix;
#: tracemalloc measured 25-29).
GENERATION_BYTES_PER_PAIR = 32


def _validate(config: TreeConfig) -> None:
    from raygems.errors import UsageError
    from raygems.replay.engine import available_memory_bytes

    if config.num_finetunes < 2:
        raise ValueError(f"num_finetunes must be at least 2 (root and instruct), got {config.num_finetunes}")
    if config.num_adapters < 0 or config.queries_per_task < 1:
        raise ValueError("num_adapters must be >= 0 and queries_per_task >= 1")
    unknown = [t for t in config.tasks if t not in GUESS_FLOOR]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {sorted(GUESS_FLOOR)}")
    shares = config.degrade_share + config.neutral_share
    if not 0 <= shares <= 1:
        raise ValueError(f"degrade_share + neutral_share must lie in [0, 1], got {shares}")
    need, available = GENERATION_BYTES_PER_PAIR * config.num_models * config.num_queries, available_memory_bytes()
    if need > available:
        raise UsageError(f"a tree of {config.num_models:,} models x {config.num_queries:,} queries needs about "
                         f"{need / 1e9:.3g} GB to generate, but this machine has {available / 1e9:.3g} GB available")


def _make_queries(config: TreeConfig, rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for t, task in enumerate(config.tasks):
        n = config.queries_per_task
        difficulty = rng.normal(TASK_DIFFICULTY[task], 1.3, n)
        discrimination = rng.lognormal(0.0, 0.4, n)
        kind = rng.choice(3, size=n, p=[0.92, 0.03, 0.05])   # normal, unsolvable, trivial
        difficulty[kind == 1] = 8.0                          # wrong gold label: nobody gets it (above chance)
        difficulty[kind == 2] = -6.0
        frames.append(pd.DataFrame({
            "query_id": [f"{task}/{i:04d}" for i in range(n)], "task": task, "difficulty": difficulty,
            "discrimination": discrimination, "guess": GUESS_FLOOR[task],
            "unsolvable": kind == 1,
        }))
    return pd.concat(frames, ignore_index=True)


def _fine_tune_effect(config: TreeConfig, rng: np.random.Generator, room: float) -> float:
    """Change of general ability; `room` is how far the parent is below the architecture's ceiling."""
    u = rng.random()
    if u < config.degrade_share:
        return rng.normal(config.degrade_mean, 0.6)
    if u < config.degrade_share + config.neutral_share:
        return rng.normal(-0.05, 0.15)
    return max(room, 0.0) * rng.random() ** 2   # diminishing returns near the ceiling


def _make_models(config: TreeConfig, rng: np.random.Generator):
    num_tasks = len(config.tasks)
    k = config.num_models
    kinds = ["base", "finetune"] + ["finetune"] * (config.num_finetunes - 2) + ["adapter"] * config.num_adapters
    order = np.concatenate([[0, 1], 2 + rng.permutation(k - 2)])  # interleave fine-tunes and adapters
    kinds = [kinds[i] for i in order]
    abilities = np.zeros((k, num_tasks))
    general = np.zeros(k)
    parent = np.full(k, -1)
    depth = np.zeros(k, dtype=int)
    broken = np.zeros(k, dtype=bool)
    copies_of = np.full(k, -1)
    task_loadings = 1.0 + rng.normal(0, 0.1, num_tasks)
    general[0] = config.base_ability
    abilities[0] = general[0] * task_loadings + rng.normal(0, config.task_spread * 0.5, num_tasks)
    general[1] = general[0] + config.instruct_gain
    abilities[1] = abilities[0] + config.instruct_gain + rng.normal(0, 0.1, num_tasks)
    parent[1], depth[1] = 0, 1
    for i in range(2, k):
        if rng.random() < config.deep_share and i > 3:
            candidates = np.flatnonzero((np.arange(k) < i) & (np.arange(k) >= 2) & ~broken
                                        & (np.array(kinds) != "adapter"))
            p = int(rng.choice(candidates)) if candidates.size else int(rng.choice([0, 1]))
        else:
            p = int(rng.choice([0, 1], p=[0.35, 0.65]))   # most fine-tune the official instruct model
        parent[i], depth[i] = p, depth[p] + 1
        if rng.random() < config.reupload_share:          # a re-upload: the same weights, the same answers
            copies_of[i] = copies_of[p] if copies_of[p] >= 0 else p
            general[i], abilities[i], broken[i] = general[p], abilities[p], broken[p]
            continue
        scale = config.adapter_scale if kinds[i] == "adapter" else 1.0
        ceiling = config.base_ability + config.instruct_gain + config.headroom
        effect = scale * _fine_tune_effect(config, rng, ceiling - general[p])
        general[i] = general[p] + effect
        abilities[i] = abilities[p] + effect + rng.normal(0, config.task_spread * scale, num_tasks)
        if rng.random() < config.specialist_share:    # e.g. a math fine-tune: better at one task, worse elsewhere
            t = rng.integers(num_tasks)
            abilities[i] -= 0.35
            abilities[i, t] += rng.normal(0.7, 0.3)
        cap = abilities[1] + config.headroom           # soft ceiling per task: min(ability, cap), smoothly
        abilities[i] = cap - 0.15 * np.logaddexp(0.0, (cap - abilities[i]) / 0.15)
        if rng.random() < config.broken_share:
            broken[i] = True
            abilities[i] = -6.0
    downloads = _downloads(k, depth, rng)
    is_base = np.zeros(k, dtype=bool)
    is_base[:2] = True
    names = [f"{config.name}/base", f"{config.name}/instruct"] + [
        f"user{rng.integers(1, 10 ** 5):05d}/{config.name}-{kinds[i]}-{i:04d}" for i in range(2, k)
    ]
    models = pd.DataFrame({
        "model_id": names,
        "kind": kinds,
        "base_model": [None] + [names[p] for p in parent[1:]],
        "depth": depth,
        "downloads": downloads,
        "is_base": is_base,
        "broken": broken,
        "reupload_of": [names[c] if c >= 0 else None for c in copies_of],
        "general_ability": general,
    })
    return models, abilities, copies_of


def _downloads(k: int, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed monthly downloads: the official releases take most; most others get a handful."""
    downloads = np.floor(np.exp(rng.normal(1.2, 1.6, k) - 0.4 * (depth - 1))).astype(np.int64)
    popular = rng.random(k) < 0.03                          # the odd popular community fine-tune
    downloads[popular] = np.floor(np.exp(rng.normal(8.0, 1.5, popular.sum()))).astype(np.int64)
    downloads[0] = int(np.exp(rng.normal(12.5, 0.3)))       # the root
    downloads[1] = int(np.exp(rng.normal(14.0, 0.3)))       # the official instruct model: the most popular
    return downloads


def _answer(config: TreeConfig, queries: pd.DataFrame, abilities: np.ndarray, copies_of: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    task_index = {t: i for i, t in enumerate(config.tasks)}
    t = queries["task"].map(task_index).to_numpy()
    a = queries["discrimination"].to_numpy()
    b = queries["difficulty"].to_numpy()
    c = queries["guess"].to_numpy()
    logits = a[None, :] * (abilities[:, t] - b[None, :])
    p = c[None, :] + (1.0 - c[None, :]) / (1.0 + np.exp(-logits))
    unsolvable = queries["unsolvable"].to_numpy()
    p[:, unsolvable] = 0.05                                # a wrong gold label: almost nobody matches it
    values = (rng.random(p.shape) < p).astype(np.uint8)
    copies = np.flatnonzero(copies_of >= 0)
    values[copies] = values[copies_of[copies]]
    return values

