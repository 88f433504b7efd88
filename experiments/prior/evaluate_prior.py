"""The paper's three evaluations of the prior on the Open LLM Leaderboard snapshots, with baselines.

    OMP_NUM_THREADS=1 python experiments/prior/evaluate_prior.py --out experiments/prior/results
    (--splits completion temporal tasks, --tasks gsm8k mmlu_pro ..., --steps 2000, --seed 0)

Writes `<out>/results.csv` (one row per split, held-out task, evaluation group and method) and
`<out>/summary.md` (means over tasks per split and method; per-task wtau tables). Every ranker is fitted
on the same training records of each split (see raygems/prior/evaluation.py).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from raygems.prior import PriorConfig, records_from_leaderboard_v1, records_from_leaderboard_v2  # noqa: E402
from raygems.prior.evaluation import (completion_split, default_rankers, evaluate_rankers, summarise,  # noqa: E402
                                      task_split, temporal_split)

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "experiments/prior/results")
    parser.add_argument("--splits", nargs="+", default=["completion", "temporal", "tasks"],
                        choices=["completion", "temporal", "tasks"])
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to hold out one at a time (default: all)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary-only", action="store_true",
                        help="rewrite summary.md from an existing results.csv (e.g. of an interrupted run)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.summary_only:
        config = PriorConfig(calibration_fraction=0.0, seed=args.seed, **({"steps": args.steps} if args.steps else {}))
        write_summary(pd.read_csv(args.out / "results.csv"), args.out / "summary.md", config, float("nan"))
        return
    torch.set_num_threads(1)

    board = args.shared / "data/leaderboard"
    records = pd.concat([records_from_leaderboard_v1(board / "huggingface_v1_2024-07-07.csv"),
                         records_from_leaderboard_v2(board / "huggingface_v2_2025-03-21.csv")], ignore_index=True)
    config = PriorConfig(calibration_fraction=0.0, seed=args.seed)
    if args.steps:
        config = PriorConfig(calibration_fraction=0.0, seed=args.seed, steps=args.steps)
    splits: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []
    if "completion" in args.splits:
        splits.append(("completion", *completion_split(records, 0.2, seed=args.seed)))
    if "temporal" in args.splits:
        splits.append(("unseen_models", *temporal_split(records, 0.2)))
    if "tasks" in args.splits:
        for task in args.tasks or sorted(records["task"].unique()):
            splits.append((f"unseen_task:{task}", *task_split(records, task)))

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.csv"
    frames = []
    started = time.perf_counter()
    for name, train, test in splits:
        print(f"{name}: {len(train)} training records, {len(test)} test records of {test['model_id'].nunique()} models",
              flush=True)
        frames.append(evaluate_rankers(train, test, default_rankers(config, seed=args.seed), split=name,
                                       shuffle_seed=args.seed, log=lambda line: print("  " + line, flush=True)))
        pd.concat(frames).to_csv(results_path, index=False)        # keep partial results
    results = pd.concat(frames, ignore_index=True)
    results.to_csv(results_path, index=False)
    write_summary(results, args.out / "summary.md", config, time.perf_counter() - started)
    print(f"wrote {results_path} and {args.out / 'summary.md'}")


def write_summary(results: pd.DataFrame, path: Path, config: PriorConfig, seconds: float) -> None:
    results = results.copy()
    results["split_kind"] = results["split"].str.split(":").str[0]
    table = summarise(results.assign(split=results["split_kind"]))
    lines = [f"# Prior evaluation ({time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
             f"{seconds / 60:.1f} min)", "",
             f"ModelLens config: steps={config.steps}, id_dropout_model={config.id_dropout_model}, "
             f"list_size={config.list_size}, seed={config.seed}", "",
             "## Mean over tasks", "", markdown_table(table.reset_index()), ""]
    for kind, group in results.groupby("split_kind"):
        pivot = group.pivot_table(index="task", columns="method", values="wtau").round(3)
        lines += [f"## {kind}: weighted Kendall tau per task", "", markdown_table(pivot.reset_index()), ""]
    path.write_text("\n".join(lines))


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


if __name__ == "__main__":
    main()
