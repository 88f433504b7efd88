"""The `raygems` command line.

Each sub-command lives in its own module under `raygems.cli` and exposes two functions:

    register(subparsers) -> argparse.ArgumentParser   # add the sub-command's parser
    run(args) -> int                                  # do the work, return an exit status
    on_interrupt(args) -> str                         # optional: what to do after Ctrl-C (how to continue)

Errors are one line and never a traceback: `raygems.errors.UsageError` (bad input, exit 2), `SetupError`
(exit 1), ValueError and OSError (exit 2); Ctrl-C exits 130.

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
    "plan": "plan",
    "demo": "demo",
    "tree": "tree",
    "gems": "gems",
    "sweep": "sweep",
    "prior": "prior",
    "pool": "pool",
}


from raygems.errors import RaygemsError, UsageError

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from raygems import __version__

    parser = argparse.ArgumentParser(
        prog="raygems",
        description="Find hidden-gem fine-tunes under a fixed evaluation budget.",
    )
    parser.add_argument("--version", action="version", version=f"raygems {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"raygems.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a sub-command whose module is not written yet
            if exc.name != f"raygems.cli.{module_name}":
                raise
            continue
        sub = module.register(subparsers)
        sub.set_defaults(_run=module.run, _on_interrupt=getattr(module, "on_interrupt", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except RaygemsError as exc:
        return _error(args, exc, exc.exit_status)
    except ValueError as exc:      # bad input found by a library function (it names the bad value)
        return _error(args, exc, 2)
    except OSError as exc:         # a file that is missing, is a folder, cannot be written, ...
        return _error(args, _describe_os_error(exc), 2)
    except KeyboardInterrupt:
        hint = getattr(args, "_on_interrupt", None)
        print(f"\nraygems {args.command}: interrupted" + (f"; {hint(args)}" if hint else ""), file=sys.stderr)
        return INTERRUPTED


def _error(args: argparse.Namespace, message: object, status: int) -> int:
    text = str(message).strip().splitlines()
    print(f"raygems {args.command}: error: {text[0] if text else type(message).__name__}", file=sys.stderr)
    return status


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
