"""The hidden-gem report of the paper's section 2, from a tree table and per-task accuracies.

For each task, over the models of the tree that have an accuracy on it (K models; n = ceil(1% of K),
at least one):

* **popular consensus** P: the n most downloaded models;
* **elite** E: the n most accurate models;
* **hidden gems**: models that are obscure (not in P), excellent (in E) and dominant (accuracy strictly
  above the best model of P).

Models tied with the n-th one (same downloads, or same accuracy) are included in P or E: a tie cannot
decide membership, and including ties keeps both groups conservative (a larger P raises the bar a gem must
beat). The report gives, per task, the best popular accuracy ("Base"), the best gem's accuracy ("Gem")
and the gain, in the layout of the paper's Table 1, and, when model cards are given, whether each gem's
card documents evaluation results relevant to the task, in the layout of its Table 6.

Accuracies come from a result store (`accuracy_from_results`: `raygems.results`'s definition, each task
with the model's better prompt variant, as the paper takes) or from a correctness matrix
(`accuracy_from_matrix`). Both add an aggregate task, "overall" (the accuracy over all queries, the
paper's RouterBench_s; from a store, each task counted with its own better variant, as the leaderboard
counts), when there are several tasks.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.hub.cards import AGGREGATE_TASKS, DOC_SYMBOLS, DOC_UNAVAILABLE, ModelCard
from raygems.errors import HubUnreachable, UsageError
from raygems.results import (accuracy_table, no_results_yet, one_revision_per_model, read_results, result_files,
                             tree_revisions)

logger = logging.getLogger(__name__)

#: Share of models in the popular consensus and in the elite.
TOP_FRACTION = 0.01
#: Name of the aggregate task added when accuracies cover several tasks.
OVERALL = "overall"


def top_count(num_models: int, fraction: float = TOP_FRACTION) -> int:
    """ceil(fraction * num_models), at least one: the size of "the top 1%"."""
    if num_models < 1:
        raise ValueError(f"need at least one model, got {num_models}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * num_models - 1e-9))


# --------------------------------------------------------------------------------------------- accuracies
def accuracy_from_results(results: pd.DataFrame | str | Path, tree: pd.DataFrame | None = None,
                          overall: str | None = OVERALL, min_queries: int = 1) -> pd.DataFrame:
    """Per (model, task) accuracy from result rows (a DataFrame, or anything `raygems.results.read_results` reads:
    a search's run directory, a store, parquet files): the accuracy of `raygems.results`, each task with the
    model's better prompt variant, and for the aggregate task (when there are several tasks) each task with its
    own. When a model has results at several revisions, the tree's revision is used if the tree is given and has
    results, otherwise the revision with the most results. A search's result store holds few answers for models
    it eliminated early: `min_queries` drops scores computed from fewer answers.
    Returns columns model_id, task, accuracy, n_queries, variant; most accurate first within each task group.
    """
    if min_queries < 1:
        raise ValueError(f"min_queries must be at least 1, got {min_queries}")
    if not isinstance(results, pd.DataFrame) and not result_files(results):
        raise UsageError(no_results_yet(results))
    rows = read_results(results, columns=())
    if pd.to_numeric(rows["reward"], errors="coerce").isna().all():
        raise ValueError("the result rows hold no rewards")
    rows = one_revision_per_model(rows, tree_revisions(tree))
    aggregate = overall if overall and rows["task"].nunique() > 1 else None
    table = accuracy_table(rows, aggregate=aggregate, min_queries=min_queries)
    if (table["task"] != aggregate).sum() == 0:
        raise ValueError(f"no model has {min_queries} or more answers on any task")
    table = pd.concat([_most_accurate_first(table[table["task"] != aggregate]),
                       _most_accurate_first(table[table["task"] == aggregate])], ignore_index=True)
    return _tidy(table[["model_id", "task", "accuracy", "n_queries", "variant"]])


def _most_accurate_first(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["accuracy", "n_queries", "variant"], ascending=[False, False, True], kind="mergesort")


def accuracy_from_matrix(matrix: Any, overall: str | None = OVERALL) -> pd.DataFrame:
    """Per (model, task) accuracy from a correctness matrix (a `raygems.replay.CorrectnessMatrix` or a path
    `raygems.replay.load_matrix` reads). Columns model_id, task, accuracy, n_queries."""
    from raygems.replay import load_matrix

    if isinstance(matrix, (str, Path)):
        matrix = load_matrix(matrix)
    tasks = np.asarray(matrix.tasks if matrix.tasks is not None else ["all"] * matrix.num_queries, dtype=object)
    frames = []
    for task in dict.fromkeys(tasks):
        columns = tasks == task
        frames.append(pd.DataFrame({"model_id": matrix.model_ids, "task": str(task),
                                    "accuracy": matrix.values[:, columns].mean(axis=1),
                                    "n_queries": int(columns.sum())}))
    if overall and len(frames) > 1:
        frames.append(pd.DataFrame({"model_id": matrix.model_ids, "task": overall,
                                    "accuracy": matrix.values.mean(axis=1), "n_queries": matrix.num_queries}))
    return _tidy(pd.concat(frames, ignore_index=True))


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame["model_id"] = frame["model_id"].astype(str)
    frame["task"] = frame["task"].astype(str)
    frame["accuracy"] = frame["accuracy"].astype(float)
    if "n_queries" in frame:
        frame["n_queries"] = frame["n_queries"].astype("int64")
    return frame


# ------------------------------------------------------------------------------------------------ report
@dataclass
class GemReport:
    """What `find_gems` found. All tables are plain DataFrames.

    models: one row per (task, model): accuracy, downloads, accuracy_rank, popular, elite, gem.
    summary: one row per task: sizes, the best popular model, the best model, the gems, the gain.
    documentation: one row per (task, gem): the card's documentation state (None without cards).
    """

    models: pd.DataFrame
    summary: pd.DataFrame
    documentation: pd.DataFrame | None = None
    #: Why cards marked ? could not be read, when the reason is not the card's own (the hub cannot be reached).
    cards_note: str | None = None

    @property
    def tasks(self) -> list[str]:
        return list(self.summary["task"])

    def gems(self, task: str | None = None) -> pd.DataFrame:
        """The hidden gems (of one task, or all), most accurate first."""
        gems = self.models[self.models["gem"]]
        if task is not None:
            self._check_task(task)
            gems = gems[gems["task"] == task]
        order = {t: i for i, t in enumerate(self.tasks)}
        return (gems.assign(_order=gems["task"].map(order))
                .sort_values(["_order", "accuracy", "model_id"], ascending=[True, False, True], kind="mergesort")
                .drop(columns="_order").reset_index(drop=True))

    def table1(self) -> pd.DataFrame:
        """The paper's Table 1 for this tree: rows Base / Gem / Gain, one column per task, in percent."""
        s = self.summary.set_index("task")
        table = pd.DataFrame({
            "Base": 100 * s["best_popular_accuracy"],
            "Gem": 100 * s["best_gem_accuracy"],
            "Gain": 100 * s["gain"],
        }).T
        table.columns.name = None
        return table

    def table6(self) -> pd.DataFrame:
        """The paper's Table 6 for this tree: per task, the best gem's documentation symbol
        (✓ relevant, ● irrelevant tasks only, ✗ none, ? unknown: the card could not be read, or the hub could not
        be reached (`cards_note` says so); '–' when the task has no gem)."""
        symbols = {}
        for row in self.summary.itertuples():
            symbols[row.task] = "–"
            if self.documentation is not None and isinstance(row.best_gem, str):
                doc = self.documentation[(self.documentation["task"] == row.task)
                                         & (self.documentation["model_id"] == row.best_gem)]
                if len(doc):
                    symbols[row.task] = doc["symbol"].iloc[0]
        return pd.DataFrame([symbols], index=["Documentation"])

    def to_markdown(self, tree_name: str = "tree") -> str:
        """Table 1 (and Table 6 when cards were given) as markdown, with the gems listed per task."""
        t1 = self.table1()
        rows = [[tree_name if i == 0 else "", label]
                + [_fmt(t1.loc[label, task], label == "Gain") for task in self.tasks]
                for i, label in enumerate(t1.index)]
        parts = ["Table 1: popular (Base) vs hidden-gem (Gem) accuracy, %",
                 _markdown(["Tree", ""] + self.tasks, rows)]
        if self.documentation is not None:
            t6 = self.table6()
            parts += ["", "Table 6: gem documentation (✓ relevant, ● irrelevant tasks only, ✗ none, "
                          "? unknown: card unreadable or hub unreachable)",
                      _markdown(["Tree"] + self.tasks, [[tree_name] + [t6.iloc[0][t] for t in self.tasks]])]
            if self.cards_note:
                parts.append(f"({self.cards_note})")
        parts += ["", "Hidden gems per task"]
        gem_rows = [[g.task, g.model_id, f"{100 * g.accuracy:.1f}", str(int(g.downloads))]
                    for g in self.gems().itertuples()]
        parts.append(_markdown(["Task", "Model", "Accuracy %", "Downloads"], gem_rows) if gem_rows
                     else "(no hidden gems)")
        return "\n".join(parts) + "\n"

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not in the report; tasks: {self.tasks}")


CardLookup = Mapping[str, ModelCard] | Callable[[str], ModelCard] | Any


def find_gems(tree: pd.DataFrame, accuracy: pd.DataFrame, cards: CardLookup | None = None,
              top_fraction: float = TOP_FRACTION) -> GemReport:
    """The hidden-gem report (module docstring) of `tree` (model_id, downloads, ...) given `accuracy`
    (model_id, task, accuracy). `cards` (a mapping model_id -> ModelCard, a callable, or a TreeSource with
    `model_card`) adds the documentation check of every gem."""
    for frame, name, needed in ((tree, "tree", ("model_id", "downloads")),
                                (accuracy, "accuracy", ("model_id", "task", "accuracy"))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} table lacks column(s) {missing}")
    if tree["model_id"].duplicated().any():
        duplicate = tree.loc[tree["model_id"].duplicated(), "model_id"].iloc[0]
        raise ValueError(f"tree lists models more than once, e.g. {duplicate!r}")
    if accuracy.duplicated(["model_id", "task"]).any():
        row = accuracy[accuracy.duplicated(["model_id", "task"])].iloc[0]
        raise ValueError(f"accuracy lists model {row.model_id!r} twice for task {row.task!r}")
    unknown = sorted(set(accuracy["model_id"]) - set(tree["model_id"]))
    if unknown:
        raise ValueError(f"{len(unknown)} model(s) with accuracies are not in the tree, e.g. {unknown[:3]}")
    if accuracy["accuracy"].isna().any():
        raise ValueError("accuracy has missing values")

    info = tree.set_index("model_id")
    per_model, summary = [], []
    for task, group in accuracy.groupby("task", sort=False):
        group = group.copy()
        group["downloads"] = info.loc[group["model_id"], "downloads"].to_numpy().astype("int64")
        n = top_count(len(group), top_fraction)
        group["popular"] = _top_with_ties(group["downloads"].to_numpy(), n)
        group["elite"] = _top_with_ties(group["accuracy"].to_numpy(), n)
        best_popular = group.loc[group["popular"], "accuracy"].max()
        group["gem"] = ~group["popular"] & group["elite"] & (group["accuracy"] > best_popular)
        values = group["accuracy"].to_numpy()
        group["accuracy_rank"] = 1 + (values[None, :] > values[:, None]).sum(axis=1)   # 1 + strictly better
        per_model.append(group)
        summary.append(_summarise(str(task), group, n))
    models = pd.concat(per_model, ignore_index=True)
    models = models[["task", "model_id", "accuracy", "downloads", "accuracy_rank", "popular", "elite", "gem"]
                    + [c for c in ("n_queries", "variant") if c in models.columns]]
    report = GemReport(models=models, summary=pd.DataFrame(summary))
    if cards is not None:
        report.documentation = _documentation(report, cards)
    return report


def _top_with_ties(values: np.ndarray, n: int) -> np.ndarray:
    """Mask of the n largest values, plus any value tied with the n-th."""
    threshold = np.sort(values)[::-1][n - 1]
    return values >= threshold


def _summarise(task: str, group: pd.DataFrame, n: int) -> dict[str, Any]:
    def best(frame: pd.DataFrame) -> tuple[str | None, float]:
        if frame.empty:
            return None, float("nan")
        top = frame.sort_values(["accuracy", "downloads", "model_id"], ascending=[False, False, True],
                                kind="mergesort").iloc[0]
        return str(top["model_id"]), float(top["accuracy"])

    popular_model, popular_acc = best(group[group["popular"]])
    best_model, best_acc = best(group)
    gem_model, gem_acc = best(group[group["gem"]])
    return {
        "task": task, "num_models": len(group), "top_n": n,
        "popular": sorted(group.loc[group["popular"], "model_id"]),
        "best_popular": popular_model, "best_popular_accuracy": popular_acc,
        "best_model": best_model, "best_accuracy": best_acc,
        "num_gems": int(group["gem"].sum()),
        "best_gem": gem_model, "best_gem_accuracy": gem_acc,
        "gain": gem_acc - popular_acc,
    }


def _card_getter(cards: CardLookup) -> Callable[[str], ModelCard]:
    if isinstance(cards, Mapping):
        return lambda model_id: cards.get(model_id) or ModelCard(model_id=model_id)
    if hasattr(cards, "model_card"):
        return cards.model_card
    if callable(cards):
        return cards
    raise TypeError(f"cards must be a mapping, a callable or a TreeSource, got {type(cards).__name__}")


def _hub_problem(exc: BaseException) -> HubUnreachable | None:
    if isinstance(exc, HubUnreachable):
        return exc
    from raygems.hub.retry import unreachable

    try:
        return unreachable(exc)
    except ImportError:   # pragma: no cover - huggingface_hub is a dependency
        return None


def _documentation(report: GemReport, cards: CardLookup) -> pd.DataFrame:
    get_card = _card_getter(cards)
    components = tuple(t for t in report.tasks if t.lower() not in AGGREGATE_TASKS)
    fetched: dict[str, ModelCard | None] = {}
    rows = []
    unreached: HubUnreachable | None = None     # once the hub did not answer, the other cards are not asked for
    for gem in report.gems().itertuples():
        if gem.model_id not in fetched:
            if unreached is not None:
                fetched[gem.model_id] = None
            else:
                try:
                    fetched[gem.model_id] = get_card(gem.model_id)
                except Exception as exc:  # noqa: BLE001 - a gated or deleted repository: report, do not abort
                    unreached = _hub_problem(exc)
                    if unreached is None:
                        logger.warning("model card of %s unavailable: %s", gem.model_id, exc)
                    fetched[gem.model_id] = None
        card = fetched[gem.model_id]
        state = card.documentation_for(gem.task, components) if card is not None else DOC_UNAVAILABLE
        rows.append({"task": gem.task, "model_id": gem.model_id, "documentation": state,
                     "symbol": DOC_SYMBOLS[state],
                     "documented_benchmarks": sorted(card.documented_benchmarks) if card is not None else []})
    frame = pd.DataFrame(rows, columns=["task", "model_id", "documentation", "symbol", "documented_benchmarks"])
    if unreached is not None:
        unknown = sum(card is None for card in fetched.values())
        report.cards_note = (f"the model cards could not be read: the Hugging Face hub cannot "
                             f"be reached ({unreached.reason}); the documentation of {unknown} gem(s) is unknown (?)")
    return frame


# ---------------------------------------------------------------------------------------------- markdown
def _fmt(value: float, signed: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
