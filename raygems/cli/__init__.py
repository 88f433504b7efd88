"""The `raygems` command line.

Each sub-command lives in its own module under `raygems.cli` and exposes two functions:

    register(subparsers) -> argparse.ArgumentParser   # add the sub-command's parser
    run(args) -> int                                  # do the work, return an exit status

Modules import their heavy dependencies (torch, ray, ...) inside `run`, so `raygems --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command name -> module under raygems.cli. Order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "replay": "replay",
    "search": "search",
    "demo": "demo",
    "tree": "tree",
    "gems": "gems",
    "sweep": "sweep",
    "prior": "prior",
    "pool": "pool",
}


class UsageError(Exception):
    """Bad input from the user: printed as a one-line error, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raygems",
        description="Find hidden-gem fine-tunes under a fixed evaluation budget.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"raygems.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a sub-command whose module is not written yet
            if exc.name != f"raygems.cli.{module_name}":
                raise
            continue
        sub = module.register(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"raygems {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"raygems {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
