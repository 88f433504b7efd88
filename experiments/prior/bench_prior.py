"""Speed of the prior: training on both leaderboard snapshots, and ranking 100,000 candidates.

    OMP_NUM_THREADS=1 python experiments/prior/bench_prior.py --threads 1 --out experiments/prior/results
    (targets from the issue: training < 10 min on 2 cores; ranking 100,000 candidates < 10 s)

Candidates for the ranking benchmark are leaderboard models resampled with fresh ids (unseen by the prior,
so every one goes through the metadata path), 100,000 by default. Records wall and CPU seconds and the
machine's load average, because other processes share the cores (wall time on a loaded machine is mostly
waiting for a core).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from raygems.prior import (ModelPrior, PriorConfig, model_table, records_from_leaderboard_v1,  # noqa: E402
                           records_from_leaderboard_v2)

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "experiments/prior/results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    board = args.shared / "data/leaderboard"
    start = time.perf_counter()
    records = pd.concat([records_from_leaderboard_v1(board / "huggingface_v1_2024-07-07.csv"),
                         records_from_leaderboard_v2(board / "huggingface_v2_2025-03-21.csv")], ignore_index=True)
    convert_seconds = time.perf_counter() - start
    config = PriorConfig(num_threads=args.threads, **({"steps": args.steps} if args.steps else {}))
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    prior = ModelPrior(config).fit(records)
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    load_after = os.getloadavg()
    saved = Path(tempfile.mkdtemp(prefix="raygems-prior-bench-"))
    prior.save(saved)

    models = model_table(records)
    rng = np.random.default_rng(0)
    picks = rng.integers(len(models), size=args.candidates)
    candidates = models.iloc[picks].reset_index(drop=True)
    candidates["model_id"] = [f"{m}-ft{i}" for i, m in enumerate(candidates["model_id"])]
    loaded = ModelPrior.load(saved)
    load_rank = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    ranked = loaded.rank(candidates, "gsm8k")
    rank_seconds, rank_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start, cpu_start = time.perf_counter(), time.process_time()
    loaded.beliefs(candidates, "gsm8k", strength=1.0)
    beliefs_seconds, beliefs_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
        "threads": args.threads, "records": len(records), "models": int(records["model_id"].nunique()),
        "steps": config.steps, "convert_seconds": round(convert_seconds, 1),
        "fit_seconds": round(fit_seconds, 1), "fit_cpu_seconds": round(fit_cpu, 1),
        "load_average_before_after": [round(x, 2) for x in (*load_before[:1], *load_after[:1])],
        "rank_candidates": args.candidates, "load_average_at_rank": round(load_rank, 2),
        "rank_seconds": round(rank_seconds, 2), "rank_cpu_seconds": round(rank_cpu, 2),
        "beliefs_seconds": round(beliefs_seconds, 2), "beliefs_cpu_seconds": round(beliefs_cpu, 2),
        "top3": ranked["model_id"].head(3).tolist(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_threads{args.threads}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    shutil.rmtree(saved)


if __name__ == "__main__":
    main()
