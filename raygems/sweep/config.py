"""Sweep configuration: which trees, methods, schedules, budgets and seeds to replay, loaded from YAML.

    name: table2                       # optional (default: the file's stem)
    description: Table 2 of the paper  # optional, written at the top of table.md
    reps: 100                          # repetitions per cell (batched inside one trial)
    seeds: [0]                         # one trial per seed; rows are pooled over seeds in table.md
    budgets: [10, 50]                  # queries per model N
    methods:                           # names from `raygems.bandits.list_methods()`, or `all`
      - uniform
      - name: ours                     # a method with variants
        schedules: [rule_a, rule_b, table4_literal]
        options: {first_round_fraction: 0.6}
    references: [random, best-base, best-available]   # the table's reference rows (default: all three)
    trees:
      - {name: Qwen-3B, preset: qwen-3b}                     # a synthetic tree (PAPER_TREES)
      - {name: Small, preset: qwen-3b, overrides: {num_finetunes: 40, num_adapters: 10}}
      - {name: RouterBench, matrix: ../data/matrix, models: models.csv, reps: 300}   # a recorded matrix
    resources_per_trial: {cpu: 1}
    max_concurrent_trials: null        # default: as many as the resources allow

Relative `matrix` / `models` paths are resolved against the YAML file's folder (environment variables
such as `$RAYGEMS_SHARED_DIR` are expanded first). Every mistake is reported as a `SweepConfigError`
naming the key and the bad value.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: The reference row that needs no replay: the truly best model (rank 1, the highest accuracy).
BEST_AVAILABLE = "best-available"
#: `schedule` value of methods that take no schedule option.
NO_SCHEDULE = "-"

TOP_LEVEL_KEYS = ("name", "description", "reps", "seeds", "seed", "budgets", "methods", "references", "trees",
                  "resources_per_trial", "max_concurrent_trials", "plugins")
TREE_KEYS = ("name", "preset", "overrides", "matrix", "models", "reps")
METHOD_KEYS = ("name", "schedules", "schedule", "options")


class SweepConfigError(ValueError):
    """A sweep configuration that cannot be run, with the key and value at fault."""


# ------------------------------------------------------------------------------------------------- trees
@dataclass(frozen=True)
class TreeEntry:
    """One column of the table: a synthetic tree preset (with overrides) or a recorded correctness matrix."""

    name: str
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    matrix: Path | None = None
    models: Path | None = None
    reps: int | None = None          # overrides the sweep's reps for this tree (e.g. 300 on a small matrix)

    def spec(self, matrix) -> str:
        """Canonical text of what defines the tree: its source and a digest of its matrix (values, model
        and query ids). Stored with every result row, so that rows of a tree that was later redefined (or
        regenerated differently) are not taken for results of the new one on a rerun."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(matrix.values).tobytes())
        digest.update("\n".join(matrix.model_ids).encode())
        digest.update("\n".join(matrix.query_ids).encode())
        if self.preset is not None:
            source = {"preset": self.preset, "overrides": self.overrides}
        else:
            source = {"matrix": self.matrix.name, "models": self.models.name if self.models else None}
            if self.models is not None:   # best-base reads the models table: its content is part of the tree
                source["models_sha256"] = hashlib.sha256(self.models.read_bytes()).hexdigest()[:16]
        return json.dumps({**source, "shape": list(matrix.values.shape), "sha256": digest.hexdigest()[:16]},
                          sort_keys=True, default=str)

    def load(self):
        """The tree's CorrectnessMatrix (generating a synthetic tree takes ~0.3 s; matrices load from disk)."""
        if self.preset is not None:
            from raygems.populations import generate_tree

            return generate_tree(self.preset, **self.overrides).matrix
        from raygems.replay import load_matrix

        return load_matrix(self.matrix, models=self.models)


# ----------------------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class MethodEntry:
    """A method and its variants: one trial per schedule (per tree and seed), with fixed options."""

    name: str
    schedules: tuple[str, ...] = (NO_SCHEDULE,)
    options: dict[str, Any] = field(default_factory=dict)

    def options_key(self) -> str:
        """Canonical text of the fixed options ('{}' when none): part of a cell's identity."""
        return json.dumps(self.options, sort_keys=True, default=str)


def default_schedule(name: str) -> str:
    """The schedule a method uses when none is given (NO_SCHEDULE for methods without the option)."""
    from raygems.bandits import get_method

    schedule = get_method(name).default_schedule
    return NO_SCHEDULE if schedule is None else schedule


def reference_methods() -> tuple[str, ...]:
    """The registered methods that spend no budget (random, best-base): the table's reference rows."""
    from raygems.bandits import get_method, list_methods

    return tuple(m for m in list_methods() if not get_method(m).spends_budget)


def reference_rows() -> tuple[str, ...]:
    """Every reference row a table may have: the reference methods and Best Available."""
    return (*reference_methods(), BEST_AVAILABLE)


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: trees x methods (x schedules) x seeds, every budget inside one trial."""

    name: str
    trees: tuple[TreeEntry, ...]
    methods: tuple[MethodEntry, ...]
    budgets: tuple[int, ...]
    reps: int = 100
    seeds: tuple[int, ...] = (0,)
    references: tuple[str, ...] = field(default_factory=reference_rows)
    description: str = ""
    resources_per_trial: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    max_concurrent_trials: int | None = None
    plugins: tuple[str, ...] = ()        # modules that register methods, imported in every trial (raygems.plugins)

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def from_yaml(cls, path: str | Path) -> "SweepConfig":
        path = Path(path)
        if not path.is_file():
            raise SweepConfigError(f"no sweep config at {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SweepConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise SweepConfigError(f"{path}: a sweep config is a mapping of keys (name, trees, methods, budgets, "
                                   f"...), got {type(raw).__name__}")
        raw.setdefault("name", path.stem)
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: str | Path = ".") -> "SweepConfig":
        base_dir = Path(base_dir)
        _check_keys(raw, TOP_LEVEL_KEYS, "sweep config")
        for key in ("trees", "methods", "budgets"):
            if key not in raw:
                raise SweepConfigError(f"sweep config lacks the required key {key!r}")
        if "seed" in raw and "seeds" in raw:
            raise SweepConfigError("give either 'seed' or 'seeds', not both")
        seeds = raw.get("seeds", [raw.get("seed", 0)])
        plugins = _parse_plugins(raw.get("plugins", []))     # first: the methods below may be theirs
        config = cls(
            name=_name(raw.get("name", "sweep"), "name"),
            description=str(raw.get("description") or ""),
            trees=_parse_trees(raw["trees"], base_dir),
            methods=_parse_methods(raw["methods"]),
            budgets=_parse_int_list(raw["budgets"], "budgets", minimum=1),
            reps=_positive_int(raw.get("reps", 100), "reps"),
            seeds=_parse_int_list(seeds, "seeds", minimum=0),
            references=_parse_references(raw.get("references", list(reference_rows()))),
            resources_per_trial=_parse_resources(raw.get("resources_per_trial", {"cpu": 1})),
            max_concurrent_trials=(None if raw.get("max_concurrent_trials") is None else
                                   _positive_int(raw["max_concurrent_trials"], "max_concurrent_trials")),
            plugins=plugins,
        )
        return config

    # ------------------------------------------------------------------------------------------- views
    def reps_for(self, tree: TreeEntry) -> int:
        return tree.reps if tree.reps is not None else self.reps

    def tree(self, name: str) -> TreeEntry:
        for tree in self.trees:
            if tree.name == name:
                return tree
        raise KeyError(name)

    def method_names(self) -> list[str]:
        return [m.name for m in self.methods]


# ----------------------------------------------------------------------------------------------- parsing
def _parse_plugins(value: Any) -> tuple[str, ...]:
    """Plug-in module names (one name or a list), imported here: a method they register is then known."""
    from raygems.plugins import import_plugins

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise SweepConfigError(f"plugins must be a module name or a list of them, got {value!r}")
    names = tuple(n.strip() for n in names)
    try:
        import_plugins(names)
    except ValueError as exc:    # UsageError: the module named, one line
        raise SweepConfigError(str(exc)) from None
    return names


def _check_keys(raw: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise SweepConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")


def _name(value: Any, key: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise SweepConfigError(f"{key} must be a non-empty string, got {value!r}")
    return text


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SweepConfigError(f"{key} must be an integer, got {value!r}")
    if value < minimum:
        raise SweepConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _parse_int_list(value: Any, key: str, minimum: int) -> tuple[int, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise SweepConfigError(f"{key} is empty")
    parsed = tuple(_positive_int(v, f"{key} entry", minimum) for v in items)
    if len(set(parsed)) != len(parsed):
        dup = next(v for v in parsed if parsed.count(v) > 1)
        raise SweepConfigError(f"{key}: {dup} is listed twice")
    return parsed


def _parse_trees(value: Any, base_dir: Path) -> tuple[TreeEntry, ...]:
    from raygems.populations import PAPER_TREES, TreeConfig

    if not isinstance(value, list) or not value:
        raise SweepConfigError("trees must be a non-empty list of {name, preset | matrix, ...} entries")
    tree_fields = {f.name for f in dataclasses.fields(TreeConfig)} - {"name"}
    trees = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"preset": item}
        if not isinstance(item, dict):
            raise SweepConfigError(f"trees[{i}] must be a preset name or a mapping, got {item!r}")
        _check_keys(item, TREE_KEYS, f"trees[{i}]")
        has_preset, has_matrix = "preset" in item, "matrix" in item
        if has_preset == has_matrix:
            raise SweepConfigError(f"trees[{i}] needs exactly one of 'preset' (a synthetic tree) or 'matrix' "
                                   f"(a correctness matrix file), got {sorted(item)}")
        name = _name(item.get("name", item.get("preset") or Path(str(item.get("matrix"))).name), f"trees[{i}].name")
        reps = None if item.get("reps") is None else _positive_int(item["reps"], f"trees[{i}].reps ({name})")
        if has_preset:
            preset = str(item["preset"])
            if preset not in PAPER_TREES:
                raise SweepConfigError(f"trees[{i}] ({name}): unknown tree preset {preset!r}; presets: "
                                       f"{', '.join(sorted(PAPER_TREES))}")
            overrides = item.get("overrides") or {}
            if not isinstance(overrides, dict):
                raise SweepConfigError(f"trees[{i}].overrides ({name}) must be a mapping, got {overrides!r}")
            bad = [k for k in overrides if k not in tree_fields]
            if bad:
                raise SweepConfigError(f"trees[{i}].overrides ({name}): unknown tree setting {bad[0]!r}; settings: "
                                       f"{', '.join(sorted(tree_fields))}")
            overrides = {k: _override(k, v, getattr(PAPER_TREES[preset], k), f"trees[{i}].overrides ({name})")
                         for k, v in overrides.items()}
            if "models" in item:
                raise SweepConfigError(f"trees[{i}] ({name}): 'models' applies to 'matrix' entries only (a "
                                       f"synthetic tree has its own models table)")
            trees.append(TreeEntry(name=name, preset=preset, overrides=dict(overrides), reps=reps))
        else:
            matrix = _existing_path(item["matrix"], base_dir, f"trees[{i}].matrix ({name})", "correctness matrix")
            models = (None if item.get("models") is None else
                      _existing_path(item["models"], base_dir, f"trees[{i}].models ({name})", "models table"))
            trees.append(TreeEntry(name=name, matrix=matrix, models=models, reps=reps))
    names = [t.name for t in trees]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise SweepConfigError(f"trees: the name {dup!r} is used twice; give each tree its own 'name'")
    return tuple(trees)


#: Smallest value of the tree settings that have one (the generator would refuse them without naming the value).
OVERRIDE_MINIMUMS = {"num_finetunes": 2, "num_adapters": 0, "queries_per_task": 1, "seed": 0, "task_spread": 0,
                     "adapter_scale": 0}


def _override(key: str, value: Any, default: Any, where: str) -> Any:
    """A tree setting of the type of its default (a whole number, a finite number, a list of task names)."""
    if isinstance(default, int):
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        wanted = "a finite number"
    elif isinstance(default, tuple):
        ok, wanted = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of task names"
        value = tuple(value) if ok else value
    else:
        ok, wanted = isinstance(value, type(default)), f"a {type(default).__name__}"
    if not ok:
        raise SweepConfigError(f"{where}: {key} must be {wanted}, got {value!r}")
    if isinstance(default, tuple):
        if not value:
            raise SweepConfigError(f"{where}: {key} must not be empty (give at least one task name), got []")
        dup = next((t for t in value if value.count(t) > 1), None)
        if dup is not None:
            raise SweepConfigError(f"{where}: {key} lists {dup!r} twice")
    minimum = OVERRIDE_MINIMUMS.get(key)
    if minimum is not None and value < minimum:
        raise SweepConfigError(f"{where}: {key} must be at least {minimum}, got {value!r}")
    return value


def _existing_path(value: Any, base_dir: Path, key: str, what: str) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    if not path.is_absolute():
        path = base_dir / path
    path = path.resolve()
    if not path.exists():
        raise SweepConfigError(f"{key}: no {what} at {path}")
    return path


def _parse_methods(value: Any) -> tuple[MethodEntry, ...]:
    from raygems.bandits import get_method, list_methods

    if value == "all":
        value = [m for m in list_methods() if get_method(m).spends_budget]
    if not isinstance(value, list) or not value:
        raise SweepConfigError("methods must be 'all' or a non-empty list of method names / {name, schedules, "
                               "options} entries")
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise SweepConfigError(f"methods[{i}] must be a method name or a mapping with 'name', got {item!r}")
        _check_keys(item, METHOD_KEYS, f"methods[{i}]")
        name = str(item["name"])
        try:
            spec = get_method(name)
        except ValueError as exc:
            raise SweepConfigError(f"methods[{i}]: {exc}") from None
        if not spec.spends_budget:
            raise SweepConfigError(f"methods[{i}]: {name!r} spends no budget; list it under 'references' instead")
        options = item.get("options") or {}
        if not isinstance(options, dict):
            raise SweepConfigError(f"methods[{i}].options ({name}) must be a mapping, got {options!r}")
        for key in options:
            if key == "schedule":
                raise SweepConfigError(f"methods[{i}].options ({name}): give schedules under 'schedules', "
                                       f"not in options")
            if not spec.accepts(key):
                raise SweepConfigError(f"methods[{i}].options ({name}): unknown option {key!r}; {name} accepts "
                                       f"{', '.join(sorted(p for p in spec.options if p != 'schedule')) or 'none'}")
            _check_option(spec, key, options[key], f"methods[{i}].options ({name})")
        if "schedule" in item and "schedules" in item:
            raise SweepConfigError(f"methods[{i}] ({name}): give either 'schedule' or 'schedules', not both")
        raw_schedules = item.get("schedules", item.get("schedule"))
        if raw_schedules is None:
            schedules: tuple[str, ...] = (default_schedule(name),)
        else:
            if not spec.schedules:
                raise SweepConfigError(f"methods[{i}] ({name}): this method takes no schedule; schedules apply to "
                                       f"{', '.join(m for m in list_methods() if get_method(m).schedules)}")
            raw_list = raw_schedules if isinstance(raw_schedules, list) else [raw_schedules]
            if not raw_list:
                raise SweepConfigError(f"methods[{i}].schedules ({name}) is empty")
            for s in raw_list:
                if s not in spec.schedules:
                    raise SweepConfigError(f"methods[{i}].schedules ({name}): unknown schedule {s!r}; schedules: "
                                           f"{', '.join(spec.schedules)}")
            schedules = tuple(dict.fromkeys(str(s) for s in raw_list))
        entries.append(MethodEntry(name=name, schedules=schedules, options=dict(options)))
    keys = [(e.name, s, e.options_key()) for e in entries for s in e.schedules]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise SweepConfigError(f"methods: {dup[0]} with schedule {dup[1]!r} and options {dup[2]} is listed twice")
    return tuple(entries)


#: What each basic type an option is declared with takes, and how a message calls it.
_OPTION_KINDS = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _option_types(spec) -> dict[str, tuple[type, ...] | None]:
    """The basic types (bool, int, float, str, NoneType) an option may take, from the annotation of the method's
    constructor (or the type of its default); None when that is not known (array inputs such as prior_alpha),
    in which case the method checks the value itself."""
    import typing

    hints: dict[str, Any] = {}
    for klass in spec.cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            found = typing.get_type_hints(init)
        except Exception:   # an annotation that cannot be resolved: fall back to the defaults
            found = {}
        for key, hint in found.items():
            hints.setdefault(key, hint)
    types: dict[str, tuple[type, ...] | None] = {}
    for key, default in spec.options.items():
        hint = hints.get(key)
        args = typing.get_args(hint) if hint is not None and typing.get_args(hint) else (hint,)
        if hint is not None and all(a is type(None) or a in _OPTION_KINDS for a in args):
            types[key] = tuple(args)
        elif hint is None and default is not None and type(default) in _OPTION_KINDS:
            types[key] = (type(default),)
        else:
            types[key] = None
    return types


def _check_option(spec, key: str, value: Any, where: str) -> None:
    """Refuse an option value of the wrong type (a string for a number, a list for a flag), naming it: the
    algorithms compare the values, which fails without naming the option (`'<' not supported ...`)."""
    allowed = _option_types(spec).get(key)
    if allowed is None:
        return
    if value is None and type(None) in allowed:
        return
    kinds = [a for a in allowed if a is not type(None)]
    if any(_OPTION_KINDS[a][0](value) for a in kinds):
        return
    wanted = " or ".join(_OPTION_KINDS[a][1] for a in kinds) + (" (or null)" if type(None) in allowed else "")
    raise SweepConfigError(f"{where}: {key} must be {wanted}, got {value!r}")


def _parse_references(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value] if value else []
    known = reference_rows()
    for ref in items:
        if ref not in known:
            raise SweepConfigError(f"references: unknown reference row {ref!r}; choose from {', '.join(known)}")
    return tuple(dict.fromkeys(items))


def _parse_resources(value: Any) -> dict[str, float]:
    """Amounts of Ray resources a trial holds (cpu, gpu, memory in bytes, or a custom resource), each > 0: a
    resource a trial does not need is left out. Whether the cluster has them is checked once Ray is up
    (`raygems.sweep.runner.check_trial_resources`)."""
    if not isinstance(value, dict) or not value:
        raise SweepConfigError(f"resources_per_trial must be a mapping such as {{cpu: 1}}, got {value!r}")
    parsed = {}
    for key, amount in value.items():
        if (isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount)
                or amount <= 0):
            raise SweepConfigError(f"resources_per_trial.{key} must be a number > 0 (leave out a resource a trial "
                                   f"does not need), got {amount!r}")
        parsed[str(key)] = float(amount)
    return parsed
