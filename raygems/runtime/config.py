"""`SearchConfig`: everything a live search depends on, each setting defined once with what it means.

Each field's metadata says what the setting is (`doc`, the help of its command-line flag), whether it may change
when a search is resumed (`runtime`), and whether `raygems search`/`raygems plan` take it as a flag of its own
(`flag`). `raygems.cli.search` builds the flags from these fields, so a new setting is one field here.
"""
from __future__ import annotations

import functools
import json
import math
import numbers
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from raygems.errors import UsageError
from raygems.hub.types import DEFAULT_KINDS
from raygems.registry import as_names
from raygems.tasks.routerbench import PAPER_PER_TASK

#: The method a search uses unless told otherwise (the evidence: docs/statistics.md).
DEFAULT_METHOD = "recommended"
#: Where a hub tree's checkpoints go on each node, unless --cache-dir says otherwise.
DEFAULT_CACHE_DIR = "~/.cache/raygems/checkpoints"
#: Settings earlier versions saved in search.json that no longer exist, with the value that left them unused: a
#: saved search with that value is this version's search without them (`fail`: test hooks, now in
#: `raygems.runtime.testing`).
RETIRED_SETTINGS: dict[str, Any] = {"fail": {}}
#: Settings that name local files or folders: saved as absolute paths, so a search resumes from any directory.
PATH_SETTINGS = ("tree", "matrix", "models", "data_dir", "prior")
#: Settings that choose a tree's candidates or draw the query pool: a --matrix search has its own (every model and
#: query of the matrix), so they are refused there rather than ignored.
TREE_AND_POOL_SETTINGS = ("tasks", "per_task", "pool_seed", "data_dir", "kinds", "max_depth", "max_models")
#: Settings in `method_options` that belong to the prior (`raygems.runtime.candidates.apply_prior`), not the method.
PRIOR_OPTIONS = ("prior_strength",)


def setting(default: Any = None, *, doc: str, runtime: bool = False, flag: bool = True, off: str | None = None,
            group: str | None = None, default_factory: Any = None) -> Any:
    """A SearchConfig field with its meaning.

    doc      what the setting is (a flag's help; a default other than None is added to it)
    runtime  True: may differ between a run and its resumption without changing the search
    flag     False: not one of the flags `add_search_arguments` adds (the command adds its own, or none)
    off      for a setting that is on by default, the help of its --no-... flag
    group    flags in the same group exclude each other
    """
    metadata = {"doc": doc, "runtime": runtime, "flag": flag, "off": off, "group": group}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class SearchConfig:
    """Everything a search depends on. Defaults follow the paper where it says something."""

    out: str = setting("runs/search", doc="output directory", runtime=True, flag=False)
    tree: str | None = setting(doc="a local directory laid out like the hub, or a base model id on the hub",
                               group="source")
    matrix: str | None = setting(doc="a recorded correctness matrix (replay backend: candidates and answers "
                                     "from it)", group="source")
    models: str | None = setting(doc="models table for --matrix (downloads, is_base)")
    tasks: tuple[str, ...] = setting(("routerbench",), doc="comma-separated task names")
    per_task: int | None = setting(PAPER_PER_TASK, doc="queries per task in the pool, 'all' (or 0) for all of them")
    pool_seed: int = setting(0, doc="seed of the query pool's draw")
    data_dir: str | None = setting(doc="local benchmark directory (else $RAYGEMS_DATA_DIR, else the hub)")
    kinds: tuple[str, ...] = setting(DEFAULT_KINDS, doc="kinds of descendants to include")
    max_depth: int | None = setting(doc="deepest generation below the base to include (default: all)")
    max_models: int | None = setting(doc="keep the most-downloaded N models")
    method: str = setting(DEFAULT_METHOD, doc="search method (docs/statistics.md; the paper's method is 'ours')")
    budget: int = setting(50, doc="average queries per model N")
    seed: int = setting(0, doc="seed of the search's draws")
    method_options: dict[str, Any] = setting(doc="the method's own settings (its constructor's keyword arguments)",
                                             flag=False, default_factory=dict)
    backend: str = setting("transformers", doc="transformers, vllm, or a backend a plug-in registers")
    backend_settings: dict[str, Any] = setting(doc='the backend\'s settings as JSON, e.g. \'{"batch_size": 64, '
                                                   '"dtype": "bfloat16"}\'', runtime=True, default_factory=dict)
    max_loaded: int = setting(2, doc="model actors loaded at once", runtime=True)
    chunk_size: int = setting(32, doc="queries per actor call and store write", runtime=True)
    cpus_per_model: float = setting(1.0, doc="CPUs per model actor", runtime=True)
    gpus_per_model: float | None = setting(
        doc="GPU fraction per model actor (default: 1/max-loaded if the cluster has GPUs when the search starts, "
            "else 0; give it on an autoscaling cluster that starts without GPUs)", runtime=True)
    slot_resource: str | None = setting(doc="custom Ray resource each model actor takes (cluster.yaml: model_slot)",
                                        runtime=True)
    final_evaluation: bool = setting(True, doc="evaluate the chosen model and the popular base on the whole pool",
                                     off="skip evaluating the chosen model and the popular base on the whole pool")
    exhaustive: bool = setting(False, doc="also evaluate every model on the whole pool (gives best_model)")
    prior: str | None = setting(doc="a fitted prior (raygems prior fit) to order and prune candidates")
    prior_task: str | None = setting(doc="the prior's task name (default: the first task)")
    prior_keep: float = setting(1.0, doc="share of candidates kept by the prior")
    address: str | None = setting(doc="Ray address (auto: an existing cluster)", runtime=True, flag=False)
    progress: bool = setting(True, doc="print a progress line", runtime=True, flag=False)
    resume: bool = setting(False, doc="continue the search saved in --out", runtime=True, flag=False)
    allow_code_execution: bool | None = setting(
        doc="let tasks that score by running model-written code (mbpp) run it, in a sandbox (or set "
            "RAYGEMS_ALLOW_CODE_EXECUTION=1); without it such a search is refused", runtime=True)
    cache_dir: str | None = setting(doc=f"hub trees: node-local folder for downloaded checkpoints (default "
                                        f"{DEFAULT_CACHE_DIR} on each node)", runtime=True)
    cache_limit: str | int | float | None = setting(doc="hub trees: the most the checkpoint cache may hold on a node, e.g. 500GB "
                                          "(default: 90% of its free space); eliminated models' files go first",
                                      runtime=True)
    fetch_concurrency: int = setting(2, doc="hub trees: downloads at once per node", runtime=True)
    fetch_ahead: bool = setting(True, doc="hub trees: download checkpoints ahead of the slots that need them",
                                off="hub trees: download a checkpoint only when a slot needs it (the serial "
                                    "design; slower)", runtime=True)
    plugins: tuple[str, ...] = setting((), doc="modules that register methods, tasks or backends (comma-separated "
                                                "import names): imported here and in every Ray worker "
                                                "(raygems.plugins)", runtime=True)
    lookahead: bool = setting(False, doc="fill each generate batch with the next round's shared queries "
                                         "(correlated methods such as recommended): fewer reloads and downloads on "
                                         "GPUs, more pairs paid (docs/cost.md)", runtime=True)

    def __post_init__(self) -> None:
        from raygems.runtime.evaluation import MATRIX_BACKENDS   # (here: the CLI builds its flags from this module)

        from raygems.plugins import import_plugins

        _check_types(self)
        batch = self.backend_settings.get("batch_size", 1)   # (the plan and --lookahead read it, whatever the backend)
        if not isinstance(batch, numbers.Integral) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"backend setting batch_size must be a positive whole number, got {batch!r:.100}")
        self.plugins, self.tasks, self.kinds = (as_names(v) for v in (self.plugins, self.tasks, self.kinds))
        import_plugins(self.plugins)   # first: their registrations are what the names below are checked against
        if (self.tree is None) == (self.matrix is None):
            raise ValueError("give exactly one of tree (a directory or hub id) or matrix (replay backend)")
        if self.matrix is not None and self.backend not in MATRIX_BACKENDS:
            self.backend = "replay"
        if self.budget < 1:
            raise ValueError(f"budget per model must be at least 1, got {self.budget}")
        if self.max_loaded < 1:
            raise ValueError(f"max_loaded must be at least 1, got {self.max_loaded}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if not 0 < self.prior_keep <= 1:
            raise ValueError(f"prior_keep must be in (0, 1], got {self.prior_keep}")
        if self.max_models is not None and self.max_models < 2:
            raise ValueError(f"max_models must be at least 2 (a search compares models), got {self.max_models}")
        if self.per_task is not None and self.per_task < 1:
            raise ValueError(f"per_task must be at least 1, got {self.per_task}")
        if self.cache_limit is not None:
            from raygems.runtime.cache import parse_size

            parse_size(self.cache_limit)
        if self.fetch_concurrency < 1:
            raise ValueError(f"fetch_concurrency must be at least 1, got {self.fetch_concurrency}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not math.isfinite(self.cpus_per_model) or self.cpus_per_model < 0:
            raise ValueError(f"cpus_per_model must be a finite number >= 0, got {self.cpus_per_model}")
        if self.gpus_per_model is not None and (not math.isfinite(self.gpus_per_model) or self.gpus_per_model < 0):
            raise ValueError(f"gpus_per_model must be a finite number >= 0, got {self.gpus_per_model}")
        for name in PATH_SETTINGS:   # a local path (not a hub id) is kept absolute
            value = getattr(self, name)
            if value is not None and Path(value).expanduser().exists():
                setattr(self, name, str(Path(value).expanduser().resolve()))
        if not self.resume:   # (a saved search keeps what it was started with: its pool is saved beside it)
            if self.models is not None and self.matrix is None:
                raise UsageError(f"--models {self.models}: a models table goes with --matrix (a tree lists its "
                                 f"models)")
            if self.matrix is not None:
                _refuse_tree_settings(self)
            if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
                raise UsageError(f"--data-dir {self.data_dir}: no such directory")
        if self.tree is not None:
            from raygems.hub.sources import HUB_MODEL_ID

            if not Path(self.tree).is_dir() and not HUB_MODEL_ID.fullmatch(self.tree):
                raise UsageError(f"--tree {self.tree}: no such directory (and not a hub model id such as 'org/name')")
        from raygems.bandits import get_method

        try:
            spec = get_method(self.method)
        except ValueError as exc:
            raise ValueError(f"{exc} (a method of your own: name the module that registers it in plugins, "
                             f"--plugins MODULE)") from None
        unknown = sorted(k for k in self.algorithm_options if not spec.accepts(k))
        if unknown:
            raise ValueError(f"method {self.method!r} takes no option(s) {unknown} "
                             f"(it takes: {', '.join(sorted(spec.options)) or 'none'})")
        if self.backend in MATRIX_BACKENDS and self.matrix is None:
            raise ValueError(f"backend {self.backend!r} answers from a correctness matrix: give matrix, not tree")
        if self.backend not in MATRIX_BACKENDS:
            _check_backend(self.backend, self.backend_settings)
        self._check_workers_know_the_names(spec)

    def _check_workers_know_the_names(self, method_spec) -> None:
        """The method, backend and tasks registered in this process only (a plug-in not named in `plugins`, or one
        in the script itself) are refused: the Ray workers would not know them (raygems.plugins)."""
        from raygems.backends import BACKENDS
        from raygems.plugins import check_workers_can_import
        from raygems.runtime.evaluation import MATRIX_BACKENDS
        from raygems.tasks.registry import TASKS

        check_workers_can_import("method", self.method, method_spec.cls, self.plugins)
        if self.backend not in MATRIX_BACKENDS:
            check_workers_can_import("backend", self.backend, BACKENDS.entry(self.backend), self.plugins)
        for task in self.tasks:
            target = TASKS.entry(task)
            if target is not None:     # (an unknown task is named when the pool is drawn)
                check_workers_can_import("task", task, target, self.plugins)

    @property
    def algorithm_options(self) -> dict[str, Any]:
        """`method_options` less the prior's own setting (`prior_strength`, which `apply_prior` reads): what
        goes to the method's constructor."""
        return {k: v for k, v in self.method_options.items() if k not in PRIOR_OPTIONS}

    def identity(self) -> dict[str, Any]:
        """The settings that define the search (runtime-only ones excluded), JSON-ready."""
        data = json.loads(json.dumps(asdict(self), default=str))
        return {k: v for k, v in data.items() if k not in RUNTIME_ONLY}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown search setting(s) {unknown}")
        return cls(**data)


#: Settings that may differ between a run and its resumption without changing the search (`out` too: a run
#: directory that was moved or copied continues where it is).
RUNTIME_ONLY = tuple(f.name for f in fields(SearchConfig) if f.metadata["runtime"])


def _check_types(config: SearchConfig) -> None:
    """Each setting of the kind its annotation names (a mistyped call, a hand-edited search.json): one line naming
    the setting and the value, instead of an error from deep inside the search. Accepted values of other types
    become the plain ones (numpy numbers, paths, sets of names, mappings), so that search.json saves them as such."""
    for name in _setting_kinds():
        value = getattr(config, name)
        problem = setting_type_problem(name, value)
        if problem:
            raise ValueError(problem)
        setattr(config, name, _plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if _numpy_truth(value):
        return bool(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple, set, frozenset)) or hasattr(value, "tolist"):
        return [str(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    return value


def _numpy_truth(value: Any) -> bool:
    """A numpy boolean scalar (np.bool_, or a 0-d bool array)."""
    return getattr(value, "dtype", None) is not None and value.dtype.kind == "b" and value.ndim == 0


def setting_type_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be search setting `name` (None: it can, or there is no such setting)."""
    accepts, kind = _setting_kinds().get(name, (lambda v: True, ""))
    return None if accepts(value) else f"search setting {name} must be {kind}, got {value!r:.200}"


@functools.cache
def _setting_kinds() -> dict[str, tuple[Callable[[Any], bool], str]]:
    """Per setting: a test of its value and the words for what it takes, from SearchConfig's annotations."""
    def whole(v): return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    def number(v): return isinstance(v, numbers.Real) and not isinstance(v, bool)
    def truth(v): return isinstance(v, bool) or _numpy_truth(v)
    def text(v): return isinstance(v, (str, os.PathLike))
    def names(v):
        items = v.tolist() if hasattr(v, "tolist") else v
        return isinstance(v, str) or (isinstance(items, (list, tuple, set, frozenset))
                                      and all(isinstance(x, str) for x in items))

    simple = {int: (whole, "a whole number"), float: (number, "a number"), bool: (truth, "true or false"),
              str: (text, "a text"), tuple: (names, "a name or a list of names"),
              dict: (lambda v: isinstance(v, Mapping), "a mapping (a JSON object)")}
    kinds = {}
    for name, hint in typing.get_type_hints(SearchConfig).items():
        union = typing.get_origin(hint) is types.UnionType
        options = [k for k in typing.get_args(hint) if k is not type(None)] if union else [hint]
        optional = union and type(None) in typing.get_args(hint)
        tests = [simple[typing.get_origin(k) or k] for k in options]
        words = " or ".join(w for _, w in tests) + (" or none" if optional else "")
        kinds[name] = ((lambda v, tests=tests, optional=optional:
                        (optional and v is None) or any(test(v) for test, _ in tests)), words)
    return kinds


def _refuse_tree_settings(config: SearchConfig) -> None:
    """A --matrix search given a setting of `TREE_AND_POOL_SETTINGS` other than its default: one line naming
    them (they would be ignored: the matrix's models and queries are the search's)."""
    defaults = {f.name: f.default for f in fields(SearchConfig)}
    given = [name for name in TREE_AND_POOL_SETTINGS if not _same_setting(getattr(config, name), defaults[name])]
    if given:
        shown = ", ".join(f"--{name.replace('_', '-')} {_shown(getattr(config, name))}" for name in given)
        raise UsageError(f"{shown}: a --matrix search has the matrix's own models and queries (all of them); "
                         f"{'this applies' if len(given) == 1 else 'these apply'} to --tree searches")


def _same_setting(value: Any, default: Any) -> bool:
    """Names in another order are the same names."""
    return set(value) == set(default) if isinstance(value, tuple) else value == default


def _shown(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else "all" if value is None else str(value)


def _check_backend(name: str, settings: dict[str, Any]) -> None:
    """Build the backend once, unloaded (cheap: nothing is imported or loaded), so a misspelt backend or
    setting fails here, before any checkpoint is downloaded, and not as a failure of every model."""
    from raygems.backends import get_backend

    try:
        get_backend(name, **settings)
    except TypeError as exc:
        raise ValueError(f"backend {name!r} does not take these settings {sorted(settings)}: {exc}") from None
