"""The sweep's report: `table.md` in the paper's layout and `rank_vs_budget.png`.

table.md (paper's Tables 2, 5, 7): rows = budget x method, the reference rows (Random Selection, Best Base)
first under "-", then every budget with the methods in the config's order (the paper's, in experiments/),
and Best Available last; one column per tree holding "mean rank / mean accuracy" of the recommended model,
the best rank and the best accuracy of each budget in bold. Below it: the same cells with standard errors,
P(top-1) / P(top-3) / budget used, and the compute time per trial. Several seeds are pooled (exactly, from
the per-seed means and standard deviations).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.sweep.config import BEST_AVAILABLE, reference_methods

TABLE_FILE = "table.md"
PLOT_FILE = "rank_vs_budget.png"
VARIANT_KEYS = ("method", "schedule", "options", "label")
MISSING = "–"
#: Cells spending more than this fraction of N*K are marked † and not eligible for bold.
OVERSPEND = 1.01
#: Row order of a table: (method, schedule, options) keys, e.g. from `variant_order(config)`.
RowOrder = list[tuple[str, str, str]] | None


# -------------------------------------------------------------------------------------------- pooling
def pool_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (tree, budget, method variant): repetitions of all seeds pooled.

    mean = sum(n_i m_i) / n; sd^2 = sum((n_i - 1) s_i^2 + n_i (m_i - mean)^2) / (n - 1); se = sd / sqrt(n).
    """
    rows = []
    for key, group in results.groupby(["tree", "budget", *VARIANT_KEYS], sort=False):
        n_i = group["reps"].to_numpy(float)
        n = n_i.sum()
        row = dict(zip(["tree", "budget", *VARIANT_KEYS], key))
        row["reps"] = int(n)
        row["seeds"] = len(group)
        for stat, sd in (("rank", group["std_rank"].to_numpy(float)),
                         ("accuracy", group["se_accuracy"].to_numpy(float) * np.sqrt(n_i))):
            m_i = group[f"mean_{stat}"].to_numpy(float)
            mean = float((n_i * m_i).sum() / n)
            ss = float(((n_i - 1) * sd ** 2 + n_i * (m_i - mean) ** 2).sum())
            row[f"mean_{stat}"] = mean
            row[f"se_{stat}"] = float(np.sqrt(ss / (n - 1)) / np.sqrt(n)) if n > 1 else 0.0
        for col in ("p_top1", "p_top3", "budget_fraction"):
            row[col] = float((n_i * group[col].to_numpy(float)).sum() / n)
        row["seconds"] = float(group["seconds"].mean())
        row["num_models"] = int(group["num_models"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def variant_order(config: Any) -> list[tuple[str, str, str]]:
    """(method, schedule, options) of every row of a config, in its order (the table's row order)."""
    return [(m.name, schedule, m.options_key()) for m in config.methods for schedule in m.schedules]


def _variant_order(pooled: pd.DataFrame, order: RowOrder) -> list[tuple]:
    """The (method, schedule, options, label) variants present, in `order` (see `variant_order`); without
    one, in the registry's method order (the paper's Table 2 order), then as first seen."""
    from raygems.bandits import list_methods

    variants = list(dict.fromkeys(tuple(r) for r in pooled[list(VARIANT_KEYS)].itertuples(index=False)))
    first_seen = {v: i for i, v in enumerate(variants)}
    by_variant = {key: i for i, key in enumerate(order or [])}
    by_method = {m: i for i, m in enumerate(list_methods())}

    def sort_key(v):
        return (by_variant.get(v[:3], len(by_variant)), by_method.get(v[0], len(by_method)), first_seen[v])

    return sorted(variants, key=sort_key)


# ---------------------------------------------------------------------------------------------- tables
def _blocks(pooled: pd.DataFrame, row_order: RowOrder) -> list[tuple[str, list[tuple]]]:
    """(budget label, variants) blocks: references, then each budget, then Best Available."""
    variants = _variant_order(pooled, row_order)
    references = reference_methods()
    refs = [v for v in variants if v[0] in references]
    blocks = [("-", [(0, v) for v in refs])] if refs else []
    spending = [v for v in variants if v[0] not in references and v[0] != BEST_AVAILABLE]
    for budget in sorted(b for b in pooled["budget"].unique() if b > 0):
        present = set(map(tuple, pooled.loc[pooled["budget"] == budget, list(VARIANT_KEYS)].itertuples(index=False)))
        blocks.append((str(budget), [(budget, v) for v in spending if v in present]))
    best = [v for v in variants if v[0] == BEST_AVAILABLE]
    if best:
        blocks.append(("", [(0, v) for v in best]))
    return blocks


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _tree_columns(pooled: pd.DataFrame, trees: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(pooled["tree"]))
    return [t for t in (trees or present) if t in present]


def main_table(pooled: pd.DataFrame, trees: list[str] | None = None, row_order: RowOrder = None) -> str:
    """The paper's table: "rank / accuracy" per tree, best of each budget block in bold."""
    trees = _tree_columns(pooled, trees)
    index = pooled.set_index(["tree", "budget", *VARIANT_KEYS])
    size = pooled.groupby("tree")["num_models"].first()
    header = ["Queries per model", "Method"] + [f"{t} (K={size[t]}): Rank ↓ / Acc ↑" for t in trees]
    rows = []
    for budget_label, cells in _blocks(pooled, row_order):
        best_rank, best_acc = {}, {}
        if budget_label not in ("-", ""):
            for tree in trees:
                block = [index.loc[(tree, b, *v)] for b, v in cells if (tree, b, *v) in index.index]
                block = [r for r in block if r["budget_fraction"] <= OVERSPEND]
                if block:
                    best_rank[tree] = min(round(r["mean_rank"], 1) for r in block)
                    best_acc[tree] = max(round(r["mean_accuracy"], 3) for r in block)
        for i, (budget, variant) in enumerate(cells):
            row = [budget_label if i == 0 else "", variant[3]]
            for tree in trees:
                key = (tree, budget, *variant)
                if key not in index.index:
                    row.append(MISSING)
                    continue
                r = index.loc[key]
                rank, acc = f"{r['mean_rank']:.1f}", f"{r['mean_accuracy']:.3f}"
                eligible = r["budget_fraction"] <= OVERSPEND
                if eligible and best_rank.get(tree) == round(r["mean_rank"], 1):
                    rank = f"**{rank}**"
                if eligible and best_acc.get(tree) == round(r["mean_accuracy"], 3):
                    acc = f"**{acc}**"
                row.append(f"{rank} / {acc}" + (" †" if r["budget_fraction"] > OVERSPEND else ""))
            rows.append(row)
    return _markdown(header, rows)


def detail_table(pooled: pd.DataFrame, fmt, trees: list[str] | None = None,
                 row_order: RowOrder = None, header_suffix: str = "") -> str:
    """The table's layout with `fmt(row) -> str` in every cell (standard errors, P(top-k), ...)."""
    trees = _tree_columns(pooled, trees)
    index = pooled.set_index(["tree", "budget", *VARIANT_KEYS])
    header = ["Queries per model", "Method"] + [f"{t}{header_suffix}" for t in trees]
    rows = []
    for budget_label, cells in _blocks(pooled, row_order):
        for i, (budget, variant) in enumerate(cells):
            row = [budget_label if i == 0 else "", variant[3]]
            for tree in trees:
                key = (tree, budget, *variant)
                row.append(fmt(index.loc[key]) if key in index.index else MISSING)
            rows.append(row)
    return _markdown(header, rows)


def compute_table(results: pd.DataFrame, trees: list[str] | None = None,
                  row_order: RowOrder = None) -> str:
    """Seconds of replay per trial (one seed, all budgets of a tree): anytime methods run once to the
    largest budget (their per-budget `seconds` are cumulative), the others once per budget."""
    from raygems.bandits import get_method

    spending = results[~results["method"].isin([*reference_methods(), BEST_AVAILABLE])]
    if spending.empty:
        return ""
    trees = _tree_columns(spending, trees)
    per_trial = []
    for key, group in spending.groupby(["tree", *VARIANT_KEYS, "seed"], sort=False):
        anytime = get_method(key[1]).anytime and len(group) > 1
        per_trial.append(dict(zip(["tree", *VARIANT_KEYS, "seed"], key),
                              seconds=group["seconds"].max() if anytime else group["seconds"].sum()))
    frame = pd.DataFrame(per_trial).groupby(["tree", *VARIANT_KEYS], sort=False)["seconds"].mean().reset_index()
    frame["budget"] = 1
    index = frame.set_index(["tree", *VARIANT_KEYS])
    rows = []
    for variant in _variant_order(frame, row_order):
        rows.append([variant[3]] + [f"{index.loc[(t, *variant), 'seconds']:.2f}" if (t, *variant) in index.index
                                    else MISSING for t in trees])
    total = frame["seconds"].sum()
    return _markdown(["Method"] + trees, rows) + f"\n\nTotal: {total:.0f} s of replay (per seed)."


def render_table(results: pd.DataFrame, config: Any = None, title: str | None = None) -> str:
    """The whole table.md text for a results frame (results.parquet rows of one sweep)."""
    pooled = pool_seeds(results)
    trees = [t.name for t in config.trees] if config is not None else None
    order = variant_order(config) if config is not None else None
    name = title or (config.name if config is not None else "sweep")
    reps = pooled.groupby("tree")["reps"].max()
    seeds = sorted(results["seed"].unique().tolist())
    parts = [f"# {name}", ""]
    if config is not None and config.description:
        parts += [config.description.strip(), ""]
    parts += [
        "Mean rank (1 = the best model of the tree; ↓) and mean true accuracy (↑) of the model each method "
        "recommends, over " + ", ".join(f"{t}: {reps[t]}" for t in _tree_columns(pooled, trees))
        + f" repetitions (seeds {', '.join(map(str, seeds))}). Best rank and best accuracy of each budget in "
        "bold; †: spent more than the budget N·K (not eligible for bold; see the budget column below); '–': not "
        "run (e.g. Best Base needs a models table with downloads). "
        f"Generated by `raygems sweep` on {_dt.date.today().isoformat()}; {_code_note(results)}",
        "",
        main_table(pooled, trees, order),
        "",
        "## Standard errors",
        "",
        "Mean ± standard error of the mean over the repetitions.",
        "",
        detail_table(pooled, lambda r: f"{r['mean_rank']:.1f} ± {r['se_rank']:.1f} / "
                                       f"{r['mean_accuracy']:.3f} ± {r['se_accuracy']:.3f}", trees, order,
                     ": Rank / Acc"),
        "",
        "## Top-k hits and budget used",
        "",
        "P(rank = 1) / P(rank ≤ 3) / mean evaluations spent as a fraction of the budget N·K (above 1: the "
        "schedule overspends, e.g. the literal Table 4 on trees much smaller than 1,500 models).",
        "",
        detail_table(pooled[~pooled["method"].isin([BEST_AVAILABLE])],
                     lambda r: f"{r['p_top1']:.2f} / {r['p_top3']:.2f} / {r['budget_fraction']:.2f}", trees, order,
                     ": P(top-1) / P(top-3) / budget"),
    ]
    compute = compute_table(results, trees, order)
    if compute:
        parts += ["", "## Replay time", "",
                  "Seconds per trial (one tree, one method variant, one seed, every budget), as measured inside "
                  "the trial (`seconds` column of results.parquet).", "", compute]
    return "\n".join(parts) + "\n"


def _code_note(results: pd.DataFrame) -> str:
    """Which versions of the algorithms (raygems.bandits/replay/populations) produced the rows."""
    if "code_version" not in results.columns:
        return "the code version of the rows is unknown."
    versions = results.loc[results["code_version"] != "-", "code_version"].value_counts()
    if versions.empty:
        return "no replayed rows."
    if len(versions) == 1:
        return f"every row by the same code (core code version `{versions.index[0]}`)."
    listed = ", ".join(f"`{v}` ({n} rows)" for v, n in versions.items())
    return (f"**the rows come from {len(versions)} versions of the algorithms' code** ({listed}; see the "
            "`code_version` column of results.parquet; `--fresh` reruns every cell with the current code).")


# ------------------------------------------------------------------------------------------------ plot
def plot_rank_vs_budget(results: pd.DataFrame, per_rep: pd.DataFrame | None, path: str | Path,
                        trees: list[str] | None = None, row_order: RowOrder = None) -> Path:
    """One panel per tree: mean rank of the recommended model against the budget (log-log), one line per
    method variant with a +-1 standard-error band (from the per-repetition ranks), Best Base dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    from raygems.analysis.plots import rank_vs_budget

    spending = results[(results["budget"] > 0)]
    trees = [t for t in (trees or list(dict.fromkeys(results["tree"]))) if t in set(spending["tree"])]
    if not trees:
        raise ValueError("no budget-spending cells to plot")
    labels = results.drop_duplicates(["method", "schedule", "options"]).set_index(
        ["method", "schedule", "options"])["label"]
    if per_rep is not None and not per_rep.empty:
        data = per_rep[per_rep["budget"] > 0].copy()
        data["label"] = [labels.get((m, s, o), m) for m, s, o in
                         zip(data["method"], data["schedule"], data["options"])]
        y, errorbars = "rank", True
    else:
        data, y, errorbars = spending.copy(), "mean_rank", False
    hue_order = _variant_order(spending, row_order)
    data["label"] = pd.Categorical(data["label"], categories=list(dict.fromkeys(v[3] for v in hue_order)),
                                   ordered=True)
    cols = min(len(trees), 3)
    rows = int(np.ceil(len(trees) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, tree in zip(axes.flat, trees):
        part = data[data["tree"] == tree]
        part = part.assign(label=part["label"].cat.remove_unused_categories())
        rank_vs_budget(part, x="budget", y=y, hue="label", ax=ax, logx=True, errorbars=errorbars,
                       title=f"{tree} (K={int(results.loc[results['tree'] == tree, 'num_models'].iloc[0])})")
        base = results[(results["tree"] == tree) & (results["method"] == "best-base")]
        if not base.empty:
            ax.axhline(float(base["mean_rank"].mean()), color="0.4", linestyle="--", linewidth=1, label="Best Base")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylabel("mean rank of the pick (log)")
        ax.set_xlabel("queries per model N")
        budgets = sorted(part["budget"].unique())
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
        ax.minorticks_off()
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    for ax in list(axes.flat)[len(trees):]:
        ax.set_axis_off()
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * int(np.ceil(len(names) / 5)), 1, 1))
    path = Path(path)
    _save_small_png(fig, path)
    plt.close(fig)
    return path


def _save_small_png(fig, path: Path, dpi: int = 100) -> None:
    """Save as a 256-colour PNG: the translucent bands make a true-colour PNG 3-4x larger, for no
    visible gain (the plots are committed under experiments/results/)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)


def write_report(results: pd.DataFrame, out_dir: str | Path, config: Any = None,
                 per_rep: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write DIR/table.md and DIR/rank_vs_budget.png; return their paths."""
    out_dir = Path(out_dir)
    files = {"table": out_dir / TABLE_FILE}
    files["table"].write_text(render_table(results, config))
    if (results["budget"] > 0).any():
        trees = [t.name for t in config.trees] if config is not None else None
        order = variant_order(config) if config is not None else None
        files["plot"] = plot_rank_vs_budget(results, per_rep, out_dir / PLOT_FILE, trees, order)
    return files
