"""The methods compared in hours (docs/cost.md): each method's search, and exhaustive evaluation, planned
(`raygems.plan`) on the trees of docs/statistics.md's evidence at 7B checkpoint size, with the H100 numbers of
../shared/FIELD-NOTES.md and stated bandwidths; mean ranks from that evidence run.

    python experiments/cost/hours.py [--out experiments/cost/results] [--quick]

Writes OUT/hours.csv (one row per tree, method, N, cluster, bandwidth, variant), OUT/rank_vs_gpu_hours.png and
prints the tables of docs/cost.md. `--quick`: one tree, two methods (a smoke run).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.plan import EXHAUSTIVE, Cluster, Speeds, simulate
from raygems.plan.model import SEVEN_B_BYTES
from raygems.plan.workload import work_for_matrix

HERE = Path(__file__).resolve().parent
EVIDENCE = HERE.parent / "statistics" / "results" / "evidence" / "results.parquet"


def trees() -> dict:
    """The confirm-split trees of the statistics evidence (experiments/statistics/make_families.py)."""
    from raygems.populations import generate_calibrated, generate_leaderboard_tree
    from raygems.populations.families import TREE_SEEDS

    return {
        "Cal-Mistral-7B": lambda: generate_calibrated("mistral-7b", seed=TREE_SEEDS["mistral-7b"] + 1000).matrix,
        "Cal-Qwen-7B": lambda: generate_calibrated("qwen-7b", seed=TREE_SEEDS["qwen-7b"] + 1000).matrix,
        "LB-Mistral-7B-all": lambda: generate_leaderboard_tree(sample="all", seed=1000).matrix,
    }


METHODS = ("recommended", "ours-sh-schedule", "sequential-halving", "bayes-elim", "successive-rejects", "ours",
           "uniform", "ucb-e")
#: The correlated methods (--lookahead needs a shared query order; plain SH samples independently).
LOOKAHEAD_METHODS = ("recommended", "ours-sh-schedule", "ours")
BUDGETS = (10, 25, 50, 100)
#: UCB-E asks one query of one model per round: 100k+ rounds at N = 100 on K = 2,000; two budgets show it.
BUDGETS_OF = {"ucb-e": (10, 50)}
#: A 7B model per slot, one slot per GPU; every node's local disk holds at most 3 TB of checkpoints.
CACHE_LIMIT = 3 * 10 ** 12
CLUSTERS = {
    "1 GPU": Cluster(nodes=1, gpus_per_node=1, max_loaded=1, cache_limit_bytes=CACHE_LIMIT),
    "8 GPUs": Cluster(nodes=1, gpus_per_node=8, max_loaded=8, cache_limit_bytes=CACHE_LIMIT),
}
BANDWIDTHS = {"1 Gbit/s": 125e6, "10 Gbit/s": 1.25e9}
#: H100, transformers generate, 7B (FIELD-NOTES): 65 ms per decode step at any batch size, 7.5 s to load
#: 15.2 GB; the backend's batch 64 = one chunk of 32 queries x 2 prompt variants.
SPEEDS = Speeds(batch_size=64)
SEED = 1          # the evidence run's repetition seed: its repetition 0


def plan_row(tree: str, matrix, method: str, budget: int, cluster_name: str, bandwidth_name: str,
             lookahead: bool = False) -> dict:
    work = work_for_matrix(matrix, method=method if method != EXHAUSTIVE else "recommended", budget=budget,
                           seed=SEED, checkpoint_bytes=SEVEN_B_BYTES)
    work.method = method
    speeds = replace(SPEEDS, download_bandwidth=BANDWIDTHS[bandwidth_name])
    started = time.perf_counter()
    plan = simulate(work, CLUSTERS[cluster_name], speeds, lookahead=lookahead)
    return {"tree": tree, "K": matrix.num_models, "Q": matrix.num_queries, "method": method,
            "N": budget if method != EXHAUSTIVE else None, "cluster": cluster_name, "bandwidth": bandwidth_name,
            "lookahead": lookahead, "wall_h": plan.wall_s / 3600, "gpu_hours": plan.gpu_hours,
            "gpu_busy_hours": plan.gpu_busy_hours, "search_h": plan.search_s / 3600, "final_h": plan.final_s / 3600,
            "fetch_tb": plan.fetch_bytes / 1e12, "peak_cache_tb": plan.peak_cache_bytes / 1e12,
            "loads": plan.loads, "reloads": plan.reloads, "rounds": plan.rounds, "calls": plan.calls,
            "pairs_paid": plan.queries_paid, "budget_used": plan.budget_used, "decode_h": plan.decode_s / 3600,
            "load_h": plan.load_s / 3600, "fetch_floor_h": plan.fetch_floor_s / 3600,
            "compute_floor_h": plan.compute_floor_s / 3600, "chosen_rank": int(matrix.ranks()[plan.chosen]),
            "simulated_s": round(time.perf_counter() - started, 2)}


def run(out: Path, quick: bool, only: list[str] | None = None) -> pd.DataFrame:
    """Plan every cell (or, with `only`, those methods' cells, replacing theirs in OUT/hours.csv)."""
    rows = []
    chosen_trees = dict(list(trees().items())[:1]) if quick else trees()
    methods = only or (METHODS[:2] if quick else (EXHAUSTIVE, *METHODS))
    for tree, make in chosen_trees.items():
        matrix = make()
        for cluster in CLUSTERS:
            for bandwidth in BANDWIDTHS:
                for method in methods:
                    for budget in ((50,) if method == EXHAUSTIVE else BUDGETS_OF.get(method, BUDGETS)):
                        rows.append(plan_row(tree, matrix, method, budget, cluster, bandwidth))
                        if method in LOOKAHEAD_METHODS:
                            rows.append(plan_row(tree, matrix, method, budget, cluster, bandwidth, lookahead=True))
                print(f"{tree} {cluster} {bandwidth}: {len(rows)} plans", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    if only and (out / "hours.csv").is_file():
        kept = pd.read_csv(out / "hours.csv")
        frame = pd.concat([kept[~kept["method"].isin(only)], frame], ignore_index=True)
    frame.to_csv(out / "hours.csv", index=False)
    return frame


def with_ranks(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean rank (100 repetitions, docs/statistics.md's evidence) per tree, method and N; exhaustive: 1."""
    evidence = pd.read_parquet(EVIDENCE)
    evidence = evidence[evidence["schedule"].isna() | (evidence["schedule"] != "table4_literal")]
    ranks = evidence.set_index(["tree", "method", "budget"])[["mean_rank", "se_rank"]]
    out = frame.copy()
    keys = list(zip(out["tree"], out["method"], out["N"].fillna(0).astype(int)))
    out["mean_rank"] = [1.0 if m == EXHAUSTIVE else ranks["mean_rank"].get(k, np.nan)
                        for m, k in zip(out["method"], keys)]
    out["se_rank"] = [0.0 if m == EXHAUSTIVE else ranks["se_rank"].get(k, np.nan) for m, k in zip(out["method"], keys)]
    return out


def plot(frame: pd.DataFrame, path: Path, cluster: str = "8 GPUs", bandwidth: str = "10 Gbit/s") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = frame[(frame["cluster"] == cluster) & (frame["bandwidth"] == bandwidth) & ~frame["lookahead"]]
    tree_names = list(dict.fromkeys(data["tree"]))
    fig, axes = plt.subplots(1, len(tree_names), figsize=(5.2 * len(tree_names), 4.4), squeeze=False)
    for ax, tree in zip(axes[0], tree_names):
        part = data[data["tree"] == tree]
        for method in [m for m in METHODS if m in set(part["method"])]:
            rows = part[part["method"] == method].sort_values("N")
            ax.plot(rows["gpu_hours"], rows["mean_rank"], marker="o", label=method,
                    linewidth=2.2 if method == "recommended" else 1.2)
            if method == "recommended":
                for _, row in rows.iterrows():
                    ax.annotate(f"N={int(row['N'])}", (row["gpu_hours"], row["mean_rank"]), fontsize=7,
                                textcoords="offset points", xytext=(4, 4))
        ahead = frame[(frame["tree"] == tree) & (frame["cluster"] == cluster) & (frame["bandwidth"] == bandwidth)
                      & frame["lookahead"] & (frame["method"] == "recommended")].sort_values("N")
        ax.plot(ahead["gpu_hours"], ahead["mean_rank"], marker="o", linestyle="--", color="tab:blue",
                label="recommended --lookahead")
        exhaustive = part[part["method"] == EXHAUSTIVE]
        ax.scatter(exhaustive["gpu_hours"], exhaustive["mean_rank"], marker="*", s=140, color="black",
                   label="exhaustive", zorder=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"GPU-hours ({cluster}, {bandwidth}, 7B, H100)")
        ax.set_ylabel("mean rank of the found model")
        ax.set_title(f"{tree} (K = {int(part['K'].iloc[0])})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


SHOWN = ("recommended", "ours-sh-schedule", "sequential-halving", "ours", "uniform", "ucb-e", EXHAUSTIVE)
SETTINGS_SHOWN = (("1 GPU", "1 Gbit/s"), ("8 GPUs", "10 Gbit/s"))


def _cell(row) -> str:
    return f"{row['gpu_hours']:.0f} ({row['wall_h']:.1f} h)" if row["gpu_hours"] >= 10 else \
        f"{row['gpu_hours']:.1f} ({row['wall_h']:.1f} h)"


def _rows(frame: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows of `frame` whose columns equal the given values."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def report(frame: pd.DataFrame) -> str:
    """The tables of docs/cost.md, in markdown."""
    plain = frame[~frame["lookahead"].astype(bool)]
    tree_names = list(dict.fromkeys(plain["tree"]))
    lines = []
    for cluster, bandwidth in SETTINGS_SHOWN:
        part = _rows(plain, cluster=cluster, bandwidth=bandwidth)
        sizes = [f"{t} (K = {int(_rows(part, tree=t)['K'].iloc[0])})" for t in tree_names]
        lines += [f"\n**{cluster}, {bandwidth}**: GPU-hours (wall hours), mean rank\n",
                  "| method | N | " + " | ".join(sizes) + " |", "|---|---|" + "---|" * len(tree_names)]
        for method in SHOWN:
            for budget in ((None,) if method == EXHAUSTIVE else (10, 50)):
                cells = []
                for tree in tree_names:
                    rows = _rows(part, tree=tree, method=method)
                    rows = rows if budget is None else _rows(rows, N=budget)
                    cells.append("–" if rows.empty else
                                 f"{_cell(rows.iloc[0])}, rank {rows.iloc[0]['mean_rank']:.1f}")
                lines.append(f"| {method} | {'all' if budget is None else budget} | " + " | ".join(cells) + " |")
    lines += ["\n**The cheapest way to each rank** (GPU-hours, mean rank): every (method, N) that no cheaper one "
              "beats in rank, `+la` = `--lookahead`\n", "| tree | setting | frontier |", "|---|---|---|"]
    for tree in tree_names:
        for cluster, bandwidth in SETTINGS_SHOWN:
            part = _rows(frame, tree=tree, cluster=cluster, bandwidth=bandwidth)
            best, points = np.inf, []
            for _, row in part.sort_values(["gpu_hours", "mean_rank"]).iterrows():
                if row["mean_rank"] < best:
                    best = row["mean_rank"]
                    name = row["method"] + ("+la" if row["lookahead"] else "")
                    n = "" if row["method"] == EXHAUSTIVE else f" N={int(row['N'])}"
                    points.append(f"{name}{n} {row['gpu_hours']:.0f} h, {row['mean_rank']:.1f}")
            lines.append(f"| {tree} | {cluster}, {bandwidth} | " + "; ".join(points) + " |")
    lines += ["\n**The paper's \"50x\" in hours**: exhaustive / method, in evaluated pairs and in GPU-hours\n",
              "| tree | N | method | pairs | GPU-h, 1 GPU 1 Gbit/s | GPU-h, 8 GPUs 10 Gbit/s |",
              "|---|---|---|---|---|---|"]
    for tree in tree_names:
        for budget in (10, 50):
            for method in [m for m in ("recommended", "ours") if m in set(plain["method"])]:
                cells = []
                for cluster, bandwidth in SETTINGS_SHOWN:
                    part = _rows(plain, tree=tree, cluster=cluster, bandwidth=bandwidth)
                    exhaustive = _rows(part, method=EXHAUSTIVE).iloc[0]
                    row = _rows(part, method=method, N=budget).iloc[0]
                    cells.append(f"{exhaustive['gpu_hours'] / row['gpu_hours']:.1f}x")
                pairs = exhaustive["pairs_paid"] / row["budget_used"]
                lines.append(f"| {tree} | {budget} | {method} | {pairs:.0f}x | " + " | ".join(cells) + " |")
    lines += ["\n**recommended against the halving methods** (8 GPUs, 10 Gbit/s): GPU-hours, mean rank, and the "
              "GPU-hours each would need for recommended's rank (log-log interpolation over N = 10..100)\n",
              "| tree | N | recommended | sequential-halving | its hours at recommended's rank | ours-sh-schedule "
              "| its hours at recommended's rank |", "|---|---|---|---|---|---|---|"]
    part = _rows(plain, cluster="8 GPUs", bandwidth="10 Gbit/s")
    for tree in tree_names:
        for budget in BUDGETS:
            rec = _rows(part, tree=tree, method="recommended", N=budget).iloc[0]
            cells = [f"{rec['gpu_hours']:.1f}, rank {rec['mean_rank']:.1f}"]
            for other in ("sequential-halving", "ours-sh-schedule"):
                rows = _rows(part, tree=tree, method=other).sort_values("N")
                if rows.empty:
                    cells += ["–", "–"]
                    continue
                row = _rows(rows, N=budget).iloc[0]
                cells += [f"{row['gpu_hours']:.1f}, rank {row['mean_rank']:.1f}",
                          _hours_at_rank(rows, rec["mean_rank"])]
            lines.append(f"| {tree} | {budget} | " + " | ".join(cells) + " |")
    lines += ["\n**The load-aware variant** (`--lookahead`): GPU-hours, TB fetched, reloads, pairs paid; "
              "without -> with\n", "| tree | N | method | setting | GPU-h | TB fetched | reloads | pairs paid |",
              "|---|---|---|---|---|---|---|---|"]
    for tree in tree_names:
        for budget in (10, 50):
            for method in LOOKAHEAD_METHODS:
                for cluster, bandwidth in SETTINGS_SHOWN:
                    rows = _rows(frame, tree=tree, method=method, N=budget, cluster=cluster, bandwidth=bandwidth)
                    if rows["lookahead"].nunique() < 2:
                        continue
                    a, b = rows[~rows["lookahead"]].iloc[0], rows[rows["lookahead"]].iloc[0]
                    change = b["gpu_hours"] / a["gpu_hours"] - 1
                    lines.append(f"| {tree} | {budget} | {method} | {cluster}, {bandwidth} | "
                                 f"{a['gpu_hours']:.1f} -> {b['gpu_hours']:.1f} ({change:+.0%}) | "
                                 f"{a['fetch_tb']:.1f} -> {b['fetch_tb']:.1f} | {a['reloads']} -> {b['reloads']} | "
                                 f"{a['pairs_paid']} -> {b['pairs_paid']} |")
    return "\n".join(lines)


def _hours_at_rank(rows: pd.DataFrame, rank: float) -> str:
    """GPU-hours at which a method's rank-vs-hours curve (over N) reaches `rank` (log-log interpolation)."""
    hours, ranks = np.log(rows["gpu_hours"].to_numpy()), np.log(rows["mean_rank"].to_numpy())
    if np.exp(ranks.min()) > rank:
        return f"> {np.exp(hours.max()):.0f} (best rank {np.exp(ranks.min()):.1f} at N = 100)"
    if np.exp(ranks.max()) < rank:
        return f"< {np.exp(hours[np.argmax(ranks)]):.1f} (rank {np.exp(ranks.max()):.1f} at N = 10)"
    order = np.argsort(ranks)
    return f"{np.exp(np.interp(np.log(rank), ranks[order], hours[order])):.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="read OUT/hours.csv instead of planning again")
    parser.add_argument("--only", help="comma-separated methods to plan again (their rows in OUT/hours.csv replaced)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    only = args.only.split(",") if args.only else None
    frame = pd.read_csv(out / "hours.csv") if args.reuse else run(out, args.quick, only)
    frame = with_ranks(frame)
    frame.to_csv(out / "hours_with_ranks.csv", index=False)
    plot(frame, out / "rank_vs_gpu_hours.png")
    text = report(frame)
    (out / "tables.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
