"""`raygems tree BASE_ID`: list a base model's tree (from the hub, or a local directory) into a parquet table.

    raygems tree Qwen/Qwen2.5-3B --out qwen3b.parquet                  # fine-tunes and adapters, all depths
    raygems tree Qwen/Qwen2.5-3B --kinds finetune,adapter,quantized,merge --max-depth 2 --out tree.parquet
    raygems tree Qwen/Qwen2.5-3B --select --seed 0 --out selection.parquet   # the paper's 300 + 100 per kind
    raygems tree tiny/base --source ./tiny-hub --out tree.parquet      # a local hub layout
    raygems tree ./tiny-hub --out tree.parquet                         # its root, found from the cards
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    from raygems.hub.types import PAPER_RANDOM_MODELS, PAPER_TOP_MODELS
    from raygems.runtime.config import SearchConfig

    parser = subparsers.add_parser(
        "tree", help="list a base model's fine-tunes and adapters into a tree table (parquet)",
        description="List a base model's descendants from the hub's base_model tags (or a local hub layout), "
                    "with downloads, likes, creation date, pipeline tag, library and depth; optionally apply "
                    "the paper's selection (the most popular plus a seeded random sample, per kind).")
    parser.add_argument("base_id", metavar="BASE_ID",
                        help="hub id of the root model (or a local hub directory: its root model is used)")
    parser.add_argument("--out", required=True, type=Path, help="where to write the tree table (.parquet)")
    parser.add_argument("--kinds", default=",".join(SearchConfig.kinds),
                        help="comma-separated relations to follow: finetune,adapter,quantized,merge "
                             "(default: %(default)s, as a search's tree)")
    parser.add_argument("--max-depth", type=int, default=None,
                        help="stop this many links below the root (default: the whole tree)")
    parser.add_argument("--select", action="store_true",
                        help="keep the paper's selection: the --top most downloaded plus --random random models "
                             "per kind, and the root")
    parser.add_argument("--top", type=int, default=PAPER_TOP_MODELS,
                        help="most popular models kept per kind (default %(default)s)")
    parser.add_argument("--random", type=int, default=PAPER_RANDOM_MODELS,
                        help="random models added per kind (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random part of --select (default 0)")
    parser.add_argument("--source", default="hub",
                        help="'hub' (default) or a directory in the local hub layout")
    parser.add_argument("--token", default=None, help="hub token (default: huggingface_hub's saved token)")
    parser.add_argument("--endpoint", default=None,
                        help="hub URL, e.g. a mirror (default: $HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--retries", type=int, default=5, help="retries per hub call on 429/5xx (default 5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from raygems.errors import UsageError
    from raygems.files import check_output_path
    from raygems.hub.listing import list_tree, save_tree
    from raygems.hub.selection import paper_selection
    from raygems.hub.sources import HUB_MODEL_ID, RELATIONS, HubTreeSource, LocalTreeSource

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in RELATIONS]
    if bad or not kinds:
        raise UsageError(f"--kinds {args.kinds!r}: choose from {', '.join(RELATIONS)}")
    if args.max_depth is not None and args.max_depth < 0:
        raise UsageError(f"--max-depth must be >= 0, got {args.max_depth}")

    base_id = args.base_id
    if args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a directory; give the path of a .parquet file to write")
    check_output_path(args.out, "--out")        # (before listing the tree: its folders can be made, it can be written)
    if args.select and min(args.seed, args.top, args.random) < 0:
        raise UsageError(f"--seed {args.seed}, --top {args.top}, --random {args.random}: must be >= 0")
    if args.source != "hub":
        source = LocalTreeSource(args.source)
    elif Path(base_id).is_dir():
        source = LocalTreeSource(base_id)
        roots = source.roots()
        if len(roots) != 1:
            raise UsageError(f"{base_id} holds {len(roots)} root models {roots[:5]}: name one with "
                             f"`raygems tree ROOT_ID --source {base_id}`")
        base_id = roots[0]
    elif HUB_MODEL_ID.fullmatch(base_id):
        source = HubTreeSource(token=args.token, retries=args.retries, endpoint=args.endpoint)
    else:
        raise UsageError(f"{base_id}: no such directory (and not a hub model id such as 'org/name')")

    tree = list_tree(source, base_id, kinds=kinds, max_depth=args.max_depth, progress=not args.no_progress)
    summary = tree.groupby("kind").size().to_dict()
    if args.select:
        tree = paper_selection(tree, top=args.top, random=args.random, seed=args.seed)
    path = save_tree(tree, args.out)
    depths = tree["depth"].max()
    counts = ", ".join(f"{n} {k}" for k, n in summary.items())
    unreadable = int(tree["unreadable"].notna().sum())
    print(f"{base_id}: {counts} (depth <= {depths})"
          + (f"; selected {len(tree)}" if args.select else "")
          + (f"; {unreadable} with metadata that cannot be read (column 'unreadable': a search does not evaluate "
             f"them)" if unreadable else "") + f" -> {path}")
    return 0
