"""Plots: a deterministic radial tree layout, the atlas, Figure 4's distribution, rank vs budget."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from raygems.analysis.gems import find_gems  # noqa: E402
from raygems.analysis.plots import (cumulative_accuracy, radial_layout, rank_vs_budget,  # noqa: E402
                                    share_below_best, tree_atlas)

TREE = pd.DataFrame({
    "model_id": ["r", "i", "a", "b", "c", "d", "e"],
    "base_model": [None, "r", "r", "i", "i", "b", "ghost"],       # e's parent is not in the table
    "depth": [0, 1, 1, 2, 2, 3, 1],
    "downloads": [5000, 9000, 3, 40, 2, 0, 7],
})


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_radial_layout_levels_angles_and_determinism():
    layout = radial_layout(TREE).set_index("model_id")
    assert (layout.loc["r", ["x", "y"]] == 0).all()
    assert dict(layout["level"]) == {"r": 0, "i": 1, "a": 1, "b": 2, "c": 2, "d": 3, "e": 1}
    assert layout.loc["e", "parent"] == "r"                          # orphan hangs from the root
    radius = np.hypot(layout["x"], layout["y"])
    assert np.allclose(radius, layout["level"])
    # i has 2 leaves (d under b, c), a and e one each: i's wedge is half the circle, its children inside it.
    assert layout.loc["i", "angle"] == pytest.approx(math.pi / 2)
    assert 0 <= layout.loc["b", "angle"] <= math.pi and 0 <= layout.loc["c", "angle"] <= math.pi
    assert layout.loc["d", "angle"] == pytest.approx(layout.loc["b", "angle"])
    shuffled = radial_layout(TREE.sample(frac=1, random_state=3)).set_index("model_id")
    assert shuffled.loc[layout.index, ["x", "y"]].equals(layout[["x", "y"]])


def test_radial_layout_breaks_cycles():
    cyclic = pd.DataFrame({"model_id": ["r", "x", "y"], "base_model": [None, "y", "x"], "downloads": [1, 1, 1],
                           "depth": [0, 1, 2]})
    layout = radial_layout(cyclic).set_index("model_id")
    assert set(layout.loc[["x", "y"], "parent"]) == {"r"} and (layout.loc[["x", "y"], "level"] == 1).all()


def test_atlas_sizes_colours_and_gem_circles():
    accuracy = pd.DataFrame({"model_id": TREE["model_id"], "task": "gsm8k",
                             "accuracy": [0.5, 0.6, 0.9, 0.55, 0.58, 0.2, np.nan]}).dropna()
    report = find_gems(TREE, accuracy)
    assert list(report.gems("gsm8k")["model_id"]) == ["a"]
    ax = tree_atlas(TREE, accuracy, gems=report, task="gsm8k", title="tiny", label=["a"])
    scatters = ax.collections
    # edges, the grey node without accuracy, the coloured nodes, the gem circle
    assert len(scatters) == 4
    grey, coloured, circles = scatters[1], scatters[2], scatters[3]
    assert len(grey.get_offsets()) == 1 and len(coloured.get_offsets()) == 6
    assert np.allclose(circles.get_offsets()[0], radial_layout(TREE).set_index("model_id").loc["a", ["x", "y"]])
    sizes = dict(zip(TREE["model_id"][TREE["model_id"] != "e"], coloured.get_sizes()))
    assert sizes["i"] > sizes["r"] > sizes["b"] > sizes["a"] > sizes["d"]  # log downloads
    assert len(ax.collections[0].get_segments()) == len(TREE) - 1
    assert [t.get_text() for t in ax.texts] == ["a"]


def test_atlas_needs_a_task_for_a_multi_task_report():
    accuracy = pd.DataFrame({"model_id": list(TREE["model_id"]) * 2, "task": ["t1"] * 7 + ["t2"] * 7,
                             "accuracy": np.linspace(0, 1, 14)})
    with pytest.raises(ValueError, match="task"):
        tree_atlas(TREE, accuracy)
    tree_atlas(TREE, accuracy, task="t2", gems=["d"])


def test_cumulative_accuracy_marks_10_and_5_points_below_the_best():
    acc = pd.Series([0.2, 0.3, 0.6, 0.68, 0.72, 0.75, 0.8], index=list("abcdefg"))
    assert share_below_best(acc, 0.10) == pytest.approx(4 / 7)     # below 0.70: a, b, c, d
    assert share_below_best(acc, 0.05) == pytest.approx(5 / 7)     # below 0.75: ... and e
    ax = cumulative_accuracy(acc)
    lines = ax.get_lines()
    xs = sorted(line.get_xdata()[0] for line in lines[1:])
    assert xs == pytest.approx([0.70, 0.75])
    steps = lines[0]
    assert steps.get_ydata()[-1] == pytest.approx(1.0) and list(steps.get_xdata()) == sorted(acc)
    assert any("57% below" in t.get_text() for t in ax.texts)


def test_rank_vs_budget_one_line_per_method():
    rows = [{"method": m, "budget": b, "rep": r, "rank": (3 if m == "sh" else 1) * 50 / b + r}
            for m in ("sh", "ours") for b in (10, 25, 50) for r in range(4)]
    ax = rank_vs_budget(pd.DataFrame(rows))
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"sh", "ours"}
    assert list(lines["ours"].get_xdata()) == [10, 25, 50]
    assert lines["ours"].get_ydata()[0] == pytest.approx(5 + 1.5)
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="rank"):
        rank_vs_budget(pd.DataFrame(rows).drop(columns=["rank"]))


def test_figures_save_as_png(tmp_path):
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    accuracy = pd.Series(np.linspace(0.2, 0.9, 7), index=TREE["model_id"])
    tree_atlas(TREE, accuracy, ax=axes[0])
    cumulative_accuracy(accuracy, ax=axes[1])
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 5000
