"""`python -m raygems.demo.builder`: train the tiny tree's weights, check a fresh build against the shipped
files, or replace the shipped files.

    python -m raygems.demo.builder build --out DIR [--main-steps N] [--measure]   # train (~1 min on 2 cores)
    python -m raygems.demo.builder check                                          # build afresh, compare
    python -m raygems.demo.builder ship                                           # build, measure, replace

`check` says whether a fresh build gives the same kind of tree (models, files, tensor layouts, configs,
tokenizer: it must) and how far its weights and accuracies are from the shipped ones (on the CPU that built
the shipped files, nowhere; on another CPU, they may differ: that is why the files are shipped).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raygems.demo.builder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="train the weights into a new folder of built files")
    build.add_argument("--out", required=True, type=Path)
    build.add_argument("--measure", action="store_true", help="also measure and record the quality ladder")
    check = sub.add_parser("check", help="build afresh and compare with the shipped files")
    check.add_argument("--files", type=Path, help="compare against these built files (default: the shipped ones)")
    sub.add_parser("ship", help="build, measure, and replace the shipped files")
    for p in (build, check, sub.choices["ship"]):
        p.add_argument("--main-steps", type=int, default=None, help="main run length (default: the configured 800)")
        p.add_argument("--workers", type=int, default=None, help="1 or 2 processes (default: 2 on >= 2 cores)")
    args = parser.parse_args(argv)

    from raygems.demo.builder.build import build_files
    from raygems.demo.tiny_tree import SHIPPED_FILES
    from raygems.demo.tree_spec import TinyTreeConfig

    config = TinyTreeConfig() if args.main_steps is None else TinyTreeConfig(main_steps=args.main_steps)
    if args.command == "build":
        build_files(args.out, config, workers=args.workers)
        if args.measure:
            _record_ladder(args.out)
        print(f"built files in {args.out}")
        return 0
    with tempfile.TemporaryDirectory(prefix="tiny-tree-build-") as scratch:
        fresh = build_files(Path(scratch) / "files", config, workers=args.workers)
        if args.command == "ship":
            _record_ladder(fresh)
            shutil.rmtree(SHIPPED_FILES, ignore_errors=True)
            shutil.copytree(fresh, SHIPPED_FILES)
            print(f"shipped files replaced: {SHIPPED_FILES}")
            return 0
        return _check(fresh, args.files or SHIPPED_FILES)


def _record_ladder(files: Path) -> None:
    from raygems.demo.builder.build import write_files_manifest
    from raygems.demo.builder.measure import ladder_accuracies
    from raygems.demo.tiny_tree import FILES_MANIFEST, install_tiny_tree
    from raygems.demo.tree_spec import TinyTreeConfig

    manifest = json.loads((files / FILES_MANIFEST).read_text())
    with tempfile.TemporaryDirectory(prefix="tiny-tree-") as root:
        accuracy = ladder_accuracies(install_tiny_tree(Path(root) / "tree", files=files))
    write_files_manifest(files, TinyTreeConfig.from_dict(manifest["config"]), manifest["built_on"]["build_seconds"], accuracy=accuracy)


def _check(fresh: Path, reference: Path) -> int:
    from raygems.demo.builder.compare import structure_differences, weight_differences
    from raygems.demo.builder.measure import ladder_accuracies
    from raygems.demo.tiny_tree import FILES_MANIFEST, install_tiny_tree

    problems = structure_differences(fresh, reference)
    for problem in problems:
        print(f"structure: {problem}")
    weights = weight_differences(fresh, reference)
    same = [name for name, diff in weights.items() if diff == 0.0]
    print(f"weights: {len(same)} of {len(weights)} files identical to {reference}")
    for name, diff in weights.items():
        if diff:
            print(f"  {name}: largest difference {diff:.3g}")
    recorded = json.loads((reference / FILES_MANIFEST).read_text()).get("accuracy_at_build", {})
    with tempfile.TemporaryDirectory(prefix="tiny-tree-") as root:
        measured = ladder_accuracies(install_tiny_tree(Path(root) / "tree", files=fresh))
    print(f"{'model':<40} {'toy_arith fresh/shipped':>24} {'toy_choice fresh/shipped':>25}")
    for model_id, acc in measured.items():
        ref = recorded.get(model_id, {})
        print(f"{model_id:<40} {acc['toy_arith']:>11.3f} / {ref.get('toy_arith', float('nan')):<10.3f} "
              f"{acc['toy_choice']:>11.3f} / {ref.get('toy_choice', float('nan')):<10.3f}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
