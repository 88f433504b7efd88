"""`raygems search` and `raygems plan` build their flags from SearchConfig's fields: every setting is reachable
from the command line (or set by the command itself), a flag's value becomes its setting, and a flag given
nothing leaves SearchConfig's default."""
from __future__ import annotations

from dataclasses import fields

import pytest

from raygems.cli import build_parser
from raygems.cli.search import _kind, config_from_args
from raygems.runtime.config import RUNTIME_ONLY, TREE_AND_POOL_SETTINGS, SearchConfig

#: Settings a command sets itself: --out, --address, --resume, --quiet; method_options only from Python.
SET_BY_THE_COMMAND = {"out", "address", "resume", "progress", "method_options"}
#: A value for each kind of setting, as typed on the command line and as the setting holds it.
SAMPLES = {int: ("3", 3), float: ("0.5", 0.5), str: ("org/name", "org/name"), tuple: ("a, b", ("a", "b")),
           dict: ('{"k": 1}', {"k": 1})}
#: Settings that take only some values.
VALID = {"method": ("ours", "ours"), "backend": ("replay", "replay"), "cache_limit": ("5MB", "5MB"),
         "data_dir": ("/", "/"),   # (a directory that exists)
         "plugins": ("json, textwrap", ("json", "textwrap"))}   # (modules that import)
FLAGGED = [f for f in fields(SearchConfig) if f.metadata["flag"]]


def parse(*argv: str) -> SearchConfig:
    return config_from_args(build_parser().parse_args(["search", *argv]))


def source_for(name: str, tmp_path) -> list[str]:
    """A search the setting applies to: a local tree for those choosing a tree's models or the pool (a --matrix
    search refuses them), a matrix for the others."""
    return ["--tree", str(tmp_path)] if name in TREE_AND_POOL_SETTINGS else ["--matrix", str(tmp_path / "m.npy")]


def test_every_setting_has_a_flag_or_is_set_by_the_command():
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["search"]._actions}
    assert {f.name for f in fields(SearchConfig)} - flags == SET_BY_THE_COMMAND - {"out", "address", "resume"}


@pytest.mark.parametrize("setting", [f for f in FLAGGED if _kind(f.name) is not bool and f.name != "tree"],
                         ids=lambda f: f.name)
def test_a_flag_value_becomes_its_setting(setting, tmp_path):
    text, value = VALID.get(setting.name) or SAMPLES[_kind(setting.name)]
    source = [] if setting.name == "matrix" else source_for(setting.name, tmp_path)
    config = parse(*source, f"--{setting.name.replace('_', '-')}", text)
    assert getattr(config, setting.name) == value


@pytest.mark.parametrize("name, argv, value", [
    ("final_evaluation", ["--no-final-evaluation"], False), ("fetch_ahead", ["--no-fetch-ahead"], False),
    ("exhaustive", ["--exhaustive"], True), ("lookahead", ["--lookahead"], True),
    ("allow_code_execution", ["--allow-code-execution"], True), ("progress", ["--quiet"], False),
    ("per_task", ["--per-task", "0"], None), ("per_task", ["--per-task", "all"], None),
    ("per_task", ["--per-task", "12"], 12),
])
def test_switches_and_special_values(name, argv, value, tmp_path):
    assert getattr(parse(*source_for(name, tmp_path), *argv), name) == value


def test_flags_not_given_leave_the_defaults(tmp_path):
    config = parse("--matrix", str(tmp_path / "m.npy"))
    defaults = SearchConfig(matrix=str(tmp_path / "m.npy"))
    assert config == defaults


def test_runtime_settings_are_the_flags_of_the_runtime_group():
    search = build_parser()._subparsers._group_actions[0].choices["search"]
    group = next(g for g in search._action_groups if g.title.startswith("runtime settings"))
    in_group = {a.dest for a in group._group_actions}
    assert in_group == {f.name for f in FLAGGED if f.name in RUNTIME_ONLY}
    assert {"max_loaded", "cache_limit", "backend_settings"} <= in_group and "budget" not in in_group
