"""Family (c), semi-real trees: real per-model, per-task accuracies from the Open LLM Leaderboard, with
item-level answers drawn consistently with them.

Source: `../shared/data/leaderboard/huggingface_v1_2024-07-07.csv` (leaderboard v1, final snapshot). One
architecture and size makes one tree of interchangeable checkpoints, like the paper's model trees; the
default, MistralForCausalLM at 7B, has 2,124 rows: a few outliers, then a dense band of merges of merges
(after the cleaning below, 28 models within 0.5 points of the best average, 246 within 1, 488 within 2).

Cleaning (the snapshot's caveats, `../shared/data/leaderboard/README.md`):
* `merged`, `moe` and `flagged` are inverted in v1 (True means NOT merged / MoE / flagged): they are flipped,
  and flagged rows (contaminated or misreported evaluations, e.g. `Contamination/contaminated_proof_7b`) are
  dropped unless `keep_flagged=True` (`raygems.prior.leaderboard.read_leaderboard_v1`, the snapshot's one
  reader).
* `params_b` is rounded to whole billions (7 covers 6.5-7.5B; 0 = unknown): the tree is the rows whose
  rounded size equals `params_b`.
* A model evaluated several times (other precision or commit) is one checkpoint: its scores are averaged.

Answers: per task, an item bank of `queries_per_task` items (`irt.draw_items`); each model's ability on the
task is solved so its expected accuracy equals its leaderboard score, and it answers correctly exactly
round(score x items) items, those of highest propensity (`irt.answers_with_counts`). Models whose six v1
scores are all identical (re-uploads of one checkpoint under other names) get identical answer rows.

Popularity: v1 has no download counts; likes (`hub_hearts`) stand in for them (`downloads` = likes), and the
official `mistralai/...` checkpoints are the tree's bases (`is_base`), so `best-base` picks the most liked
official model.

K: `sample="paper"` follows the paper's selection (App. C: the 300 most popular models of the tree, then 100
random others; popularity = likes, ties broken at random by the seed); `sample="all"` keeps every model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.hub.types import PAPER_RANDOM_MODELS, PAPER_TOP_MODELS
from raygems.populations import irt
from raygems.populations.population import FamilyTree, default_shared_dir
from raygems.prior.leaderboard import V1_TASKS, read_leaderboard_v1
from raygems.replay.matrix import CorrectnessMatrix

V1_FILE = "data/leaderboard/huggingface_v1_2024-07-07.csv"
#: v1 score column -> raygems task name
V1_TASK_COLUMNS = {column: task for column, (task, _) in V1_TASKS.items()}
ALL_V1_SCORES = tuple(V1_TASKS)
SAMPLES = ("paper", "all")


@dataclass(frozen=True)
class LeaderboardConfig:
    """Which leaderboard rows make the tree, and how its answers are drawn (see the module docstring)."""

    path: str | None = None                 # None: $RAYGEMS_SHARED_DIR or ../shared, then V1_FILE
    architecture: str = "MistralForCausalLM"
    params_b: int = 7
    tasks: tuple[str, ...] = ("arc_challenge", "winogrande", "mmlu", "gsm8k")
    sample: str = "paper"
    most_liked: int = PAPER_TOP_MODELS
    random_extra: int = PAPER_RANDOM_MODELS
    queries_per_task: int = 500
    keep_flagged: bool = False
    official_prefix: str = "mistralai/"
    seed: int = 0

    @property
    def num_queries(self) -> int:
        return self.queries_per_task * len(self.tasks)

    def csv_path(self) -> Path:
        return Path(self.path) if self.path else default_shared_dir() / V1_FILE


def read_leaderboard_rows(config: LeaderboardConfig) -> pd.DataFrame:
    """The cleaned rows of one architecture and size: one per model id, scores on a 0-1 scale."""
    path = config.csv_path()
    if not path.is_file():
        raise FileNotFoundError(f"no leaderboard snapshot at {path} (set RAYGEMS_SHARED_DIR or path=)")
    table = read_leaderboard_v1(path, keep_flagged=config.keep_flagged)
    rows = table[(table["architecture"] == config.architecture) & (table["params_b"] == config.params_b)]
    if rows.empty:
        raise ValueError(f"no leaderboard rows for architecture {config.architecture!r} at {config.params_b}B")
    unknown = [t for t in config.tasks if t not in V1_TASK_COLUMNS.values()]
    if unknown:
        raise ValueError(f"task(s) {unknown} are not in the v1 snapshot; choose from "
                         f"{sorted(V1_TASK_COLUMNS.values())}")
    scores = {c: (c, "mean") for c in ALL_V1_SCORES}
    grouped = rows.groupby("model", sort=False).agg(
        **scores, likes=("hub_hearts", "max"), type=("type", "first"), merged=("merged", "max"),
        precision=("precision", "first"), date=("date", "first"), evaluations=("model", "size"))
    grouped = grouped.reset_index().rename(columns={"model": "model_id"})
    for column in ALL_V1_SCORES:
        grouped[column] = grouped[column] / 100.0
    grouped["likes"] = grouped["likes"].fillna(0).astype(np.int64)
    return grouped


def select_models(rows: pd.DataFrame, config: LeaderboardConfig) -> pd.DataFrame:
    """`sample="all"`: every row; `"paper"`: the `most_liked` by likes (ties at random) plus `random_extra`
    random others (App. C), official checkpoints always included."""
    if config.sample not in SAMPLES:
        raise ValueError(f"sample must be one of {SAMPLES}, got {config.sample!r}")
    if config.sample == "all":
        return rows.reset_index(drop=True)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0x5A, 1)))
    jitter = rng.random(len(rows))
    order = np.lexsort((jitter, -rows["likes"].to_numpy()))
    liked = order[:config.most_liked]
    others = order[config.most_liked:]
    extra = rng.choice(others, size=min(config.random_extra, others.size), replace=False)
    official = np.flatnonzero(rows["model_id"].str.startswith(config.official_prefix).to_numpy())
    chosen = np.unique(np.concatenate([liked, extra, official]))
    return rows.iloc[chosen].reset_index(drop=True)


def generate_leaderboard_tree(config: LeaderboardConfig | None = None, seed: int | None = None,
                              **overrides) -> FamilyTree:
    """Family (c): a semi-real tree from leaderboard rows (see the module docstring). Deterministic for a seed."""
    from dataclasses import replace

    config = replace(config or LeaderboardConfig(), **overrides)
    if seed is not None:
        config = replace(config, seed=int(seed))
    if config.queries_per_task < 1:
        raise ValueError(f"queries_per_task must be at least 1, got {config.queries_per_task}")
    models = select_models(read_leaderboard_rows(config), config)
    if len(models) < 2:
        raise ValueError("the selection holds fewer than 2 models")
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0x5A, 2)))
    # re-uploads: identical scores on all six v1 benchmarks -> one answer row shared by the group
    group = models.groupby(list(ALL_V1_SCORES), sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(models))).groupby(group).transform("min").to_numpy()
    representatives = np.unique(first)
    column_of = {task: column for column, task in V1_TASK_COLUMNS.items()}
    blocks, item_tables = [], []
    for task in config.tasks:
        items = irt.draw_items([task], config.queries_per_task, rng)
        scores = models[column_of[task]].to_numpy()[representatives]
        counts = np.rint(np.clip(scores, 0, 1) * config.queries_per_task).astype(np.int64)
        theta = irt.solve_abilities(counts / config.queries_per_task, items)
        answers, _ = irt.answers_with_counts(irt.correct_probability(theta, items), counts, rng)
        block = np.zeros((len(models), config.queries_per_task), dtype=np.uint8)
        block[representatives] = answers
        block = block[first]                      # copies share their representative's row
        blocks.append(block)
        item_tables.append(items)
    items = pd.concat(item_tables, ignore_index=True)
    values = np.concatenate(blocks, axis=1)
    table = _models_table(models, config, first)
    matrix = CorrectnessMatrix(values, tuple(table["model_id"]), tuple(items["query_id"]), tuple(items["task"]),
                               table)
    name = f"leaderboard-{config.architecture.replace('ForCausalLM', '').lower()}-{config.params_b}b-{config.sample}"
    return FamilyTree("leaderboard", name, config, matrix, items,
                      notes={"rows": len(models), "reupload_groups": int((np.bincount(first) > 1).sum())})


def _models_table(models: pd.DataFrame, config: LeaderboardConfig, first: np.ndarray) -> pd.DataFrame:
    official = models["model_id"].str.startswith(config.official_prefix).to_numpy()
    kind = np.where(models["merged"].to_numpy(dtype=bool), "merge", "finetune").astype(object)
    kind[official] = "base"
    ids = models["model_id"].to_numpy()
    table = pd.DataFrame({
        "model_id": ids,
        "kind": kind,
        "downloads": models["likes"].to_numpy(dtype=np.int64),   # popularity proxy: v1 has no downloads
        "likes": models["likes"].to_numpy(dtype=np.int64),
        "is_base": official,
        "type": models["type"].to_numpy(),
        "precision": models["precision"].to_numpy(),
        "date": models["date"].to_numpy(),
        "reupload_of": [ids[f] if f != i else None for i, f in enumerate(first)],
    })
    column_of = {task: column for column, task in V1_TASK_COLUMNS.items()}
    for task in config.tasks:
        table[f"leaderboard_{task}"] = models[column_of[task]].to_numpy()
    table["leaderboard_average"] = table[[f"leaderboard_{t}" for t in config.tasks]].mean(axis=1)
    return table

