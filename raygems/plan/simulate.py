"""A search played through a discrete-event simulation: what it will cost before it starts.

The simulation is the live driver (`raygems.runtime.driver.SearchDriver`) with a clock instead of Ray:

* the same algorithm object (`make_algorithm`, R = 1) is asked round by round and told the answers
  (`raygems.plan.rewards`), so it runs the same rounds and chooses the same model;
* the same slot policy object (`raygems.runtime.schedule.SlotSchedule`): which slot takes which arm, when a
  slot continues with its arm, when slots are added; a slot loads a checkpoint whenever it takes one it does
  not hold (a reload when it held it before);
* for a hub tree, the fetch stage itself (`raygems.runtime.fetch.FetchStage`, the order and placement of
  fetches ahead of the slots) over simulated nodes, each with the real cache policy
  (`raygems.runtime.cache.CheckpointCache`: admission under the byte budget, evictions, retired models first)
  and a download link its fetches share;
* the final evaluation (chosen model and popular base on the whole pool) as the search runs it.

Time is charged by `raygems.plan.model.Speeds`. Nothing here touches Ray, the disk or the network.

Cost: O(actor calls + fetches) events, each O(slots) work; a 2,000-model exhaustive evaluation (5 M pairs in
156 k calls) simulates in seconds.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from raygems.bandits import AllArmsFailed, make_algorithm, repetition_keys
from raygems.errors import UsageError
from raygems.hub.types import ModelRecord
from raygems.plan.model import Cluster, Speeds, Work
from raygems.runtime.cache import CheckpointCache, TooLarge
from raygems.runtime.fetch import CheckpointSource, FetchReport, FetchSettings, FetchStage, slots_by_node
from raygems.runtime.schedule import SlotSchedule, SlotState, count_by_stage, tell_round, with_lookahead

#: The method name of evaluating every candidate on the whole pool (no search).
EXHAUSTIVE = "exhaustive"
#: A cache without a limit (--cache-limit not given: the search takes 90% of the free disk).
UNLIMITED = 10 ** 18


@dataclass
class PlanResult:
    """What a search is predicted to cost. Seconds are wall-clock; `gpu_hours` bills every GPU of the cluster
    for the whole wall time, `gpu_busy_hours` only the slots' busy time (x GPUs per slot)."""

    method: str
    wall_s: float
    gpu_hours: float
    gpu_busy_hours: float
    search_s: float               # the search's rounds
    final_s: float                # the final (or exhaustive) evaluation
    rounds: int
    budget: int
    budget_used: int
    queries_paid: int             # (model, query) pairs evaluated (budget_used + final evaluation + lookahead)
    calls: int
    loads: int
    reloads: int
    load_s: float
    decode_s: float
    fetches: int
    fetch_bytes: int
    fetch_s: float                # summed over fetches (they overlap)
    peak_cache_bytes: int
    evictions: int
    slot_busy_fraction: float
    fetch_floor_s: float          # bytes / (bandwidth x nodes): no schedule can fetch faster
    compute_floor_s: float        # slots' busy seconds / slots
    chosen: int
    chosen_model: str
    failed: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------- simulated nodes
class _Sleep:
    def __init__(self, seconds: float):
        self.seconds = seconds


class _Transfer:
    def __init__(self, size: int):
        self.size = size


class _WaitRoom:
    pass


class _Link:
    """A node's download link: the fetches transferring at once share its bandwidth equally."""

    def __init__(self, sim: "Simulation", bandwidth: float):
        self.sim, self.bandwidth = sim, bandwidth
        self.active: dict[int, list] = {}       # transfer id -> [bytes left, on_done]
        self.updated = 0.0
        self.version = 0
        self._ids = itertools.count()

    def start(self, size: int, on_done: Callable[[], None]) -> None:
        self._advance()
        self.active[next(self._ids)] = [float(size), on_done]
        self._reschedule()

    def _advance(self) -> None:
        now = self.sim.now
        if self.active:
            share = self.bandwidth / len(self.active) * (now - self.updated)
            for item in self.active.values():
                item[0] -= share
        self.updated = now

    def _reschedule(self) -> None:
        self.version += 1
        if not self.active:
            return
        left = min(item[0] for item in self.active.values())
        when = self.sim.now + max(0.0, left) * len(self.active) / self.bandwidth
        version = self.version
        self.sim.at(when, lambda: self._finish(version))

    def _finish(self, version: int) -> None:
        if version != self.version:
            return                                  # superseded by a later start or finish
        self._advance()
        done = [key for key, item in self.active.items() if item[0] <= 1e-6 * self.bandwidth]
        callbacks = [self.active.pop(key)[1] for key in done]
        self._reschedule()
        for callback in callbacks:
            callback()


class _Fetch:
    """One fetch on a simulated node (what `FetchWorker.fetch` does), as a coroutine of waits."""

    def __init__(self, arm: int, model_id: str):
        self.arm, self.model_id = arm, model_id
        self.bytes = 0
        self.failure: str | None = None
        self.started = 0.0
        self.plan_s = 0.0
        self.wait_s = 0.0
        self.report: FetchReport | None = None


class SimulatedNode:
    """A node's fetch worker (`raygems.runtime.fetch.FetchWorker`) with the real cache policy and a simulated
    download link: a fetch asks the hub which files (`fetch_latency_s`), is admitted by the cache (waiting
    for room while nothing can be evicted), downloads (at most `concurrency` at once, sharing the link), and
    fetches an adapter's base beside it."""

    def __init__(self, sim: "Simulation", name: str, limit_bytes: int, concurrency: int):
        self.sim, self.name = sim, name
        self.cache = CheckpointCache(Path("/simulated") / name, limit_bytes)
        self.link = _Link(sim, sim.speeds.download_bandwidth)
        self.free_downloads = concurrency
        self.download_queue: list = []
        self.room_waiters: list = []

    # ---------------------------------------------------------------------------------------- control
    def hold(self, model_id: str) -> bool:
        entry = self.cache.entries.get(model_id)
        if entry is None or not entry.ready:
            return False
        self.cache.hold(model_id)
        return True

    def release(self, model_id: str) -> None:
        self.cache.release(model_id)
        self._wake()

    def retire(self, model_ids: list[str]) -> None:
        self.cache.retire(set(model_ids))
        self._wake()

    def _wake(self) -> None:
        waiters, self.room_waiters = self.room_waiters, []
        for fetch, process in waiters:
            self._step(fetch, process)

    # ---------------------------------------------------------------------------------------- fetching
    def fetch(self, arm: int) -> _Fetch:
        work = self.sim.work
        fetch = _Fetch(arm, work.model_ids[arm])
        fetch.started = self.sim.now
        self._step(fetch, self._fetch_process(fetch))
        return fetch

    def _fetch_process(self, fetch: _Fetch):
        work = self.sim.work
        try:
            yield from self._fetch_one(fetch, fetch.model_id, int(work.sizes[fetch.arm]))
            if work.failures.get(fetch.arm) == "fetch":
                fetch.failure = f"cannot download {fetch.model_id} (failed at fetch in the calibrating run)"
                return
            base = work.adapter_base.get(fetch.arm)
            if base is not None:
                yield from self._fetch_one(fetch, base, int(work.base_sizes.get(base, 0)))
                self.cache.needs_base(fetch.model_id, base)
        except TooLarge as exc:
            fetch.failure = str(exc)

    def _fetch_one(self, fetch: _Fetch, model_id: str, size: int):
        asked = self.sim.now
        yield _Sleep(self.sim.speeds.fetch_latency_s)             # plan_download: the hub's metadata
        fetch.plan_s += self.sim.now - asked
        entry = self.cache.entries.get(model_id)
        if entry is not None and entry.ready:
            self.cache.completed(model_id, entry.size)
            return
        waiting = self.sim.now
        while True:
            victims = self.cache.admit(model_id, size, "simulated")
            if victims is not None:
                break
            yield _WaitRoom()
        fetch.wait_s += self.sim.now - waiting
        yield _Transfer(size)
        fetch.bytes += size
        self.cache.completed(model_id, size)
        self._wake()

    def _step(self, fetch: _Fetch, process) -> None:
        try:
            command = next(process)
        except StopIteration:
            self._done(fetch)
            return
        if isinstance(command, _Sleep):
            self.sim.at(self.sim.now + command.seconds, lambda: self._step(fetch, process))
        elif isinstance(command, _WaitRoom):
            self.room_waiters.append((fetch, process))
        else:
            self._download(command.size, lambda: self._step(fetch, process))

    def _download(self, size: int, then: Callable[[], None]) -> None:
        if self.free_downloads == 0:
            self.download_queue.append((size, then))
            return
        self.free_downloads -= 1

        def finished() -> None:
            self.free_downloads += 1
            if self.download_queue:
                self._download(*self.download_queue.pop(0))
            then()

        self.link.start(size, finished)

    def _done(self, fetch: _Fetch) -> None:
        cache = self.cache
        fetch.report = FetchReport(fetch.model_id, None if fetch.failure else f"/simulated/{fetch.model_id}",
                                   fetch.bytes, self.sim.now - fetch.started, cache.used_bytes, cache.peak_bytes,
                                   cache.limit_bytes, fetch.failure, plan_s=fetch.plan_s, wait_s=fetch.wait_s)
        self.sim.visible(fetch)


class SimulatedFetchStage(FetchStage):
    """The driver's fetch stage, unchanged, over simulated nodes instead of Ray fetch workers."""

    def __init__(self, sim: "Simulation", candidates: list[ModelRecord], settings: FetchSettings):
        super().__init__(candidates, settings)
        self.sim = sim

    def clock(self) -> float:
        return self.sim.now

    def _start_fetch(self, node: str, arm: int):
        return self.sim.nodes[node].fetch(arm)

    def _fetch_report(self, ref: _Fetch, node: str) -> FetchReport:
        return ref.report

    def _hold_on(self, node, arm: int) -> bool:
        return node in self.sim.nodes and self.sim.nodes[node].hold(self.candidates[arm].model_id)

    def _release_on(self, node, arm: int) -> None:
        self.sim.nodes[node].release(self.candidates[arm].model_id)

    def _retire_everywhere(self, arms: list[int]) -> None:
        ids = [self.candidates[arm].model_id for arm in arms]
        for node in self.sim.nodes.values():
            node.retire(ids)

    def shutdown(self) -> None:
        pass


# --------------------------------------------------------------------------------------------- the driver
@dataclass(eq=False)
class _SlotClock:
    """What the simulation knows of a slot's model actor."""

    node: str
    ready_at: float               # placed: the driver knows its node
    warm_until: float             # and its warm-up (the backend's imports) done: calls can start
    loaded: int | None = None     # the arm whose checkpoint is loaded (None: nothing)
    loads: int = 0


@dataclass(eq=False)
class _Batch:
    slot: SlotState
    arm: int
    chunk: list[int]
    load_s: float
    loaded: bool
    failed: str | None


class Simulation:
    """One search (or an exhaustive evaluation) played on a clock; `run()` returns its `PlanResult`."""

    def __init__(self, work: Work, cluster: Cluster, speeds: Speeds, lookahead: bool = False):
        if work.num_arms < 2:
            raise ValueError(f"need at least 2 candidate models, got {work.num_arms}")
        self.work, self.cluster, self.speeds = work, cluster, speeds
        #: queries per generate batch the load-aware variant fills (0: off)
        self._lookahead_batch = max(1, speeds.batch_size // speeds.variants) if lookahead else 0
        self.now = 0.0
        self._heap: list = []
        self._order = itertools.count()
        self._visible: list = []
        self.schedule = SlotSchedule(work.chunk_size)
        limit = cluster.cache_limit_bytes or UNLIMITED
        self.nodes = {f"node-{i}": SimulatedNode(self, f"node-{i}", limit, cluster.fetch_concurrency)
                      for i in range(cluster.nodes)}
        candidates = [ModelRecord(model_id=m) for m in work.model_ids]
        if work.fetch:
            settings = FetchSettings(cache_dir="/simulated", limit_bytes=limit, concurrency=cluster.fetch_concurrency,
                                     overlap=cluster.fetch_ahead)
            self.checkpoints: CheckpointSource = SimulatedFetchStage(self, candidates, settings)
        else:
            self.checkpoints = CheckpointSource(candidates)
        self.clocks: dict[SlotState, _SlotClock] = {}
        # until a slot is placed, on one node, fetches start there at once (as the driver's)
        self.only_node = next(iter(self.nodes)) if len(self.nodes) == 1 else None
        self.answered = (np.zeros((work.num_arms, work.num_queries), dtype=bool) if work.recorded is None
                         else np.array(work.recorded, dtype=bool))          # a resumed search's recorded pairs
        self.failed: dict[int, str] = {}
        self._loaded_before: set[int] = set()
        self.stats = {"calls": 0, "loads": 0, "reloads": 0, "load_s": 0.0, "decode_s": 0.0, "busy_s": 0.0,
                      "paid": 0}
        self.rounds = 0

    # ------------------------------------------------------------------------------------------ clock
    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._order), action))

    def visible(self, ref: Any) -> None:
        """Something the driver waits on happened now (a batch came back, a fetch finished, a slot is placed)."""
        self._visible.append(ref)

    def _wait(self) -> Any:
        """The next thing the driver waits on (ray.wait with num_returns=1), running the clock up to it."""
        while not self._visible:
            if not self._heap:
                raise RuntimeError("the simulated search is stuck: nothing is running and nothing can start")
            when, _, action = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            action()
        return self._visible.pop(0)

    # ------------------------------------------------------------------------------------------ phases
    def run(self) -> PlanResult:
        work = self.work
        search_started = self.now
        if work.method == EXHAUSTIVE:
            chosen, budget, budget_used = self._exhaustive()
            search_s, final_s = 0.0, self.now - search_started
        else:
            chosen, budget, budget_used = self._search()
            search_s = self.now - search_started
            final_started = self.now
            arms = [chosen, work.popular_base] if work.final_evaluation else []
            if work.exhaustive:
                arms = list(range(work.num_arms))
            if arms:
                self.evaluate_all(arms)
            final_s = self.now - final_started
        return self._result(chosen, budget, budget_used, search_s, final_s)

    def _search(self) -> tuple[int, int, int]:
        work = self.work
        algo = make_algorithm(work.method, work.num_arms, work.num_queries, work.budget,
                              repetition_keys(work.seed, 1), **work.method_options)
        while not algo.done:
            pulls = algo.ask()
            if pulls is None:
                break
            self.rounds += 1
            requests = {arm: [int(q) for q in ids] for arm, ids in pulls.by_arm(0).items()}
            served = with_lookahead(pulls, requests, self._missing, self._lookahead_batch, work.num_queries)
            self._serve(served)
            try:
                eliminated = tell_round(algo, pulls, requests, self.failed, work.rewards.correct)
            except AllArmsFailed:
                raise UsageError(f"every candidate would fail in this search ({count_by_stage(self.failed.values())}), "
                                 f"so it could choose nothing: at fetch, a checkpoint larger than the cache limit, "
                                 f"or failed in the calibrating run") from None
            self.checkpoints.retire(eliminated)   # as the driver does
            self.now += self.speeds.round_overhead_s
        return int(algo.recommend()[0]), int(algo.budget), int(algo.budget_used[0])

    def _missing(self, arm: int, queries: list[int]) -> int:
        return int((~self.answered[arm, queries]).sum()) if queries else 0

    def _exhaustive(self) -> tuple[int, int, int]:
        arms = list(range(self.work.num_arms))
        self.evaluate_all(arms)
        accuracy = [(-self.work.rewards.correct(arm, range(self.work.num_queries)), arm) for arm in arms
                    if arm not in self.failed]
        budget = self.work.num_arms * self.work.num_queries
        return min(accuracy)[1], budget, budget

    def evaluate_all(self, arms: list[int]) -> None:
        arms = [arm for arm in arms if arm not in self.failed]
        everything = list(range(self.work.num_queries))
        keep = set(arms)
        self.checkpoints.retire([arm for arm in range(self.work.num_arms) if arm not in keep])
        self._serve({arm: everything for arm in arms})

    # ------------------------------------------------------------------------------------------ serving
    def _serve(self, requests: dict[int, list[int]]) -> None:
        """SearchDriver._serve on the clock."""
        missing_by_arm = {}
        for arm, queries in requests.items():
            if arm in self.failed:
                continue
            index = np.asarray(queries, dtype=np.int64)
            missing = index[~self.answered[arm, index]].tolist() if index.size else []
            if missing and arm in self.work.recorded_failures:    # it failed here in an earlier run
                self._fail(arm, self.work.failures[arm])
                continue
            missing_by_arm[arm] = missing
        waiting = self.schedule.begin(missing_by_arm)
        self.checkpoints.want(waiting)
        while not self.schedule.done:
            for dispatch in self._dispatch():
                self._submit(dispatch)
            ref = self._wait()
            if isinstance(ref, _Batch):
                self._finish_batch(ref)
            elif isinstance(ref, SlotState):
                ref.node = self.clocks[ref].node
            else:
                for arm, _, _ in self.checkpoints.completed(ref):
                    if self.schedule.has_work(arm):
                        self._fail(arm, "fetch")
            self.now += self.speeds.driver_event_s

    def _dispatch(self) -> list:
        decisions = self.schedule.continue_own()
        if not self.schedule.waiting:
            return decisions
        self.schedule.grow(self.cluster.max_loaded, self._new_slot)
        if self.checkpoints.fetches:
            nodes = [slot.node for slot in self.schedule.slots]
            if any(node is not None for node in nodes):
                self.only_node = None
            placed = slots_by_node(nodes, self.only_node)
            self.checkpoints.set_slots(placed, idle_slots=len(self.schedule.idle_slots()))

        def ready(arm: int, node) -> bool:
            return self.checkpoints.ready(arm, node) and self.checkpoints.hold(arm, node)

        return decisions + self.schedule.assign_idle(ready, self.checkpoints.arrivals)

    def _new_slot(self) -> SlotState:
        """A model actor: placed on the node with the fewest slots, known to the driver once it has started."""
        counts = {name: 0 for name in self.nodes}
        for slot in self.schedule.slots:
            counts[self.clocks[slot].node] += 1
        node = min(counts, key=lambda name: (counts[name], name))
        slot = SlotState(node=None)
        ready_at = self.now + self.speeds.slot_start_s
        self.clocks[slot] = _SlotClock(node=node, ready_at=ready_at, warm_until=ready_at + self.speeds.warm_up_s)
        if self.checkpoints.fetches:            # the driver waits for its node
            self.at(self.clocks[slot].ready_at, lambda: self.visible(slot))
        else:
            self.at(self.clocks[slot].ready_at, lambda: setattr(slot, "node", self.clocks[slot].node))
        return slot

    def _submit(self, dispatch) -> None:
        slot, arm, chunk = dispatch.slot, dispatch.arm, dispatch.chunk
        clock = self.clocks[slot]
        if dispatch.load and dispatch.previous is not None:
            self.checkpoints.release(dispatch.previous)
        start = max(self.now, clock.warm_until)
        seconds = self.speeds.call_overhead_s
        load_s, failed = 0.0, None
        stage = self.work.failures.get(arm)
        loading = clock.loaded != arm
        if loading:
            clock.loaded = None
            if stage == "metadata":
                failed = stage
            else:
                load_s = self.speeds.load_seconds(self._load_bytes(arm), first=clock.loads == 0)
                clock.loads += 1
                seconds += load_s
                if stage in ("load", "fetch"):
                    failed = "load"
                else:
                    clock.loaded = arm
        if failed is None:
            steps = int(self.work.steps[self.work.query_tasks[chunk]].max())    # the batch's longest task
            decode = self.speeds.decode_seconds(len(chunk), steps)
            self.stats["decode_s"] += decode
            seconds += decode + self.speeds.score_per_query_s * len(chunk)
            if stage == "generate":
                failed = stage
        slot.busy_since = self.now
        batch = _Batch(slot, arm, list(chunk), load_s, loading, failed)
        self.at(start + seconds, lambda: self.visible(batch))

    def _load_bytes(self, arm: int) -> int:
        base = self.work.adapter_base.get(arm)
        return int(self.work.sizes[arm]) + (int(self.work.base_sizes.get(base, 0)) if base else 0)

    def _finish_batch(self, batch: _Batch) -> None:
        slot, arm, chunk = batch.slot, batch.arm, batch.chunk
        self.stats["busy_s"] += self.now - slot.busy_since
        if batch.failed is not None:
            self.schedule.finished(slot, 0)
            self._fail(arm, batch.failed, in_flight=len(chunk))
            return
        self.schedule.finished(slot, len(chunk))
        self.answered[arm, chunk] = True
        if not self.schedule.has_work(arm):
            self.checkpoints.release(arm)
        self.stats["paid"] += len(chunk)
        self.stats["calls"] += 1
        if batch.loaded:
            self.stats["loads"] += 1
            self.stats["reloads"] += int(arm in self._loaded_before)
            self.stats["load_s"] += batch.load_s
            self._loaded_before.add(arm)

    def _fail(self, arm: int, stage: str, in_flight: int = 0) -> None:
        self.failed[arm] = stage
        for slot in self.schedule.slots:
            if slot.arm == arm:
                self.clocks[slot].loaded = None
        self.schedule.drop(arm, in_flight=in_flight)
        self.checkpoints.release(arm)
        self.checkpoints.retire([arm])

    # ------------------------------------------------------------------------------------------ result
    def _result(self, chosen: int, budget: int, budget_used: int, search_s: float, final_s: float) -> PlanResult:
        work, cluster, speeds = self.work, self.cluster, self.speeds
        wall = self.now
        slots = max(1, len(self.schedule.slots))
        status = self.checkpoints.status()
        fetches = self.checkpoints.events
        fetch_bytes = int(status.get("fetch_bytes", 0))
        gpus_per_slot = cluster.gpus / max(1, cluster.max_loaded)
        return PlanResult(
            method=work.method, wall_s=wall, gpu_hours=wall * cluster.gpus / 3600,
            gpu_busy_hours=self.stats["busy_s"] * gpus_per_slot / 3600, search_s=search_s, final_s=final_s,
            rounds=self.rounds, budget=budget, budget_used=budget_used, queries_paid=self.stats["paid"],
            calls=self.stats["calls"], loads=self.stats["loads"], reloads=self.stats["reloads"],
            load_s=self.stats["load_s"], decode_s=self.stats["decode_s"], fetches=len(fetches),
            fetch_bytes=fetch_bytes, fetch_s=float(status.get("fetch_s", 0.0)),
            peak_cache_bytes=int(status.get("peak_cache_bytes", 0)),
            evictions=sum(len(node.cache.evicted) for node in self.nodes.values()),
            slot_busy_fraction=min(1.0, self.stats["busy_s"] / (slots * wall)) if wall > 0 else 0.0,
            fetch_floor_s=fetch_bytes / (speeds.download_bandwidth * cluster.nodes),
            compute_floor_s=self.stats["busy_s"] / slots,
            chosen=chosen, chosen_model=work.model_ids[chosen],
            failed=[work.model_ids[arm] for arm in sorted(self.failed)])


def simulate(work: Work, cluster: Cluster, speeds: Speeds, lookahead: bool = False) -> PlanResult:
    """Play `work` on `cluster` at `speeds` (see the module docstring)."""
    return Simulation(work, cluster, speeds, lookahead=lookahead).run()
