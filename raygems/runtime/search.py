"""A live search, end to end: candidates -> query pool -> Ray driver and model actors -> summary.

    from raygems.runtime import SearchConfig, run_search
    result = run_search(SearchConfig(tree="path/to/local/tree", tasks=("gsm8k",), budget=50, out="runs/x"))
    result.summary["chosen_model"], result.leaderboard

Everything lands in `out`, a run directory (`raygems.run_directory`: search.json, tree.parquet, pool.parquet,
store/, leaderboard.parquet, events.parquet, summary.json).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.errors import SetupError, UsageError
from raygems.files import DiskFull, atomic_write, format_bytes, remove_stale_temporaries, write_json, write_parquet
from raygems.hub.types import ModelRecord
from raygems.run_directory import RunDirectory
from raygems.runtime.candidates import (PriorDecision, apply_prior, list_tree_candidates, matrix_candidates,
                                        popular_base_of, query_pool)
from raygems.runtime.config import (DEFAULT_CACHE_DIR, RETIRED_SETTINGS, RUNTIME_ONLY, SearchConfig,
                                    setting_type_problem)
from raygems.runtime.driver import DriverSettings, remote_driver
from raygems.runtime.evaluation import MATRIX_BACKENDS, EvaluatorSpec
from raygems.runtime.lock import RunLock
from raygems.runtime.store import ResultStore

logger = logging.getLogger(__name__)

__all__ = ["SearchConfig", "SearchResult", "run_search"]


@dataclass
class SearchResult:
    summary: dict[str, Any]
    leaderboard: pd.DataFrame
    out: Path


# ---------------------------------------------------------------------------------------------- running
def read_saved_search(out: str | Path) -> dict[str, Any]:
    """The settings saved in OUT/search.json when the search in `out` started."""
    path = RunDirectory(out).search
    if not path.is_file():
        raise UsageError(f"nothing to resume in {out}: no search.json")
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{path}: expected the settings of a search, got {type(saved).__name__}")
    for name, unused in RETIRED_SETTINGS.items():   # saved by an earlier raygems, with the value that meant "none"
        if name in saved and saved[name] == unused:
            del saved[name]
    for name, value in saved.items():                # (a hand-edited file)
        problem = setting_type_problem(name, value)
        if problem:
            raise UsageError(f"{path}: {problem}")
    return saved


def differing_settings(config: SearchConfig, saved: dict[str, Any]) -> list[str]:
    """The settings defining the search (not the runtime-only ones) in which `config` and a saved search differ."""
    mine = config.identity()
    return sorted(k for k in set(mine) | set(saved) if k not in RUNTIME_ONLY and mine.get(k) != saved.get(k))


def _check_out_dir(config: SearchConfig, out: Path) -> SearchConfig:
    """The configuration to run in `out`: a new search, the same search again, or (--resume) the saved one with
    this run's runtime settings. A different search in the same directory is refused, naming the settings."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    saved_path = RunDirectory(out).search
    if saved_path.exists():
        differing = differing_settings(config, read_saved_search(out))
        if config.resume and differing:
            raise UsageError(f"--resume continues the search saved in {out}, but settings {differing} differ from "
                             f"it; drop them, or start a new search with another --out")
        if differing:
            raise UsageError(f"{out} holds a different search (settings {differing} differ); use another --out, "
                             f"or continue the saved one with `raygems search --resume --out {out}`")
    elif config.resume:
        raise UsageError(f"nothing to resume in {out}: no search.json")
    return config


def _check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when a cluster address of the form HOST:PORT does not answer (Ray itself
    retries for minutes). Other forms ("auto", "local", ray://...) and None are left to Ray."""
    import socket

    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or "://" in address:   # auto, local, ray://...: Ray's own forms
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SetupError(f"no Ray cluster answers at --address {address} ({exc.strerror or exc}); start one with "
                         f"`ray start --head` or `ray up cluster.yaml`, or leave --address out to run on this "
                         f"machine") from None


def _init_ray(config: SearchConfig) -> None:
    import ray

    if not ray.is_initialized():
        _check_ray_address(config.address)
        from raygems.plugins import local_workers_env

        env_vars = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                    **local_workers_env(config.plugins, config.address)}   # workers import the plug-ins from here
        ray.init(address=config.address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env_vars})


def _started_ray_here() -> bool:
    """Whether this process started the Ray cluster it is connected to (`ray.init()` with no cluster running: a
    single machine, to which no node will be added), rather than joining one (`--address`, `RAY_ADDRESS`,
    `ray job submit`, a head node started with `ray start --head`)."""
    try:
        from ray._private import worker
    except ImportError:   # pragma: no cover - a Ray without this module: assume a cluster that may grow
        return False
    node = getattr(worker, "_global_node", None)
    return bool(getattr(node, "head", False))


def _check_slots_fit(config: SearchConfig, settings: DriverSettings) -> None:
    """Refuse a model actor no node of a cluster this process started can hold (it would wait forever). A
    cluster it joined may grow (the autoscaler starts GPU nodes for the actors: cluster.yaml), so there it
    waits."""
    import ray

    if config.address is not None or not _started_ray_here() or settings.nodes_that_fit(ray.nodes()):
        return
    needs = ", ".join(f"{amount:g} {name}" for name, amount in settings.slot_needs().items())
    have = ray.cluster_resources()
    raise UsageError(f"a model actor needs {needs} (--cpus-per-model, --gpus-per-model, --slot-resource), but no "
                     f"node of this machine's Ray cluster has that ({have.get('CPU', 0):g} CPU, "
                     f"{have.get('GPU', 0):g} GPU in all)")


def _gpus_per_model(config: SearchConfig) -> float:
    if config.gpus_per_model is not None:
        return float(config.gpus_per_model)
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    return (1.0 / config.max_loaded) if gpus else 0.0


def _candidates(config: SearchConfig, out: Path, pool) -> tuple[list[ModelRecord], PriorDecision, bool]:
    """Every listed candidate, the prior's decision, and whether the candidates come from the tree saved when
    this search started. A search continued in its directory (`--resume`, or the same command again) reuses
    that tree instead of listing again: a hub tree changes (downloads, new uploads, revisions), and a
    different candidate list would ask for different (model, query) pairs."""
    run = RunDirectory(out)
    saved_tree = run.tree
    if saved_tree.exists() and run.search.exists():
        from raygems.hub.listing import tree_records

        frame = pd.read_parquet(saved_tree)
        was_pruned = (frame.pop("pruned_by_prior").to_numpy(dtype=bool) if "pruned_by_prior" in frame
                      else np.zeros(len(frame), dtype=bool))
        listed = tree_records(frame)
        kept = [m for m, pruned in zip(listed, was_pruned) if not pruned]
        decision = apply_prior(replace(config, prior_keep=1.0), kept)   # priority and beliefs; nothing more pruned
        decision.pruned = [m.model_id for m, pruned in zip(listed, was_pruned) if pruned]
        return listed, decision, True
    listed = matrix_candidates(config)[0] if config.matrix is not None else list_tree_candidates(config)
    return listed, apply_prior(config, listed), False


def run_search(config: SearchConfig) -> SearchResult:
    out = Path(config.out)
    config = _check_out_dir(config, out)
    started = time.time()
    pool = query_pool(config)
    allow_code_execution = _code_execution_allowed(config, pool)
    listed, decision, continued = _candidates(config, out, pool)
    pool_path = RunDirectory(out).pool
    if pool_path.exists():
        from raygems.tasks.pool import QueryPool

        saved = QueryPool.from_parquet(pool_path)
        if saved.content_hash != pool.content_hash:
            raise ValueError(f"{pool_path} has content hash {saved.content_hash[:12]}, but this search's pool hashes "
                             f"to {pool.content_hash[:12]}: the tasks or their data changed; use another --out")
    if config.budget > len(pool):
        raise ValueError(f"budget per model N={config.budget} exceeds the pool of {len(pool)} queries")
    # written only once the inputs are known to be good, so a corrected command is not refused as "different"
    with RunLock(out):
        remove_stale_temporaries(out)      # left by writes a crash interrupted; nobody else writes here now
        return _run_locked(config, out, started, pool, allow_code_execution, listed, decision, continued)


def _run_locked(config: SearchConfig, out: Path, started: float, pool, allow_code_execution: bool,
                listed: list[ModelRecord], decision: PriorDecision, continued: bool) -> SearchResult:
    candidates, priority, pruned = decision.kept, decision.priority, decision.pruned
    run = RunDirectory(out)
    pool_path = run.pool
    write_json(run.search, {**config.identity(), **{
        k: getattr(config, k) for k in RUNTIME_ONLY if k not in ("progress", "resume")}})
    if not continued:
        table = pd.DataFrame([m.to_row() for m in listed])
        table["pruned_by_prior"] = table["model_id"].isin(set(pruned))
        write_parquet(run.tree, table)
    if not pool_path.exists():
        atomic_write(pool_path, pool.to_parquet)

    _init_ray(config)
    import ray

    spec = EvaluatorSpec(backend=config.backend, settings=dict(config.backend_settings), tree=config.tree,
                         matrix=config.matrix, allow_code_execution=allow_code_execution, plugins=config.plugins)
    settings = DriverSettings(method=config.method, budget_per_model=config.budget, seed=config.seed,
                              method_options={**config.algorithm_options, **decision.method_options},
                              max_loaded=config.max_loaded,
                              chunk_size=config.chunk_size, cpus_per_model=config.cpus_per_model,
                              gpus_per_model=_gpus_per_model(config), slot_resource=config.slot_resource,
                              arm_priority=priority,
                              lookahead_batch=_lookahead_batch(config))
    _check_slots_fit(config, settings)
    store_root = str(run.store.resolve())
    checkpoints = _checkpoint_source(config, candidates)
    driver = remote_driver().remote(candidates, pool, store_root, spec, settings, checkpoints)
    try:
        waiting_started, cpu_started = time.time(), time.process_time()
        outcome = _unwrapped(lambda: _wait(driver, driver.run.remote(), config.progress, "search"))
        waiting = {"cli_wait_s": round(time.time() - waiting_started, 2),          # this process while the
                   "cli_wait_cpu_s": round(time.process_time() - cpu_started, 2)}  # driver searched
        chosen = outcome["chosen"]
        base = popular_base_of(candidates)
        final_arms = [chosen, base] if config.final_evaluation else []
        if config.exhaustive:
            final_arms = list(range(len(candidates)))
        if final_arms:
            _unwrapped(lambda: _wait(driver, driver.evaluate_all.remote(final_arms), config.progress,
                                     "final evaluation"))
        progress = ray.get(driver.status.remote())
        failures = ray.get(driver.failures.remote())
        cost = {**ray.get(driver.cost_summary.remote()), **waiting}
        events = ray.get(driver.cost_events.remote())
        accuracy = ray.get(driver.accuracy_table.remote())
        ray.get(driver.shutdown.remote())
    finally:
        ray.kill(driver)      # its model actors and fetch workers die with it (an error, Ctrl-C: nothing lingers)

    measured_cost = _write_events(out, events, cost)                  # what raygems plan calibrates from
    leaderboard = _leaderboard(accuracy, candidates, outcome, failures, chosen, base)
    write_parquet(run.leaderboard, leaderboard)
    complete = leaderboard[leaderboard["complete"]]
    best = complete.sort_values(["accuracy", "downloads"], ascending=[False, False]).iloc[0]["model_id"] \
        if config.exhaustive and not complete.empty else None
    acc = dict(zip(leaderboard["model_id"], leaderboard["accuracy"]))
    summary = {
        "chosen_model": candidates[chosen].model_id,
        "popular_base": candidates[base].model_id,
        "chosen_accuracy": _finite(acc.get(candidates[chosen].model_id)),
        "base_accuracy": _finite(acc.get(candidates[base].model_id)),
        "best_model": best,
        "best_accuracy": _finite(acc.get(best)) if best else None,
        "queries_paid": int(progress["paid"]),
        "queries_reused": int(progress["reused"]),
        "failed_models": [{"model_id": f.model_id, "reason": f.reason, "stage": f.stage} for f in failures.values()],
        "pruned_by_prior": pruned,
        "method": config.method, "budget_per_model": config.budget, "seed": config.seed,
        "budget_used": outcome["budget_used"], "budget": outcome["budget"], "rounds": outcome["rounds"],
        "num_candidates": len(candidates), "pool_size": len(pool), "pool_hash": pool.content_hash,
        "backend": config.backend, "elapsed_s": round(time.time() - started, 2), "cost": cost,
        "measured_cost": measured_cost,
    }
    write_json(run.summary, summary)
    _compact(store_root)
    return SearchResult(summary, leaderboard, out)


def _compact(store_root: str) -> None:
    """One part instead of one per batch, so that the next reader opens one file: the run's last write, after its
    summary, and not needed for anything (a full disk here leaves the parts as they are, every result kept)."""
    try:
        ResultStore(store_root).compact()
    except DiskFull as error:
        logger.warning("the result store's parts were not merged into one: %s", error)


def _write_events(out: Path, events: list[dict], cost: dict) -> dict:
    """Write this run's events log, unless it made no actor call (everything was in the store) and an earlier
    run's log is there: that one measured the speeds `raygems plan --calibrate-from` needs, so it stays. Returns
    the cost summary of the run whose log is kept (`summary.json["measured_cost"]`)."""
    run = RunDirectory(out)
    if any(event.get("kind") == "call" for event in events) or not run.events.exists():
        write_parquet(run.events, pd.DataFrame(events))
        return cost
    try:
        earlier = json.loads(run.summary.read_text())
    except (OSError, ValueError):
        return cost
    return earlier.get("measured_cost") or earlier.get("cost") or cost


def _lookahead_batch(config: SearchConfig) -> int:
    """Queries per generate batch that --lookahead fills (the backend's batch size over both prompt variants)."""
    from raygems.backends.transformers_backend import TransformersSettings
    from raygems.tasks.prompting import PROMPT_VARIANTS

    if not config.lookahead:
        return 0
    batch = int(config.backend_settings.get("batch_size", TransformersSettings.batch_size))
    return max(1, batch // len(PROMPT_VARIANTS))


def _checkpoint_source(config: SearchConfig, candidates: list[ModelRecord]):
    """How model actors get checkpoints: from the local tree's folders, or fetched from the hub to each node's
    cache by the fetch stage (raygems.runtime.fetch)."""
    from raygems.runtime.fetch import CheckpointSource, FetchSettings, FetchStage

    if config.matrix is not None or Path(config.tree).is_dir():
        return CheckpointSource(candidates)
    from huggingface_hub import constants

    from raygems.runtime.cache import parse_size

    settings = FetchSettings(cache_dir=config.cache_dir or DEFAULT_CACHE_DIR,
                             limit_bytes=None if config.cache_limit is None else parse_size(config.cache_limit),
                             concurrency=config.fetch_concurrency, overlap=config.fetch_ahead,
                             endpoint=constants.ENDPOINT, offline=constants.is_offline_mode())
    return FetchStage(candidates, settings)


def _code_execution_allowed(config: SearchConfig, pool) -> bool:
    """Whether model-written code may run in this search. A search whose tasks score by running it (mbpp) is
    refused before anything is evaluated when it may not: such answers would otherwise all score 0."""
    from raygems.errors import SetupError
    from raygems.tasks.registry import task_executes_code
    from raygems.tasks.sandbox import ENV_FLAG, SandboxUnavailable, available_isolation, code_execution_enabled

    allowed = code_execution_enabled(config.allow_code_execution)
    generating = config.backend not in MATRIX_BACKENDS
    needing = [task for task in pool.tasks if task_executes_code(task)] if generating else []
    if needing and not allowed:
        raise UsageError(f"task(s) {', '.join(needing)} score answers by running model-written code, which is not "
                         f"allowed here: pass --allow-code-execution (or set {ENV_FLAG}=1) to run it in a sandbox "
                         f"(docs/tasks.md), or choose other --tasks")
    if needing:
        try:
            available_isolation()
        except SandboxUnavailable as exc:
            raise SetupError(str(exc)) from None
    return allowed


def _unwrapped(call):
    """`call()`, with an error that a Ray actor raised for the user (a RaygemsError) re-raised as itself,
    without Ray's wrapping (its message would otherwise start with the actor's name and traceback)."""
    from raygems.errors import RaygemsError

    try:
        return call()
    except RaygemsError as exc:
        cause = getattr(exc, "cause", None)
        raise (cause if isinstance(cause, RaygemsError) else exc) from None


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)


def _leaderboard(table: pd.DataFrame, candidates, outcome, failures, chosen, base) -> pd.DataFrame:
    table["downloads"] = [m.downloads for m in candidates]
    table["kind"] = [m.kind for m in candidates]
    table["pulls"] = outcome["pulls"]
    status = np.full(len(candidates), "eliminated", dtype=object)
    status[[i for i in failures]] = "failed"
    status[chosen] = "chosen"
    table["status"] = status
    table["popular_base"] = [i == base for i in range(len(candidates))]
    table["failure"] = [failures[i].reason if i in failures else None for i in range(len(candidates))]
    return table.sort_values(["accuracy", "pulls"], ascending=[False, False], na_position="last").reset_index(drop=True)


def _wait(driver, ref, progress: bool, label: str):
    """Wait for a driver call, printing live progress every 2 seconds: round, survivors, queries paid out of the
    phase's budget with an ETA, reused and failed models, slots loaded, bytes fetched and cache use."""
    import ray

    last = ""
    while True:
        ready, _ = ray.wait([ref], timeout=2.0)
        if progress:
            line = progress_line(label, ray.get(driver.status.remote()))
            if line != last:     # (padded: a shorter line leaves none of the longer one behind it)
                print("\r" + line.ljust(len(last)), end="", file=sys.stderr, flush=True)
                last = line
        if ready:
            if progress:
                print(file=sys.stderr)
            return ray.get(ref)


def progress_line(label: str, s: dict) -> str:
    """One line of progress from the driver's status."""
    eta = "" if s.get("eta_s") is None else f"  ETA {format_duration(s['eta_s'])}"
    fetched = ""
    if s.get("fetch_bytes") or s.get("cache_bytes"):
        fetched = f"  fetched {format_bytes(s.get('fetch_bytes', 0))}  cache {format_bytes(s.get('cache_bytes', 0))}"
        if s.get("cache_limit_bytes"):
            fetched += f"/{format_bytes(s['cache_limit_bytes'])}"
    return (f"[{label}] round {s['round']:>2}  survivors {s['survivors']:>5}  "
            f"asked {s['requested']:>7}/{s['budget']}  paid {s['paid']:>7}  reused {s['reused']:>7}  "
            f"failed {s['failed']:>3}  loaded {s['loaded']:>2}{fetched}  {s['throughput_qps']:.1f} q/s  "
            f"{format_duration(s['elapsed_s'])}{eta}")


def format_duration(seconds: float) -> str:
    """'12m05s', or '3h07m' from an hour on (the progress line, `raygems plan`'s table)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
