"""Write every population family's trees where `raygems sweep` can read them (experiments/statistics/data/).

Two splits with different generator seeds:
* `dev`: the trees the recommended method was designed on (the families' default seeds);
* `confirm`: fresh trees of the same families (seed + 1000; for the leaderboard family another random
  sample of 100 and other item draws), on which the final evidence is measured.

    python experiments/statistics/make_families.py --split dev
    python experiments/statistics/make_families.py --split confirm

Each tree is a folder `data/<split>/<name>/` with matrix_models_x_items.npy + index.json, models.parquet
and family.json (config and summary). The data are git-ignored; they are regenerated exactly from the seeds.
RouterBench is read from ../shared directly by the sweep configs.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from raygems.populations.families import PAPER_TREE_STATS, TREE_SEEDS, generate_calibrated, generate_dense_band, write_family
from raygems.populations.leaderboard import generate_leaderboard_tree

HERE = Path(__file__).resolve().parent
SPLIT_OFFSETS = {"dev": 0, "confirm": 1000}


def trees(split: str, include_full_leaderboard: bool):
    offset = SPLIT_OFFSETS[split]
    for tree in PAPER_TREE_STATS:
        yield f"calibrated-{tree}", lambda t=tree: generate_calibrated(t, seed=TREE_SEEDS[t] + offset)
    for tree in PAPER_TREE_STATS:
        yield f"dense-{tree}", lambda t=tree: generate_dense_band(t, seed=TREE_SEEDS[t] + offset)
    yield "leaderboard-mistral-7b", lambda: generate_leaderboard_tree(sample="paper", seed=offset)
    if include_full_leaderboard:
        yield "leaderboard-mistral-7b-all", lambda: generate_leaderboard_tree(sample="all", seed=offset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SPLIT_OFFSETS), default="dev")
    parser.add_argument("--out", default=str(HERE / "data"))
    parser.add_argument("--full-leaderboard", action="store_true", help="also the whole leaderboard tree (K ~ 2,000)")
    parser.add_argument("--only", default="", help="comma-separated tree names (default: all)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    for name, make in trees(args.split, args.full_leaderboard):
        if only and name not in only:
            continue
        start = time.perf_counter()
        tree = make()
        folder = write_family(tree, Path(args.out) / args.split / name)
        s = tree.summary()
        print(f"{name}: K={s['K']} Q={s['Q']} best={s['best']:.3f} mean={s['mean']:.3f} "
              f"base={s.get('popular_base_accuracy', float('nan')):.3f} (rank {s.get('popular_base_rank')}) "
              f"within 1 pt={s['within_1_point']} copies={s['exact_copies']} -> {folder} "
              f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
