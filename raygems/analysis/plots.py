"""Figures of the paper, drawn with matplotlib (any backend; tests and the CLI use Agg).

* `tree_atlas`: a model tree (its Figures 1, 2, 5-8): node size = log downloads, colour = accuracy,
  hidden gems circled. The layout (`radial_layout`) is deterministic and needs no graphviz: the root sits
  at the centre, depth is the radius, and every subtree gets an angular wedge proportional to its number of
  leaves; siblings are ordered by downloads, then id.
* `cumulative_accuracy`: the cumulative distribution of model accuracies (its Figure 4), with lines 10
  and 5 accuracy points below the best model.
* `rank_vs_budget`: a sweep's mean rank (or accuracy) of the recommended model against the budget, one
  line per method.

Each function draws on `ax` when given (else on a new figure) and returns the Axes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _accuracy_series(accuracy: Any, task: str | None) -> pd.Series:
    """model_id -> accuracy from a Series, a mapping, or a long (model_id, task, accuracy) table."""
    if isinstance(accuracy, pd.DataFrame):
        missing = [c for c in ("model_id", "accuracy") if c not in accuracy.columns]
        if missing:
            raise ValueError(f"accuracy table lacks column(s) {missing}")
        if "task" in accuracy.columns:
            tasks = list(dict.fromkeys(accuracy["task"]))
            if task is None:
                if len(tasks) > 1:
                    raise ValueError(f"accuracy covers several tasks {tasks}: pass task=")
                task = tasks[0]
            if task not in tasks:
                raise ValueError(f"task {task!r} is not in the accuracy table; tasks: {tasks}")
            accuracy = accuracy[accuracy["task"] == task]
        return pd.Series(accuracy["accuracy"].to_numpy(float), index=accuracy["model_id"].astype(str))
    if isinstance(accuracy, pd.Series):
        return accuracy.astype(float)
    if isinstance(accuracy, Mapping):
        return pd.Series(accuracy, dtype=float)
    return pd.Series(np.asarray(accuracy, dtype=float))


# ------------------------------------------------------------------------------------------------ atlas
def radial_layout(tree: pd.DataFrame) -> pd.DataFrame:
    """Positions of a tree's models: columns model_id, parent, level, angle, x, y (root at (0, 0)).

    The parent is `base_model` when that model is in the table; models whose parent is missing, or that
    sit on a cycle of base-model links, hang from the root. The root is the depth-0 model (or, failing
    that, the most downloaded model without a parent in the table).
    """
    if "model_id" not in tree.columns:
        raise ValueError("tree table lacks a 'model_id' column")
    if tree.empty:
        raise ValueError("tree table is empty")
    ids = tree["model_id"].astype(str).tolist()
    downloads = dict(zip(ids, tree["downloads"] if "downloads" in tree else [0] * len(ids)))
    base = dict(zip(ids, tree["base_model"] if "base_model" in tree else [None] * len(ids)))
    known = set(ids)
    root = _root_of(tree, ids, base, known, downloads)

    parent: dict[str, str | None] = {m: (str(base[m]) if isinstance(base[m], str) and base[m] in known
                                         and base[m] != m else None) for m in ids}
    parent[root] = None
    # Reachability from the root; everything else (orphans, cycles) hangs from the root.
    children: dict[str, list[str]] = {m: [] for m in ids}
    for m in ids:
        if parent[m] is not None:
            children[parent[m]].append(m)
    reached = _walk(root, children)
    for m in ids:
        if m not in reached:
            parent[m] = root
    children = {m: [] for m in ids}
    for m in ids:
        if m != root:
            children[parent[m]].append(m)
    order = lambda m: (-float(downloads.get(m) or 0), m)  # noqa: E731
    for m in children:
        children[m].sort(key=order)

    preorder = _walk(root, children)
    level = {root: 0}
    for m in preorder[1:]:
        level[m] = level[parent[m]] + 1
    leaves: dict[str, int] = {}
    for m in reversed(preorder):
        leaves[m] = sum(leaves[c] for c in children[m]) or 1

    angle = {root: 0.0}
    wedge = {root: (0.0, 2 * math.pi)}
    for m in preorder:
        start, width = wedge[m]
        offset = start
        for c in children[m]:
            share = width * leaves[c] / leaves[m]
            wedge[c] = (offset, share)
            angle[c] = offset + share / 2
            offset += share
    rows = [{"model_id": m, "parent": parent[m], "level": level[m], "angle": angle[m],
             "x": level[m] * math.cos(angle[m]), "y": level[m] * math.sin(angle[m])} for m in ids]
    return pd.DataFrame(rows)


def _root_of(tree: pd.DataFrame, ids: list[str], base: dict, known: set, downloads: dict) -> str:
    if "depth" in tree.columns:
        roots = tree.loc[tree["depth"] == 0, "model_id"].astype(str).tolist()
        if roots:
            return roots[0]
    parentless = [m for m in ids if not (isinstance(base[m], str) and base[m] in known)] or ids
    return max(parentless, key=lambda m: (float(downloads.get(m) or 0), m))


def _walk(root: str, children: dict[str, list[str]]) -> list[str]:
    """Pre-order walk (iterative: trees can be thousands deep in pathological tables)."""
    seen, out, stack = {root}, [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        for c in reversed(children[node]):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return out


def tree_atlas(tree: pd.DataFrame, accuracy: Any = None, ax: Any = None, gems: Any = None, task: str | None = None,
               cmap: str = "viridis", title: str | None = None, label: Iterable[str] = ()) -> Any:
    """Draw a model tree: size = log10(downloads + 1), colour = accuracy (grey: none), gems circled in red.

    `accuracy`: model_id -> accuracy (Series, mapping, or a long table with `task`). `gems`: model ids, or a
    GemReport (its gems for `task`). `label`: model ids to write next to their node.
    """
    from matplotlib.collections import LineCollection

    ax = _new_axes(ax, (7, 7))
    layout = radial_layout(tree).set_index("model_id")
    downloads = pd.Series(tree["downloads"].to_numpy(float) if "downloads" in tree else 0.0,
                          index=tree["model_id"].astype(str)).reindex(layout.index).fillna(0)
    acc = _accuracy_series(accuracy, task).reindex(layout.index) if accuracy is not None else \
        pd.Series(np.nan, index=layout.index)

    segments = [((layout.at[p, "x"], layout.at[p, "y"]), (row.x, row.y))
                for m, row in layout.iterrows() if isinstance((p := row.parent), str)]
    ax.add_collection(LineCollection(segments, colors="0.75", linewidths=0.5, zorder=1))

    sizes = 8 + 30 * np.log10(downloads.to_numpy() + 1)
    has_acc = acc.notna().to_numpy()
    ax.scatter(layout["x"][~has_acc], layout["y"][~has_acc], s=sizes[~has_acc], c="0.8", edgecolors="none",
               zorder=2)
    if has_acc.any():
        points = ax.scatter(layout["x"][has_acc], layout["y"][has_acc], s=sizes[has_acc], c=acc[has_acc],
                            cmap=cmap, edgecolors="none", zorder=3)
        ax.figure.colorbar(points, ax=ax, shrink=0.7, label="accuracy" + (f" ({task})" if task else ""))

    gem_ids = _gem_ids(gems, task)
    circled = [m for m in gem_ids if m in layout.index]
    if circled:
        ax.scatter(layout.loc[circled, "x"], layout.loc[circled, "y"], s=sizes[layout.index.get_indexer(circled)] + 250,
                   facecolors="none", edgecolors="red", linewidths=1.8, zorder=4, label="hidden gem")
        ax.legend(loc="upper right", frameon=False)
    for m in label:
        if m in layout.index:
            ax.annotate(m, (layout.at[m, "x"], layout.at[m, "y"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _gem_ids(gems: Any, task: str | None) -> list[str]:
    if gems is None:
        return []
    if hasattr(gems, "gems") and callable(gems.gems):          # a GemReport
        tasks = gems.tasks
        if task is None and len(tasks) != 1:
            raise ValueError(f"the report covers tasks {tasks}: pass task= to pick the gems to circle")
        return gems.gems(task or tasks[0])["model_id"].tolist()
    return [str(m) for m in gems]


# ----------------------------------------------------------------------------------- accuracy distribution
def share_below_best(accuracy: Any, gap: float, task: str | None = None) -> float:
    """Share of models whose accuracy is more than `gap` below the best one."""
    values = _accuracy_series(accuracy, task).dropna().to_numpy()
    if values.size == 0:
        raise ValueError("no accuracies")
    return float(np.mean(values < values.max() - gap))


def cumulative_accuracy(accuracy: Any, task: str | None = None, ax: Any = None, gaps: Iterable[float] = (0.10, 0.05),
                        label: str | None = None, title: str | None = None) -> Any:
    """Cumulative share of models with accuracy <= x, with dashed lines `gaps` below the best model
    (the paper's Figure 4 draws them at -10% and -5%), each labelled with the share of models left of it."""
    ax = _new_axes(ax, (5, 3.5))
    values = np.sort(_accuracy_series(accuracy, task).dropna().to_numpy())
    if values.size == 0:
        raise ValueError("no accuracies to plot")
    shares = np.arange(1, values.size + 1) / values.size
    ax.step(values, shares, where="post", label=label or task or "models")
    best = values[-1]
    for gap, style in zip(gaps, ("--", ":", "-.")):
        x = best - gap
        below = float(np.mean(values < x))
        ax.axvline(x, color="crimson", linestyle=style, linewidth=1)
        ax.annotate(f"-{100 * gap:.0f} pts: {100 * below:.0f}% below", (x, 0.03 + 0.1 * (gap < 0.075)),
                    fontsize=7, color="crimson", xytext=(3, 0), textcoords="offset points")
    ax.set_xlabel("accuracy")
    ax.set_ylabel("share of models")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------------------- rank vs budget
def rank_vs_budget(results: pd.DataFrame, x: str = "budget", y: str = "rank", hue: str = "method",
                   ax: Any = None, logx: bool = True, errorbars: bool = True, title: str | None = None) -> Any:
    """Mean `y` (e.g. the rank of the recommended model) against `x` (the budget), one line per `hue`
    (e.g. method), over all other rows (repetitions, seeds); a band of +-1 standard error."""
    missing = [c for c in (x, y, hue) if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}; they have {list(results.columns)}")
    ax = _new_axes(ax, (5.5, 3.5))
    stats = results.groupby([hue, x], sort=True)[y].agg(["mean", "std", "count"]).reset_index()
    for name, curve in stats.groupby(hue, sort=False):
        curve = curve.sort_values(x)
        line, = ax.plot(curve[x], curve["mean"], marker="o", markersize=3, label=str(name))
        if errorbars:
            se = (curve["std"].fillna(0) / np.sqrt(curve["count"])).to_numpy()
            ax.fill_between(curve[x], curve["mean"] - se, curve["mean"] + se, color=line.get_color(), alpha=0.2,
                            linewidth=0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(f"mean {y}")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title)
    return ax
