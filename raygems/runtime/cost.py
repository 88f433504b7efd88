"""What a search cost: time and tokens, added up by the driver from what every actor call and fetch reports.

`summary.json["cost"]` holds `CostLedger.summary()`:

    wall_s              seconds from the first round to the end of the last phase
    calls               model actor calls (batches)
    fetch_s, fetch_bytes    seconds spent downloading checkpoints (summed over fetches) and bytes downloaded
    load_s, loads, reloads  seconds loading checkpoints onto slots, how many loads, and how many of them loaded a
                            checkpoint that had been loaded before (it had lost its slot to another)
    generate_s          seconds the backends spent generating (summed over slots)
    prompt_tokens, completion_tokens    tokens read and generated (both prompt variants)
    slot_busy_fraction  share of the slots' time spent on a batch: busy seconds / (slots x wall seconds)
    peak_cache_bytes    most bytes the checkpoint cache held at once (0 for a local tree)
    driver_s, driver_events     seconds the driver spent handling what came back (batches, fetches, placed
                            slots) between waits, and how many such events it handled

`events()` is the run's events log (`DIR/events.parquet`), one row per happening, times in seconds since the
driver started (`t`, `submitted`, `returned`, `launched`, `completed`): a `call` per actor call (arm, slot,
query indices, load/generate/score/record seconds, tokens; `warm_up_s`: the actor's warm-up imports, in its
first successful report only; `failed`: the stage when the checkpoint failed), a `slot` when a model actor is
created and a `slot_placed` when the driver learned its node (runs that fetch wait for it), a `round` per search
round and a `phase` per final evaluation (`start`; `t` is the end; survivors, pairs asked), a `fetch` per
finished fetch (bytes, seconds, plan_s, wait_s). The cost model (`raygems plan --calibrate-from DIR`) reads its speeds from it.
"""
from __future__ import annotations

import time


class CostLedger:
    def __init__(self) -> None:
        self.started = time.time()
        self.calls = 0
        self.load_s = 0.0
        self.loads = 0
        self.reloads = 0
        self.generate_s = 0.0
        self.score_s = 0.0
        self.record_s = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.busy_s = 0.0
        self.driver_s = 0.0
        self.driver_events = 0
        self._events: list[dict] = []

    def add_batch(self, report) -> None:
        self.calls += 1
        self.generate_s += report.generate_s
        self.score_s += report.score_s
        self.record_s += report.record_s
        self.prompt_tokens += report.prompt_tokens
        self.completion_tokens += report.completion_tokens

    def add_load(self, seconds: float, reload: bool) -> None:
        self.loads += 1
        self.reloads += int(reload)
        self.load_s += seconds

    def add_busy(self, seconds: float) -> None:
        self.busy_s += seconds

    def add_driver(self, seconds: float) -> None:
        self.driver_s += seconds
        self.driver_events += 1

    def since_start(self, when: float) -> float:
        return round(when - self.started, 4)

    def event(self, kind: str, **fields) -> None:
        """One row of the events log (`t`: now)."""
        self._events.append({"kind": kind, "t": self.since_start(time.time()), **fields})

    def events(self, fetches: list[dict] = ()) -> list[dict]:
        """The events log, with the fetch stage's records (absolute times) turned into `fetch` rows."""
        rows = list(self._events)
        for fetch in fetches:
            rows.append({**fetch, "kind": "fetch", "t": self.since_start(fetch["completed"]),
                         "launched": None if fetch["launched"] is None else self.since_start(fetch["launched"]),
                         "completed": self.since_start(fetch["completed"])})
        return rows

    def summary(self, slots: int, checkpoints: dict) -> dict:
        wall = max(time.time() - self.started, 1e-9)
        return {
            "wall_s": round(wall, 2), "calls": self.calls, "slots": slots,
            "fetch_s": round(float(checkpoints.get("fetch_s", 0.0)), 2),
            "fetch_bytes": int(checkpoints.get("fetch_bytes", 0)),
            "load_s": round(self.load_s, 2), "loads": self.loads, "reloads": self.reloads,
            "generate_s": round(self.generate_s, 2), "score_s": round(self.score_s, 2),
            "record_s": round(self.record_s, 2),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "slot_busy_fraction": round(min(1.0, self.busy_s / (slots * wall)), 3),
            "peak_cache_bytes": int(checkpoints.get("peak_cache_bytes", 0)),
            "driver_s": round(self.driver_s, 2), "driver_events": self.driver_events,
        }
