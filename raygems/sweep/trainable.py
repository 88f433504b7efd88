"""The Tune trial of a sweep: one (tree, method, schedule, seed) replayed at all of its budgets at once.

All budgets go into one `replay_budgets` call, so anytime methods (UCB, UCB-StdDev, TTTS) run once to the
largest budget and are read off at the smaller ones; the R repetitions are batched inside that call (the
algorithms carry R as the leading axis of their state). The trial reports one Tune result per budget.

The matrices reach the trials through the Ray object store: the driver `ray.put`s each tree's matrix
once and passes the refs with `tune.with_parameters`; a worker process keeps the matrices it has fetched
(`_MATRIX_CACHE`), so a reused trial actor does not fetch or regenerate a tree again.
"""
from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from raygems.sweep.config import NO_SCHEDULE, reference_methods

#: Identity of a cell (one row of results.parquet); `budget` is 0 for reference rows (they spend none).
CELL_KEYS = ("tree", "tree_spec", "method", "schedule", "options", "seed", "reps", "budget")
#: Summary statistics a trial reports per cell (from `ReplayResult.summary()`).
SUMMARY_METRICS = ("mean_rank", "std_rank", "se_rank", "median_rank", "mean_accuracy", "se_accuracy", "p_top1",
                   "p_top3", "budget_fraction", "seconds")
#: Per-repetition outcomes reported alongside (lists of R ints): the chosen arm and its rank.
PER_REP_METRICS = ("rep_arms", "rep_ranks")
#: Packages whose code decides a replay's numbers (see `core_code_version`).
CORE_PACKAGES = ("bandits", "replay", "populations")

_MATRIX_CACHE: dict[str, Any] = {}


@functools.lru_cache(maxsize=1)
def core_code_version() -> str:
    """A digest of the source of the raygems.bandits / .replay / .populations modules this process has
    loaded, read when it first asks (right after a replay, so the modules that ran are the ones hashed).
    Recorded with every row, so that rows produced by different versions of the algorithms are told
    apart (e.g. a sampler rewritten between two runs). Files that the replay did not import do not count."""
    digest = hashlib.sha256()
    prefixes = tuple(f"raygems.{package}" for package in CORE_PACKAGES)
    for name in sorted(sys.modules):
        module = sys.modules[name]
        source = getattr(module, "__file__", None)
        if name.startswith(prefixes) and source and source.endswith(".py"):
            digest.update(name.encode())
            digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def trial_options(cell: dict[str, Any]) -> dict[str, Any]:
    """The algorithm options of a trial: its fixed options plus its schedule (when it has one)."""
    import json

    options = json.loads(cell["options"])
    if cell["schedule"] != NO_SCHEDULE:
        options["schedule"] = cell["schedule"]
    return options


def run_cell(matrix, cell: dict[str, Any]) -> list[dict[str, Any]]:
    """Replay one trial's cells on `matrix` and return one row per budget (no Ray involved).

    `cell`: tree, tree_spec, method, schedule, options (JSON text), seed, reps, budgets (list of int).
    Reference methods (random, best-base) spend no budget: they run once and give one row with budget 0.
    """
    from raygems.replay import replay_budgets

    method, reps, seed = cell["method"], int(cell["reps"]), int(cell["seed"])
    options = trial_options(cell)
    if method in reference_methods():
        results = replay_budgets(matrix, method, [1], reps, seed, options=options)
        budgets = [0]
    else:
        budgets = [int(b) for b in cell["budgets"]]
        results = replay_budgets(matrix, method, budgets, reps, seed, options=options)
    rows = []
    for budget, result in zip(budgets, results):
        summary = result.summary()
        row = {key: cell[key] for key in CELL_KEYS if key != "budget"}
        row["budget"] = budget
        row.update({key: summary[key] for key in SUMMARY_METRICS})
        row["code_version"] = core_code_version()
        row["rep_arms"] = result.per_rep["arm"].astype(int).tolist()
        row["rep_ranks"] = result.per_rep["rank"].astype(int).tolist()
        rows.append(row)
    return rows


def cached_matrix(tree_spec: str, ref):
    """The matrix behind `ref`, fetched from the object store once per worker process."""
    if tree_spec not in _MATRIX_CACHE:
        import ray

        _MATRIX_CACHE[tree_spec] = ray.get(ref)
    return _MATRIX_CACHE[tree_spec]


def replay_trial(config: dict[str, Any], matrix_refs: dict[str, Any] | None = None,
                 plugins: tuple[str, ...] = ()) -> None:
    """Tune function trainable. `config["cell"]` describes the trial (see `run_cell`); `matrix_refs` maps a
    tree's name to the ObjectRef of its matrix, `plugins` names the modules that register the sweep's own methods
    (both given through `tune.with_parameters`)."""
    import os

    from ray import tune

    from raygems.plugins import import_plugins

    import_plugins(plugins)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cell = config["cell"]
    matrix = cached_matrix(cell["tree_spec"], matrix_refs[cell["tree"]])
    for row in run_cell(matrix, cell):
        tune.report(row)


def per_rep_frame(rows: list[dict[str, Any]], accuracies: dict[str, np.ndarray]):
    """Long per-repetition table (cell keys, rep, arm, rank, accuracy) from reported rows; `accuracies`
    maps a tree's name to the true accuracy of every model."""
    import pandas as pd

    frames = []
    for row in rows:
        arms = np.asarray(row["rep_arms"], dtype=np.int32)
        frame = pd.DataFrame({"rep": np.arange(arms.size, dtype=np.int32), "arm": arms,
                              "rank": np.asarray(row["rep_ranks"], dtype=np.int32),
                              "accuracy": accuracies[row["tree"]][arms]})
        for key in reversed(CELL_KEYS):
            frame.insert(0, key, row[key])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*CELL_KEYS, "rep", "arm", "rank", "accuracy"])
    return pd.concat(frames, ignore_index=True)
