"""`raygems search`: find the best checkpoint of a model tree for your tasks, live, on Ray.

    raygems search --tree HUB_ID|DIR --tasks gsm8k,mbpp --allow-code-execution --budget 50 --out DIR [--resume]
        [--address auto]

Model actors each hold one checkpoint (a GPU fraction when there are GPUs); a driver actor broadcasts each
round's queries to the survivors. Every answer is kept in DIR/store, so a crash or a re-run never pays twice.
`--matrix PATH` runs the same machinery on a recorded correctness matrix (the replay backend).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import types
import typing
from dataclasses import MISSING, fields


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("search", help="live search over a model tree on Ray", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(p)
    for name in ("out", "address"):
        add_setting_flag(p, name)
    p.set_defaults(out=_field("out").default)
    p.add_argument("--resume", action="store_true", help=_setting_help(_field("resume")))
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--dry-run", action="store_true",
                   help="print what the search would cost (raygems plan) and run nothing: no Ray, nothing written")
    from raygems.cli.plan import add_speed_arguments

    add_speed_arguments(p, prefix="with --dry-run: ")
    return p


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """A flag for each SearchConfig setting that describes a search (shared with `raygems plan`). A flag's
    default is None: SearchConfig's default, or with --resume the saved value (which a given flag that defines
    the search must then equal)."""
    from raygems.runtime.config import SearchConfig

    runtime = p.add_argument_group("runtime settings (may differ when a search is resumed)")
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for setting in fields(SearchConfig):
        if not setting.metadata["flag"]:
            continue
        target = runtime if setting.metadata["runtime"] else p
        group = setting.metadata["group"]
        if group:
            if group not in groups:
                groups[group] = target.add_mutually_exclusive_group()
            target = groups[group]
        add_setting_flag(target, setting.name)


def add_setting_flag(p, name: str) -> None:
    """The flag of SearchConfig setting `name`: --name-with-dashes VALUE, or for a setting that is on by default
    --no-name (off), or off by default --name (on). Its value becomes the setting's in `config_from_args`."""
    setting = _field(name)
    flag = flag_of(name)
    kind = _kind(name)
    if kind is bool:
        if setting.default is True:
            p.add_argument(flag, dest=name, action="store_const", const=False,
                           help=setting.metadata["off"].replace("%", "%%"))
        else:
            p.add_argument(flag, action="store_const", const=True, help=_setting_help(setting))
        return
    numeric = kind in (int, float) and name != "per_task"      # (--per-task also takes 'all')
    p.add_argument(flag, type=kind if numeric else None, help=_setting_help(setting))


def flag_of(name: str) -> str:
    """The flag of SearchConfig setting `name` (`add_setting_flag`)."""
    flag = name.replace("_", "-")
    return f"--no-{flag}" if _kind(name) is bool and _field(name).default is True else f"--{flag}"


def config_from_args(args: argparse.Namespace):
    from raygems.runtime.config import SearchConfig

    given = {setting.name: _from_text(setting.name, getattr(args, setting.name)) for setting in fields(SearchConfig)
             if getattr(args, setting.name, None) is not None and setting.name not in _NOT_FROM_FLAGS}
    if args.resume:
        return _resume_config(args, given)
    if not (args.tree or args.matrix):
        raise ValueError("give --tree DIR|HUB_ID or --matrix PATH (or --resume with --out)")
    return SearchConfig(**given, progress=not args.quiet)


#: SearchConfig settings that no flag of their name sets (--resume and --quiet decide them).
_NOT_FROM_FLAGS = ("resume", "progress")


def _from_text(name: str, value):
    """A flag's value as its setting's: comma-separated names -> tuple, JSON -> dict, 'all' (or 0) queries per
    task -> all of them."""
    kind = _kind(name)
    if kind is tuple:
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if kind is dict:
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError) as exc:   # (nested thousands deep)
            raise ValueError(f"--{name.replace('_', '-')} is not valid JSON: {str(exc)[:200]}") from None
    if name == "per_task":                          # --per-task all (or 0): the whole benchmark
        from raygems.cli.pool import parse_per_task

        return parse_per_task(value)
    return value


def _field(name: str):
    return _settings()[name][0]


def _kind(name: str) -> type:
    """The setting's value type, None aside: str, int, float, bool, tuple or dict."""
    return _settings()[name][1]


@functools.cache
def _settings() -> dict[str, tuple]:
    """SearchConfig's fields by name, each with its value type (annotations evaluated once)."""
    from raygems.runtime.config import SearchConfig

    hints = typing.get_type_hints(SearchConfig)
    settings = {}
    for setting in fields(SearchConfig):
        hint = hints[setting.name]
        if typing.get_origin(hint) is types.UnionType:      # `int | None` -> int
            hint = next(k for k in typing.get_args(hint) if k is not type(None))
        settings[setting.name] = (setting, typing.get_origin(hint) or hint)   # `tuple[str, ...]` -> tuple
    return settings


def _setting_help(setting) -> str:
    default = setting.default
    if default is None or isinstance(default, bool) or default is MISSING or default == ():
        return setting.metadata["doc"].replace("%", "%%")
    shown = ",".join(default) if isinstance(default, tuple) else default
    return f"{setting.metadata['doc']} (default {shown})".replace("%", "%%")


def _resume_config(args, given: dict):
    """The search saved in --out, with this run's runtime settings. A setting that defines the search may be
    given only with its saved value: continuing a search with other settings would silently run the saved
    ones (or pay for a different search in the same store)."""
    from raygems.errors import UsageError
    from raygems.runtime.config import RUNTIME_ONLY, SearchConfig
    from raygems.runtime.search import read_saved_search

    runtime = {name: value for name, value in given.items() if name in RUNTIME_ONLY}
    given = {name: value for name, value in given.items() if name not in RUNTIME_ONLY}
    saved = read_saved_search(args.out)
    source = {"tree", "matrix"} & set(given)          # --tree given to a saved search of a matrix, or the reverse:
    if source and not all(saved.get(name) for name in source):     # no search at all, so a differing setting
        wanted = given
    else:
        wanted = SearchConfig.from_dict({**saved, **given, **runtime, "resume": True}).identity()
    differing = sorted(name for name in given if wanted.get(name) != saved.get(name))
    if differing:
        details = ", ".join(f"{flag_of(name)} (saved {saved.get(name)!r}, given {wanted.get(name)!r})"
                            for name in differing)
        raise UsageError(f"--resume continues the search saved in {args.out}, but {details} differ from it; drop "
                         f"them, or start a new search with another --out")
    return SearchConfig.from_dict({**saved, **runtime, "out": args.out, "resume": True, "progress": not args.quiet})


def on_interrupt(args: argparse.Namespace) -> str:
    return f"every answer recorded so far is kept: continue with `raygems search --resume --out {args.out}`"


def run(args: argparse.Namespace) -> int:
    from raygems.runtime.search import run_search

    if args.dry_run:
        from raygems.cli.plan import print_plans

        return print_plans(config_from_args(args), args)
    result = run_search(config_from_args(args))
    print_outcome(result)
    return 0


def print_outcome(result) -> None:
    s = result.summary
    board = result.leaderboard
    print("\nleaderboard (accuracy on the queries each model answered; better prompt variant per task):")
    view = board[["model_id", "status", "queries", "accuracy", "downloads"]].head(10)
    print(view.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"\nchosen: {s['chosen_model']}  accuracy {_fmt(s['chosen_accuracy'])}{_on(board, s['chosen_model'])}")
    print(f"popular base: {s['popular_base']}  accuracy {_fmt(s['base_accuracy'])}{_on(board, s['popular_base'])}")
    if s.get("best_model"):
        print(f"best (exhaustive): {s['best_model']}  accuracy {_fmt(s['best_accuracy'])}")
    print(f"queries paid {s['queries_paid']}, reused {s['queries_reused']}, failed models {len(s['failed_models'])}; "
          f"results in {result.out}", file=sys.stderr)


def _on(board, model_id: str) -> str:
    """Which queries an accuracy is on: the whole pool (after the final evaluation) or those the model answered."""
    row = board[board["model_id"] == model_id]
    if row.empty or bool(row["complete"].iloc[0]):
        return " on the whole pool"
    return f" on the {int(row['queries'].iloc[0])} queries it answered"


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
