"""Speeds measured by a finished run (`raygems plan --calibrate-from RUN_DIR`): every speed of
`raygems.plan.model.Speeds` but the download bandwidth, which is the network's and is given.

From RUN_DIR/events.parquet (`raygems.runtime.cost`), summary.json, search.json, pool.parquet and the store:

* decode: each call's generate seconds fitted (non-negative least squares) to the model's form,
  steps x (batches x step_s + sequences x step_per_sequence_s), with each call's steps the most any of its
  queries' tasks takes; a task's steps are the 95th percentile of its recorded completion tokens (a batch runs
  until its longest answer stops);
* loads: the mean load of a slot's later loads (less its bytes over `load_bandwidth`, when the sizes are
  known) is `load_fixed_s`; a slot's first load costs `first_load_extra_s` more (imports, device set-up);
* `warm_up_s`: the mean of the actors' warm-up imports (each reports its own with its first successful batch),
  which a slot's first call waits for;
* `call_overhead_s`: the mean of (call seconds as the driver saw them - load - generate - score);
* `slot_start_s`: the mean time from a slot's creation to its placement (runs that fetch), else to its first
  call's start less the actor's warm-up;
* `score_per_query_s`, `driver_event_s` (the driver's handling time per event), `round_overhead_s` (the mean
  gap between rounds), `fetch_latency_s` (the mean time a fetch spent asking the hub which files).

Means, not medians: a plan adds these times up, and on a loaded machine their tails (a call that waited seconds
for a CPU) are part of what a run costs.
* the run's models: accuracy per model and the failures, for drawing a plan's answers (`RunFacts`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.errors import UsageError, one_line
from raygems.plan.model import Speeds
from raygems.plan.workload import RunFacts
from raygems.run_directory import RunDirectory


@dataclass(frozen=True)
class Calibration:
    speeds: Speeds
    facts: RunFacts
    measured: dict          # what was measured, for the report (samples, fit residuals)


def read_run(run_dir: str | Path) -> dict:
    """The pieces of a finished run that calibration reads; one clear line when one is missing."""
    run = RunDirectory(run_dir)
    needed = {"events": run.events, "summary": run.summary, "search": run.search, "pool": run.pool}
    missing = [str(path) for path in needed.values() if not path.is_file()]
    if missing:
        raise UsageError(f"--calibrate-from {run_dir}: not a finished run with an events log (missing "
                         f"{', '.join(missing)}); a search written by this raygems version has them")
    pieces: dict = {"store": run.store}
    for name, path in needed.items():
        try:
            pieces[name] = pd.read_parquet(path) if path.suffix == ".parquet" else json.loads(path.read_text())
        except (OSError, ValueError) as exc:     # (arrow's and json's errors derive from these)
            raise UsageError(f"--calibrate-from {run_dir}: {path} cannot be read ({one_line(exc)})") from None
        if path.suffix == ".json" and not isinstance(pieces[name], dict):
            raise UsageError(f"--calibrate-from {run_dir}: {path} holds {type(pieces[name]).__name__}, not the "
                             f"object a run writes")
    return pieces


def calibrate(run_dir: str | Path, base: Speeds = Speeds(), sizes: dict[str, int] | None = None) -> Calibration:
    """Speeds measured by the run in `run_dir`, the others (download bandwidth) from `base`. UsageError, in one
    line, for a run whose files are not what a search writes (damaged or edited)."""
    run = read_run(run_dir)
    try:
        return _calibrate(run, run_dir, base, sizes)
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UsageError(f"--calibrate-from {run_dir}: its files are not what a search writes (damaged or edited?): "
                         f"{one_line(exc)}") from None


def _calibrate(run: dict, run_dir: str | Path, base: Speeds, sizes: dict[str, int] | None) -> Calibration:
    from raygems.runtime.store import ResultStore

    events, summary, search, pool = run["events"], run["summary"], run["search"], run["pool"]
    rows = ResultStore(run["store"]).results()
    tasks = list(dict.fromkeys(str(t) for t in pool["task"]))
    task_of_query = np.asarray([tasks.index(str(t)) for t in pool["task"]], dtype=np.int64)
    limits = {t: int(pool.loc[pool["task"] == t, "max_new_tokens"].max()) for t in tasks}
    steps = _steps_per_task(rows, limits)
    step_array = np.asarray([steps[t] for t in tasks], dtype=np.int64)
    every_call = events[events["kind"] == "call"].copy()
    failed = every_call["failed"].notna() if "failed" in every_call else pd.Series(False, index=every_call.index)
    calls = every_call[~failed].copy()
    if calls.empty:
        raise UsageError(f"--calibrate-from {run_dir}: the run made no successful actor call to measure")
    batch_size = int(search.get("backend_settings", {}).get("batch_size", 32))
    if search.get("backend") == "replay":
        batch_size = base.batch_size
    calls["steps"] = [int(step_array[task_of_query[np.asarray(q, dtype=np.int64)]].max()) for q in
                      calls["query_index"]]
    calls["seconds"] = calls["returned"] - calls["submitted"]
    every_call["seconds"] = every_call["returned"] - every_call["submitted"]
    measured: dict = {"calls": int(len(calls)), "steps": steps, "batch_size": batch_size}

    step_s, per_sequence = _fit_decode(calls, batch_size, base.variants, measured)
    models = dict(zip(*_arms_and_ids(events, summary, run_dir)))
    work = calls["load_s"] + calls["generate_s"] + calls["score_s"]
    firsts = every_call.sort_values("submitted").groupby("slot").head(1).index      # a slot's first call
    later = calls[(calls["load_s"] > 0) & ~calls.index.isin(firsts)]
    overhead_sample = calls[~calls.index.isin(firsts)]
    overhead = float(np.mean((overhead_sample["seconds"] - work.loc[overhead_sample.index]).clip(lower=0))) \
        if len(overhead_sample) else base.call_overhead_s

    def reading_s(arms) -> np.ndarray:
        """Seconds to read these arms' checkpoints at `load_bandwidth` (0 where the sizes are not known)."""
        return np.asarray([(sizes or {}).get(models.get(a, ""), 0) for a in arms], dtype=float) / base.load_bandwidth

    load_fixed = float(np.mean(later["load_s"] - reading_s(later["arm"]))) if len(later) else base.load_fixed_s
    load_fixed = max(0.0, load_fixed)
    warm_ups = _warm_ups(every_call)
    warm_up = float(warm_ups.mean()) if len(warm_ups) else 0.0
    first_extra, first_loads = _first_load_extra(every_call, calls, firsts, overhead, load_fixed, warm_ups,
                                                 reading_s, base)
    slot_start = _slot_start(events, calls, firsts, work, overhead, warm_ups, base)
    queries = float(calls["queries"].sum())
    score = float(calls["score_s"].sum()) / queries if queries else base.score_per_query_s
    cost = summary.get("measured_cost") or summary.get("cost", {})   # of the run that wrote the events log
    driver = cost["driver_s"] / cost["driver_events"] if cost.get("driver_events") else base.driver_event_s
    rounds = events[events["kind"] == "round"].sort_values("round")
    gaps = (rounds["start"].to_numpy()[1:] - rounds["t"].to_numpy()[:-1]) if len(rounds) > 1 else np.array([])
    round_overhead = float(np.mean(gaps)) if gaps.size else base.round_overhead_s
    fetches = events[(events["kind"] == "fetch")] if "kind" in events else events.iloc[:0]
    fetched = fetches[fetches["bytes"] > 0] if len(fetches) else fetches
    latency = float(np.mean(fetched["plan_s"])) if len(fetched) else base.fetch_latency_s
    speeds = replace(base, step_s=step_s, step_per_sequence_s=per_sequence, load_fixed_s=load_fixed,
                     first_load_extra_s=first_extra, call_overhead_s=overhead, slot_start_s=slot_start,
                     warm_up_s=warm_up, score_per_query_s=score, driver_event_s=float(driver),
                     round_overhead_s=max(0.0, round_overhead), fetch_latency_s=latency, batch_size=batch_size)
    measured.update({"loads": int((calls["load_s"] > 0).sum()), "first_loads": first_loads,
                     "fetches": int(len(fetched)),
                     "rounds": int(len(rounds)), "wall_s": cost.get("wall_s")})
    return Calibration(speeds, _facts(summary, run_dir, steps), measured)


def _steps_per_task(rows: pd.DataFrame, limits: dict[str, int]) -> dict[str, int]:
    """Decode steps of a generate batch per task: the 95th percentile of recorded completion tokens."""
    steps = {}
    for task, limit in limits.items():
        tokens = rows.loc[rows["task"] == task, "completion_tokens"] if len(rows) else pd.Series([], dtype=float)
        tokens = tokens[tokens > 0]
        steps[task] = int(min(limit, np.ceil(np.percentile(tokens, 95)))) if len(tokens) else int(limit)
    return steps


def _fit_decode(calls: pd.DataFrame, batch_size: int, variants: int, measured: dict) -> tuple[float, float]:
    """Non-negative least squares of generate seconds on steps x batches and steps x sequences."""
    from scipy.optimize import nnls

    sequences = calls["queries"].to_numpy() * variants
    batches = np.ceil(sequences / batch_size)
    steps = calls["steps"].to_numpy()
    design = np.column_stack([steps * batches, steps * sequences]).astype(float)
    target = calls["generate_s"].to_numpy(dtype=float)
    if not np.any(target > 0):
        measured["decode_fit"] = "no generation time recorded (replay backend)"
        return 0.0, 0.0
    (step_s, per_sequence), residual = nnls(design, target)
    predicted = design @ np.array([step_s, per_sequence])
    measured["decode_fit"] = {"calls": int(len(target)), "generate_s": round(float(target.sum()), 3),
                              "relative_error": round(float(np.abs(predicted - target).sum() / target.sum()), 3)}
    return float(step_s), float(per_sequence)


def _warm_ups(every_call: pd.DataFrame) -> pd.Series:
    """Each slot's warm-up as its actor reported it (with its first successful batch); empty for runs from
    before actors reported it, and without the slots whose every call failed."""
    if "warm_up_s" not in every_call:
        return pd.Series(dtype=float)
    return every_call.dropna(subset=["warm_up_s"]).groupby("slot")["warm_up_s"].max()


def _first_load_extra(every_call: pd.DataFrame, calls: pd.DataFrame, firsts, overhead: float, load_fixed: float,
                      warm_ups: pd.Series, reading_s, base: Speeds) -> tuple[float, int]:
    """`first_load_extra_s` (what a slot's first load costs beyond a later one of the same size, less the bytes
    read) and how many loads gave it. With the warm-ups reported: the slots' first calls that loaded, as their
    actors timed the load (the wait for the warm-up is the warm-up's, and how long it is depends on the first
    download); where every slot's first call failed, each slot's first successful load. In older runs: the
    first calls beyond generating and scoring (the load, the wait for the warm-up when it was not done, all of
    it when that checkpoint failed to load)."""
    if len(warm_ups):
        loaded = calls[calls["load_s"] > 0]
        first = loaded.loc[loaded.index.intersection(firsts)]
        if not len(first):
            first = loaded.sort_values("submitted").groupby("slot").head(1)
        if not len(first):
            return base.first_load_extra_s, 0
        return max(0.0, float((first["load_s"] - reading_s(first["arm"])).mean()) - load_fixed), int(len(first))
    first_calls = [every_call.loc[i, "seconds"] - overhead - float(reading_s([every_call.loc[i, "arm"]])[0])
                   - (calls.loc[i, "generate_s"] + calls.loc[i, "score_s"] if i in calls.index else 0.0)
                   for i in firsts]
    if not first_calls:
        return base.first_load_extra_s, 0
    return max(0.0, float(np.mean(first_calls)) - load_fixed), len(first_calls)


def _slot_start(events: pd.DataFrame, calls: pd.DataFrame, firsts, work: pd.Series, overhead: float,
                warm_ups: pd.Series, base: Speeds) -> float:
    """From a slot's creation to its placement (a run that fetches waits for it), else to when its first call,
    sent at once, could start: the call's time less its own work and the actor's warm-up, which it waited for
    and the plan charges apart (slots whose first call failed say nothing: how long it loaded is unknown)."""
    slots = events[events["kind"] == "slot"].set_index("slot")["t"]
    placed = events[events["kind"] == "slot_placed"]
    if len(placed):
        return float(np.mean([t - slots.get(s, t) for s, t in zip(placed["slot"], placed["t"])]))
    first_ok = calls.loc[calls.index.intersection(firsts)]
    starts = [row.returned - slots.get(row.slot, row.submitted) - work.loc[i] - overhead
              - warm_ups.get(row.slot, 0.0) for i, row in first_ok.iterrows()]
    return max(0.0, float(np.mean(starts))) if starts else base.slot_start_s


def _arms_and_ids(events, summary, run_dir):
    """Arm numbers of the run's candidates and their model ids (tree.parquet order, pruned ones left out)."""
    tree = RunDirectory(run_dir).tree
    if not tree.is_file():
        return [], []
    frame = pd.read_parquet(tree)
    if "pruned_by_prior" in frame:
        frame = frame[~frame["pruned_by_prior"].astype(bool)]
    ids = frame["model_id"].tolist()
    return list(range(len(ids))), ids


def _facts(summary: dict, run_dir, steps: dict[str, int]) -> RunFacts:
    board = RunDirectory(run_dir).leaderboard
    accuracies = {}
    if board.is_file():
        frame = pd.read_parquet(board)
        accuracies = {m: float(a) for m, a in zip(frame["model_id"], frame["accuracy"]) if pd.notna(a)}
    failures = {f["model_id"]: f["stage"] for f in summary.get("failed_models", [])}
    return RunFacts(accuracies=accuracies, failures=failures, steps=steps)
