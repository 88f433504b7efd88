"""Run a sweep on Ray Tune: plan the trials, run them as one grid, record every cell, write the report.

    from raygems.sweep import SweepConfig, run_sweep
    outcome = run_sweep(SweepConfig.from_yaml("experiments/smoke.yaml"), "runs/smoke")

One Tune trial = one (tree, method, schedule, seed) with every budget inside (see `trainable.py`). The
trials form one `tune.grid_search` over the explicit list of trial specs: the product trees x methods x
schedules x seeds, where a method's schedules are only those it takes, and minus the trials whose cells
are all in `DIR/results.parquet` already (that is how a rerun resumes: finished cells are skipped, a
trial with some of its budgets missing runs only those).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.plugins import local_workers_env
from raygems.sweep import store
from raygems.sweep.config import BEST_AVAILABLE, NO_SCHEDULE, SweepConfig, SweepConfigError, reference_methods
from raygems.sweep.trainable import CELL_KEYS, PER_REP_METRICS, SUMMARY_METRICS, per_rep_frame, replay_trial

TUNE_FOLDER = "tune"
#: code_version of rows that no algorithm produced (Best Available: read off the matrix).
NO_CODE = "-"


@dataclass
class SweepOutcome:
    """What a `run_sweep` call did: trials run, cells skipped as already done, errors, and the files.
    `cells_run < cells_planned` without errors: Tune stopped before every cell finished. (Ctrl-C raises
    KeyboardInterrupt out of `run_sweep` instead, once the cells reported so far are saved.)"""

    out_dir: Path
    results: pd.DataFrame                    # the config's cells (all of them, old and new)
    trials_run: int                          # trials started
    cells_run: int                           # cells finished and saved by this call
    cells_skipped: int                       # cells already in results.parquet
    cells_planned: int = 0                   # cells this call set out to run
    errors: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- planning
def load_matrices(config: SweepConfig) -> dict[str, Any]:
    """tree name -> CorrectnessMatrix for every tree of the sweep (generated or loaded once, here)."""
    matrices = {}
    for tree in config.trees:
        try:
            matrices[tree.name] = tree.load()
        except (ValueError, FileNotFoundError) as exc:
            raise SweepConfigError(f"tree {tree.name!r}: {exc}") from None
    return matrices


def plan_cells(config: SweepConfig, matrices: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell of the sweep as a row of CELL_KEYS, in grid order (best-available excluded: it needs no
    trial). best-base is left out on trees without a models table (it needs downloads)."""
    cells = []
    for tree in config.trees:
        matrix, reps = matrices[tree.name], config.reps_for(tree)
        spec = tree.spec(matrix)
        for seed in config.seeds:
            for ref in config.references:
                if ref == BEST_AVAILABLE or (ref == "best-base" and not has_downloads(matrix)):
                    continue
                cells.append(dict(tree=tree.name, tree_spec=spec, method=ref, schedule=NO_SCHEDULE, options="{}",
                                  seed=seed, reps=reps, budget=0))
            for method in config.methods:
                for schedule in method.schedules:
                    for budget in config.budgets:
                        cells.append(dict(tree=tree.name, tree_spec=spec, method=method.name, schedule=schedule,
                                          options=method.options_key(), seed=seed, reps=reps, budget=budget))
    return cells


def has_downloads(matrix) -> bool:
    return matrix.models is not None and "downloads" in matrix.models.columns


def group_trials(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells -> trial specs: one per (tree, method, schedule, options, seed), holding its budgets."""
    trials: dict[tuple, dict[str, Any]] = {}
    for cell in cells:
        key = tuple(cell[k] for k in CELL_KEYS if k != "budget")
        trial = trials.setdefault(key, {**{k: cell[k] for k in CELL_KEYS if k != "budget"}, "budgets": []})
        trial["budgets"].append(cell["budget"])
    return list(trials.values())


def check_cells(config: SweepConfig, cells: list[dict[str, Any]], matrices: dict[str, Any]) -> None:
    """Build every (tree, method, schedule, budget) algorithm once with one repetition, so that a bad
    combination (a budget beyond a tree's pool, a schedule without a row for that budget) fails here with
    its name rather than inside a trial."""
    from raygems.bandits import get_method, repetition_keys
    from raygems.replay.engine import check_replay, method_options
    from raygems.sweep.trainable import trial_options

    seen = set()
    references = reference_methods()
    for cell in cells:
        key = (cell["tree_spec"], cell["method"], cell["schedule"], cell["options"], cell["budget"])
        if key in seen or cell["method"] in references:
            continue
        seen.add(key)
        matrix = matrices[cell["tree"]]
        where = (f"tree {cell['tree']!r}, method {cell['method']!r}"
                 + (f", schedule {cell['schedule']!r}" if cell["schedule"] != NO_SCHEDULE else "")
                 + (f", options {cell['options']}" if cell["options"] not in ("{}", "") else "")
                 + f", budget {cell['budget']}")
        if cell["budget"] > matrix.num_queries:
            raise SweepConfigError(f"{where}: the budget exceeds the tree's pool of {matrix.num_queries} queries "
                                   f"per model")
        try:
            options = method_options(matrix, cell["method"], trial_options(cell))
            get_method(cell["method"]).make(matrix.num_models, matrix.num_queries, cell["budget"],
                                            repetition_keys(0, 1), **options)
            check_replay(matrix, cell["method"], config.budgets, cell["reps"], options=options)   # memory
        except (ValueError, TypeError) as exc:
            raise SweepConfigError(f"{where}: {exc}") from None


def best_available_rows(config: SweepConfig, matrices: dict[str, Any]) -> pd.DataFrame:
    """The 'Best Available' reference: the truly best model of each tree (rank 1, its accuracy)."""
    rows = []
    if BEST_AVAILABLE not in config.references:
        return pd.DataFrame(rows)
    for tree in config.trees:
        matrix = matrices[tree.name]
        spec = tree.spec(matrix)
        for seed in config.seeds:
            rows.append(dict(tree=tree.name, tree_spec=spec, method=BEST_AVAILABLE, schedule=NO_SCHEDULE,
                             options="{}", seed=seed, reps=config.reps_for(tree), budget=0, mean_rank=1.0,
                             std_rank=0.0, se_rank=0.0, median_rank=1.0,
                             mean_accuracy=float(matrix.accuracies.max()), se_accuracy=0.0, p_top1=1.0, p_top3=1.0,
                             budget_fraction=0.0, seconds=0.0, code_version=NO_CODE))
    return pd.DataFrame(rows)


def row_label(method: str, schedule: str, options: str) -> str:
    """The table's row label: the paper's label, plus the schedule / options when they are not the default."""
    from raygems.sweep.config import default_schedule

    if method == BEST_AVAILABLE:
        return "Best Available"
    from raygems.bandits import get_method

    label = get_method(method).label
    extras = []
    if schedule != NO_SCHEDULE and schedule != default_schedule(method):
        extras.append(schedule)
    if options not in ("{}", ""):
        extras.append(re.sub(r'[{}"]', "", options).replace(": ", "="))
    return f"{label} ({', '.join(extras)})" if extras else label


def finish_rows(rows: pd.DataFrame, matrices: dict[str, Any]) -> pd.DataFrame:
    """Add the label and tree size to summary rows and put the columns in results.parquet's order."""
    if rows.empty:
        return store.empty_results()
    rows = rows.copy()
    rows["label"] = [row_label(m, s, o) for m, s, o in zip(rows["method"], rows["schedule"], rows["options"])]
    rows["num_models"] = [matrices[tree].num_models for tree in rows["tree"]]
    return rows[list(store.RESULT_COLUMNS)]


# ------------------------------------------------------------------------------------------------ Tune
def ensure_ray(address: str | None = None, num_cpus: int | None = None, plugins: tuple[str, ...] = ()) -> None:
    """Use the running Ray session, join `address`, or start a local one in this process (whose workers get the
    plug-ins' folders on their PYTHONPATH: raygems.plugins)."""
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                **local_workers_env(plugins, address)}}   # workers import the plug-ins from here
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)


#: Spellings of Tune's resource keys -> the names Ray's nodes report them under (others are custom resources).
RAY_RESOURCE_NAMES = {"cpu": "CPU", "CPU": "CPU", "gpu": "GPU", "GPU": "GPU", "memory": "memory"}


def check_trial_resources(requested: dict[str, float], nodes: list[dict[str, float]]) -> None:
    """Refuse a trial that no node of the cluster can hold (one trial runs on one node): a resource the
    cluster lacks, or more of it than its largest node has. Tune would otherwise wait for it forever.
    `nodes`: the resources of each alive node, as `ray.nodes()` reports them."""
    for key, amount in requested.items():
        name = RAY_RESOURCE_NAMES.get(key, key)
        per_node = [float(node.get(name, 0.0)) for node in nodes]
        largest, total = max(per_node, default=0.0), sum(per_node)
        if amount <= largest:
            continue
        if total == 0:
            raise SweepConfigError(f"resources_per_trial.{key} = {amount:g}, but the Ray cluster has no {name} "
                                   f"({_describe(nodes)})")
        raise SweepConfigError(f"resources_per_trial.{key} = {amount:g}, but no node of the Ray cluster has that "
                               f"much: the largest has {largest:g} {name} ({_describe(nodes)})")


def _describe(nodes: list[dict[str, float]]) -> str:
    total = {name: sum(float(n.get(name, 0.0)) for n in nodes) for name in ("CPU", "GPU")}
    return f"{len(nodes)} node(s) with {total['CPU']:g} CPU and {total['GPU']:g} GPU in all"


def cluster_nodes() -> list[dict[str, float]]:
    """The resources of every alive node of the Ray cluster this process is connected to."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def _make_recorder(out_dir: Path, matrices: dict[str, Any], total_cells: int, progress: bool):
    """A Tune callback that saves each trial's cells as soon as the trial finishes, with a progress bar."""
    from ray import tune
    from tqdm.auto import tqdm

    accuracies = {tree: m.accuracies for tree, m in matrices.items()}
    keep = (*CELL_KEYS, *SUMMARY_METRICS, "code_version", *PER_REP_METRICS)

    class SweepRecorder(tune.Callback):
        def __init__(self):
            self.pending: dict[str, dict[tuple, dict]] = {}
            self.cells_saved = 0
            self.bar = tqdm(total=total_cells, desc="sweep", unit="cell", disable=not progress, file=sys.stderr,
                            dynamic_ncols=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "mean_rank" not in result:
                return
            row = {k: result[k] for k in keep}
            key = store.cell_key(row)
            cells = self.pending.setdefault(trial.trial_id, {})
            if key not in cells:
                self.bar.update(1)
                self.bar.set_postfix_str(f"{row['tree']} {row['method']} N={row['budget']}", refresh=False)
            cells[key] = row

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._flush(trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._flush(trial.trial_id)

        def _flush(self, trial_id: str) -> None:
            rows = list(self.pending.pop(trial_id, {}).values())
            if not rows:
                return
            summary = finish_rows(pd.DataFrame([{k: r[k] for k in (*CELL_KEYS, *SUMMARY_METRICS, "code_version")}
                                                for r in rows]), matrices)
            store.save(out_dir, summary, per_rep_frame(rows, accuracies))
            self.cells_saved += len(rows)

        def close(self) -> None:
            for trial_id in list(self.pending):
                self._flush(trial_id)
            self.bar.close()

    return SweepRecorder()


def _trial_dirname(trial) -> str:
    cell = trial.config["cell"]
    text = f"{cell['tree']}_{cell['method']}_{cell['schedule']}_s{cell['seed']}_{trial.trial_id}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def run_trials(trials: list[dict[str, Any]], matrices: dict[str, Any], config: SweepConfig, out_dir: Path,
               total_cells: int, progress: bool, verbose: int) -> tuple[list[str], int]:
    """Run the trial specs as one Tune grid; return the errors and the number of cells recorded."""
    import ray
    from ray import tune

    refs = {tree: ray.put(matrix) for tree, matrix in matrices.items()}
    trainable = tune.with_resources(tune.with_parameters(replay_trial, matrix_refs=refs, plugins=config.plugins),
                                    dict(config.resources_per_trial))
    recorder = _make_recorder(out_dir, matrices, total_cells, progress)
    run_name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', config.name)}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(max_concurrent_trials=config.max_concurrent_trials, reuse_actors=True,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=run_name, storage_path=str((out_dir / TUNE_FOLDER).resolve()),
                                  callbacks=[recorder], verbose=verbose, stop=_stop_on_interrupt(),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        with _quiet_tune(verbose), _stop_tune_on_ctrl_c() as interrupted:
            grid = tuner.fit()
    finally:
        recorder.close()   # saves the cells of trials that reported before a stop
    if interrupted.is_set():
        raise KeyboardInterrupt   # the caller says how to continue (`raygems sweep`: run the same command again)
    errors = [f"{_trial_label(r.config)}: {type(r.error).__name__}: {r.error}" for r in grid if r.error is not None]
    return errors, recorder.cells_saved


# ------------------------------------------------------------------------------------------- Ctrl-C
#: Set by the first Ctrl-C during `tuner.fit()`: Tune then stops every trial (`_stop_on_interrupt`), the
#: recorder saves what finished, and `run_trials` raises KeyboardInterrupt.
_INTERRUPTED = threading.Event()


def interrupt_requested() -> bool:
    """Whether Ctrl-C was pressed during the current `tuner.fit()`."""
    return _INTERRUPTED.is_set()


def _stop_on_interrupt():
    """A Tune stopper that ends the whole run once Ctrl-C was pressed (it asks `interrupt_requested`, so that any
    copy Tune makes of it, pickled or not, sees the same flag)."""
    from ray.tune import Stopper

    class StopOnInterrupt(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return interrupt_requested()

    return StopOnInterrupt()


@contextlib.contextmanager
def _stop_tune_on_ctrl_c():
    """During `tuner.fit()`: the first Ctrl-C (SIGINT) stops the run cleanly instead of Tune's own handler,
    which ends it with 'Resume experiment with: Tuner.restore(...)' (this command resumes differently) and
    returns as if it had finished; a second Ctrl-C raises KeyboardInterrupt at once."""
    _INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread() or _through_ray_client():
        yield _INTERRUPTED      # signals reach the main thread only; through Ray Client (ray://) the grid runs
        return                  # on the cluster, where this process's flag is not seen: Tune's own handling

    def on_sigint(signum, frame):
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt
        _INTERRUPTED.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    saved = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"   # read by tune.run when it starts
    try:
        yield _INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
        _restore_env("TUNE_DISABLE_SIGINT_HANDLER", saved)


def _through_ray_client() -> bool:
    """Whether this process is connected through Ray Client (`--address ray://...`)."""
    try:
        from ray.util.client import ray as client
    except ImportError:   # pragma: no cover
        return False
    return bool(client.is_connected())


#: Tune's log messages that say nothing to a user of this command, or the wrong thing: the interruption
#: notices (which point to Tuner.restore), metrics it cannot read for trials a stop left unstarted, and the
#: end-of-run bookkeeping. With --verbose 1 or 2 only the first two kinds are dropped.
_TUNE_NOISE = ("Stop signal received", "Experiment has been interrupted", "Training has been interrupted",
               "Failed to fetch metrics", "Trials did not complete")
_TUNE_CHATTER = ("Wrote the latest version of all result files", "Total run time")
_TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis", "ray.tune.result_grid")


class _TuneNoiseFilter(logging.Filter):
    def __init__(self, verbose: int):
        super().__init__()
        self.drop = _TUNE_NOISE + (_TUNE_CHATTER if verbose == 0 else ())

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        return not any(text in message for text in self.drop)


@contextlib.contextmanager
def _quiet_tune(verbose: int):
    """Drop Tune's noise (`_TUNE_NOISE`) while the grid runs; at --verbose 0 also its start banner, which its
    new console output prints even when silent (the legacy reporter prints nothing at verbose 0)."""
    noise = _TuneNoiseFilter(verbose)
    loggers = [logging.getLogger(name) for name in _TUNE_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    if verbose == 0:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)
        _restore_env("RAY_AIR_NEW_OUTPUT", saved)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _trial_label(config: dict[str, Any] | None) -> str:
    cell = (config or {}).get("cell", {})
    return f"{cell.get('tree')} / {cell.get('method')} / {cell.get('schedule')} / seed {cell.get('seed')}"


# ------------------------------------------------------------------------------------------------- entry
@dataclass
class RunPlan:
    """The cells of a sweep, those missing from results.parquet, and those this call runs."""

    cells: list[dict[str, Any]]
    missing: list[dict[str, Any]]
    todo: list[dict[str, Any]]

    def describe(self, name: str, results_path: Path) -> str:
        later = len(self.missing) - len(self.todo)
        return (f"sweep {name!r}: {len(self.cells)} cells in {len(group_trials(self.cells))} trials; "
                f"{len(self.cells) - len(self.missing)} already in {results_path}, {len(self.todo)} to run in "
                f"{len(group_trials(self.todo))} trials" + (f" ({later} left for later: --methods)" if later else ""))


def plan_run(config: SweepConfig, matrices: dict[str, Any], results: pd.DataFrame, *,
             only_methods: list[str] | None = None, fresh: bool = False) -> RunPlan:
    """Which cells to run: those not in `results` (all of them with `fresh`), of `only_methods` if given.
    Checks every cell's algorithm first (`check_cells`)."""
    cells = plan_cells(config, matrices)
    if only_methods is not None:
        known = list(dict.fromkeys([*config.method_names(), *config.references]))
        unknown = [m for m in only_methods if m not in known]
        if unknown:
            raise SweepConfigError(f"--methods: {unknown[0]!r} is not in this sweep; it has {', '.join(known)}")
    check_cells(config, cells, matrices)
    done = set() if fresh else store.done_keys(results)
    missing = [c for c in cells if store.cell_key(c) not in done]
    todo = [c for c in missing if only_methods is None or c["method"] in only_methods]
    return RunPlan(cells, missing, todo)


def run_sweep(config: SweepConfig, out_dir: str | Path, *, address: str | None = None, num_cpus: int | None = None,
              only_methods: list[str] | None = None, fresh: bool = False, progress: bool = True,
              verbose: int = 0, report: bool = True) -> SweepOutcome:
    """Run the cells of `config` that `out_dir/results.parquet` lacks, then write table.md and the plot.

    `only_methods`: run only these methods' (or references') cells this time; the report still covers
    every cell of the config found in results.parquet. `fresh`: run the cells even when results.parquet
    has them (their rows are replaced), e.g. after the algorithms changed.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    matrices = load_matrices(config)
    plan = plan_run(config, matrices, store.load_results(out_dir), only_methods=only_methods, fresh=fresh)
    trials = group_trials(plan.todo)
    if trials:   # Ray up, and the trials fit its nodes, before anything is written
        ensure_ray(address, num_cpus, config.plugins)
        check_trial_resources(config.resources_per_trial, cluster_nodes())
    store.save(out_dir, finish_rows(best_available_rows(config, matrices), matrices), pd.DataFrame())
    errors: list[str] = []
    cells_run = 0
    print(plan.describe(config.name, out_dir / store.RESULTS_FILE), file=sys.stderr)
    if trials:
        errors, cells_run = run_trials(trials, matrices, config, out_dir, len(plan.todo), progress, verbose)
    results = config_rows(config, store.load_results(out_dir), matrices)
    outcome = SweepOutcome(out_dir=out_dir, results=results, trials_run=len(trials), cells_run=cells_run,
                           cells_skipped=len(plan.cells) - len(plan.missing), cells_planned=len(plan.todo),
                           errors=errors)
    if report and not results.empty:
        from raygems.sweep.report import write_report

        outcome.files = write_report(results, out_dir, config=config,
                                     per_rep=config_rows(config, store.load_per_rep(out_dir), matrices))
    outcome.files.setdefault("results", out_dir / store.RESULTS_FILE)
    outcome.wall_seconds = time.perf_counter() - start
    return outcome


def config_rows(config: SweepConfig, frame: pd.DataFrame, matrices: dict[str, Any] | None = None) -> pd.DataFrame:
    """The rows of results.parquet (or per_rep.parquet) that belong to this config's cells."""
    if frame.empty:
        return frame
    if matrices is None:
        matrices = load_matrices(config)
    wanted = {store.cell_key(c) for c in plan_cells(config, matrices)}
    wanted |= {store.cell_key(r) for r in best_available_rows(config, matrices).to_dict("records")}
    keys = frame[list(CELL_KEYS)].to_dict("records")
    mask = np.fromiter((store.cell_key(k) in wanted for k in keys), dtype=bool, count=len(keys))
    return frame[mask].reset_index(drop=True)
