"""The search driver: runs a bandit algorithm (R = 1) against live model actors.

Each round it asks the algorithm which arms answer which query ids, serves from its reward book what the result
store already holds, and sends the rest to the survivors' model actors, one batch per actor at a time, within
`max_loaded` loaded-model slots (`SlotPool`): an arm keeps its slot while it has work; a slot whose arm is done
goes to the next arm in the round's order, the least recently used idle slot first, so survivors stay resident
while they fit. Checkpoints come from a `CheckpointSource` (`raygems.runtime.fetch`): for a tree on local disk
they are ready at once; for a hub tree, CPU-only fetch workers download them to each node's disk ahead of the
slots, and a slot only takes an arm whose files are on its node.

A checkpoint that fails to fetch, load or generate is recorded with its reason and told to the algorithm as
failed (an eliminated arm); the search goes on. An actor that dies (killed, or its node preempted) is replaced and
its unfinished batch is re-sent; pairs it had already recorded are not evaluated again. A problem of the setup
rather than of a checkpoint (the disk is full, code may not run, the hub cannot be reached) stops the search with
a `SetupError`; nothing recorded is lost.

Because the algorithm is deterministic for a seed and every answer is kept in the store, re-running a search
(after a crash of the driver, or with `--resume`) replays the same requests and pays only for pairs that were
never recorded.

Cost per round: O(queries asked + batches) dictionary work, whatever the size of the store (the reward book is
filled from the store once, then from what the actors return).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raygems.bandits import AllArmsFailed, get_method, make_algorithm, repetition_keys
from raygems.errors import SetupError, one_line, stop_if_it_could_not_start
from raygems.hub.types import ModelRecord
from raygems.plugins import import_plugins
from raygems.runtime.config import DEFAULT_METHOD
from raygems.runtime.cost import CostLedger
from raygems.runtime.evaluation import EvaluationError, EvaluatorSpec
from raygems.runtime.fetch import CheckpointSource, slots_by_node
from raygems.runtime.rewards import RewardBook
from raygems.runtime.schedule import SlotSchedule, SlotState, count_by_stage, tell_round, with_lookahead
from raygems.runtime.store import Failure, ResultStore


@dataclass
class DriverSettings:
    method: str = DEFAULT_METHOD
    budget_per_model: int = 50
    seed: int = 0
    method_options: dict[str, Any] = field(default_factory=dict)
    max_loaded: int = 2            # model actors alive at once (loaded-model slots)
    chunk_size: int = 32           # queries per actor call (and per store write)
    cpus_per_model: float = 1.0
    gpus_per_model: float = 0.0
    slot_resource: str | None = None   # custom resource each model actor takes one unit of (e.g. "model_slot")
    max_actor_restarts: int = 3    # per model, after an actor death
    arm_priority: list[float] | None = None   # prior scores (first-round tie-break), one per candidate
    lookahead_batch: int = 0       # > 0: fill each arm's last generate batch of this many queries with its next
                                   # round's shared queries (raygems.runtime.schedule.with_lookahead)

    def slot_needs(self) -> dict[str, float]:
        """The Ray resources one model actor asks for."""
        needs = {"CPU": self.cpus_per_model, "GPU": self.gpus_per_model}
        if self.slot_resource:
            needs[self.slot_resource] = 1.0
        return {name: amount for name, amount in needs.items() if amount}

    def nodes_that_fit(self, nodes: list[dict]) -> list[str]:
        """The ids of the alive nodes (as `ray.nodes()` reports them) that can hold one model actor."""
        needs = self.slot_needs()
        return [node["NodeID"] for node in nodes
                if node.get("Alive") and all(node.get("Resources", {}).get(name, 0) + 1e-6 >= amount
                                             for name, amount in needs.items())]


#: How long the driver waits for Ray to declare a node gone once its model actors died and nothing else can run
#: (Ray declares a node gone after several missed health checks: seconds to tens of seconds).
NODE_LOSS_WAIT_S = 60.0


@dataclass
class Progress:
    phase: str = "search"
    round: int = 0
    survivors: int = 0
    requested: int = 0        # (model, query) pairs the phase asked for so far (never goes down: a model that
                              # fails takes its outstanding pairs with it, from `outstanding`)
    paid: int = 0             # pairs evaluated in this run (with --lookahead, also pairs a later round will ask)
    reused: int = 0           # pairs asked for that were recorded already (by an earlier run or phase); not
                              # pairs this run paid ahead of their round (--lookahead), which `paid` counts
    failed: int = 0
    loaded: int = 0
    budget: int = 0           # pairs this phase will ask for at most (the search's budget; the final evaluation's)
    outstanding: int = 0      # pairs of the current round not yet recorded
    started: float = field(default_factory=time.time)
    paid_at_phase_start: int = 0
    phase_started: float = field(default_factory=time.time)
    done: bool = False

    def as_dict(self) -> dict:
        now = time.time()
        elapsed = max(now - self.started, 1e-9)
        in_phase = max(now - self.phase_started, 1e-9)
        rate = (self.paid - self.paid_at_phase_start) / in_phase
        remaining = max(0, self.budget - self.requested) + self.outstanding
        eta = 0.0 if self.done else remaining / rate if rate > 0 else None
        return {**self.__dict__, "elapsed_s": elapsed, "throughput_qps": self.paid / elapsed, "eta_s": eta}

    def start_phase(self, phase: str, budget: int) -> None:
        self.phase, self.budget, self.requested, self.done = phase, budget, 0, False
        self.paid_at_phase_start, self.phase_started = self.paid, time.time()


class SearchDriver:
    """Plain class; run it inside a Ray actor (`remote_driver()`), or in-process for debugging."""

    def __init__(self, candidates: list[ModelRecord], pool, store_root: str, spec: EvaluatorSpec,
                 settings: DriverSettings, checkpoints: CheckpointSource | None = None):
        if len(candidates) < 2:
            raise ValueError(f"need at least 2 candidate models, got {len(candidates)}")
        import_plugins(spec.plugins)    # a plug-in method registers itself in this process too
        self.candidates = list(candidates)
        self.pool = pool
        self.query_ids = list(pool.query_ids)
        self.store = ResultStore(store_root)
        self.store_root = str(store_root)
        self.spec = spec
        self.settings = settings
        self.checkpoints = checkpoints or CheckpointSource()
        self.progress = Progress()
        self.cost = CostLedger()
        self.query_tasks = [pool.task_of(q) for q in self.query_ids]   # each query's task (the method's query groups)
        self.book = RewardBook(self.query_ids, self.query_tasks, len(self.candidates))
        self._known_parts: set[str] | None = None        # result parts read into the book (None: not yet)
        self.schedule = SlotSchedule(settings.chunk_size)
        self._pid_refs: dict[Any, Any] = {}                # actor -> ObjectRef of its pid (asked at creation)
        self._restarts: dict[int, int] = {}
        self._failed: dict[int, Failure] = {}
        self._recorded_failures: set[int] = set()           # arms whose failure is in the store (the checkpoint's)
        self._loaded_before: set[int] = set()              # arms loaded once already (a load again is a reload)
        # failures recorded by an earlier run of this search: applied when the arm next needs new work, which
        # is the moment it failed before, so a rerun follows the same path as the run it continues
        self._known_failures: dict[int, Failure] = {}
        failures = self.store.failures()
        recorded = {(m, r): (s, reason) for m, r, s, reason in
                    zip(failures["model_id"], failures["revision"], failures["stage"], failures["reason"])}
        for arm, model in enumerate(self.candidates):
            if (model.model_id, model.revision) in recorded:
                self._known_failures[arm] = Failure(model.model_id, model.revision,
                                                    *recorded[(model.model_id, model.revision)])
        self._pool_ref = None
        self._capacity: tuple[float, int] = (0.0, 0)      # (when, slots the cluster holds) for _slot_capacity
        self._slot_ids: dict[SlotState, int] = {}          # slot -> its number in the events log
        self._lost_nodes_seen = 0                          # how many lost nodes _follow_lost_nodes has followed
        self._only_node: str | None = None                 # _only_slot_node's answer ...
        self._only_node_asked = False                      # ... once asked (None from the first placement on)
        self._served_ahead: dict[int, set[int]] = {}       # arm -> queries served before a round asked them

    def _load_book(self, only_new: bool = False) -> None:
        """Read result parts into the reward book: all of them when the search starts; later (`only_new`) the
        ones the driver has not seen, e.g. the batch a model actor recorded just before it died."""
        names = self.store.part_names()
        if self._known_parts is None:
            self._known_parts, only_new = set(), False
        new = [name for name in names if name not in self._known_parts] if only_new else names
        self._known_parts.update(new)
        arms = {(m.model_id, m.revision): arm for arm, m in enumerate(self.candidates)}
        for arm, query, variant, reward in self.store.rewards(arms, self.book.query_index, parts=new):
            self.book.record(arm, query, variant, reward)

    # ------------------------------------------------------------------------------------------ public
    def status(self) -> dict:
        return {**self.progress.as_dict(), **self.checkpoints.status()}

    def actor_pids(self) -> dict[str, int]:
        """PIDs of the model actors holding a model (tests kill them to simulate crashes)."""
        import ray

        pids = {}
        for slot in list(self.schedule.slots):
            ref = self._pid_refs.get(slot.handle)
            ready, _ = ray.wait([ref], timeout=0) if ref is not None else ([], [])
            if ready and slot.arm is not None:
                pids[self.candidates[slot.arm].model_id] = ray.get(ref)
        return pids

    def run(self) -> dict:
        import ray

        self._check_names_known()
        self._pool_ref = ray.put(self.pool)
        if self._known_parts is None:
            self._load_book()
        s = self.settings
        options = get_method(s.method).with_inputs(
            s.method_options, downloads=[m.downloads for m in self.candidates],
            is_base=[m.is_base for m in self.candidates], query_groups=self.query_tasks,
            arm_priority=None if s.arm_priority is None else np.asarray(s.arm_priority, dtype=float))
        algo = make_algorithm(s.method, len(self.candidates), len(self.pool), s.budget_per_model,
                              repetition_keys(s.seed, 1), **options)
        self.progress.start_phase("search", int(algo.budget))
        while not algo.done:
            pulls = algo.ask()
            if pulls is None:
                break
            self.progress.round += 1
            requests = {arm: [int(q) for q in ids] for arm, ids in pulls.by_arm(0).items()}
            self.progress.survivors = len(requests)
            round_started = time.time()
            self._serve(with_lookahead(pulls, requests, lambda arm, queries: len(self.book.missing(arm, queries)),
                                       s.lookahead_batch, len(self.query_ids)), asked=requests)
            self.cost.event("round", round=self.progress.round, start=self.cost.since_start(round_started),
                            survivors=len(requests), asked=sum(len(q) for q in requests.values()))
            try:
                eliminated = tell_round(algo, pulls, requests, self._failed, self.book.count)
            except AllArmsFailed:
                raise SetupError(self._every_candidate_failed()) from None
            self.checkpoints.retire(eliminated)   # their files go first
        chosen = int(algo.recommend()[0])
        self.progress.done = True
        return {
            "chosen": chosen,
            "chosen_model": self.candidates[chosen].model_id,
            "budget_used": int(algo.budget_used[0]),
            "budget": int(algo.budget),
            "rounds": self.progress.round,
            "pulls": algo.pulls[0].tolist(),
            "failed": {self.candidates[a].model_id: f.__dict__ for a, f in self._failed.items()},
            "progress": self.progress.as_dict(),
        }

    def _check_names_known(self) -> None:
        """The method, backend and tasks as a Ray worker knows them, its plug-ins imported: a name registered only
        in the process that started the search is one line here, not a failure of every model."""
        from raygems.backends import BACKENDS
        from raygems.bandits.registry import METHODS
        from raygems.plugins import check_known
        from raygems.runtime.evaluation import MATRIX_BACKENDS
        from raygems.tasks.registry import TASKS

        check_known("method", self.settings.method, METHODS)
        if self.spec.backend not in MATRIX_BACKENDS:
            check_known("backend", self.spec.backend, BACKENDS)
            for task in dict.fromkeys(self.query_tasks):
                check_known("task", task, TASKS)

    def _every_candidate_failed(self) -> str:
        example = next(iter(self._failed.values()))
        recorded = len(self._recorded_failures & set(self._failed))
        where = Path(self.store_root) / "failures"
        if recorded == len(self._failed):
            kept = f"each reason is recorded in {where}"
        elif recorded == 0:     # not the checkpoints' own failures (e.g. a backend the workers do not know)
            kept = "none is a checkpoint's own failure, so none is recorded: a rerun tries every model again"
        else:
            own = "checkpoint's own failure is" if recorded == 1 else f"{recorded} checkpoints' own failures are"
            kept = f"the {own} recorded in {where}; a rerun tries the other {len(self._failed) - recorded} again"
        return (f"every candidate failed ({count_by_stage(f.stage for f in self._failed.values())}; "
                f"e.g. {example.model_id}: {example.reason}), so there is nothing to choose: {kept}")

    def evaluate_all(self, arms: list[int]) -> None:
        """Evaluate `arms` on the whole pool (for final accuracies and exhaustive comparisons)."""
        import ray

        if self._pool_ref is None:
            self._pool_ref = ray.put(self.pool)
        if self._known_parts is None:
            self._load_book()
        arms = [arm for arm in arms if arm not in self._failed]
        self.progress.start_phase("final evaluation", len(arms) * len(self.query_ids))
        everything = list(range(len(self.query_ids)))
        finalists = set(arms)
        self.checkpoints.retire([arm for arm in range(len(self.candidates)) if arm not in finalists])
        phase_started = time.time()
        self._serve({arm: everything for arm in arms})
        self.progress.done = True
        self.cost.event("phase", phase="final evaluation", start=self.cost.since_start(phase_started),
                        survivors=len(arms), asked=len(arms) * len(everything))

    def shutdown(self) -> None:
        """Release every model actor and fetch worker."""
        self._release_all()
        self.checkpoints.shutdown()

    def failures(self) -> dict[int, Failure]:
        return dict(self._failed)

    def accuracy_table(self) -> pd.DataFrame:
        """Per candidate: queries answered, accuracy with the better prompt variant per task, and whether it
        answered the whole pool (`complete`); from the reward book, i.e. the store's served rows."""
        rows = []
        for arm, model in enumerate(self.candidates):
            n, accuracy = self.book.accuracy(arm)
            rows.append({"model_id": model.model_id, "revision": model.revision, "queries": n,
                         "accuracy": accuracy, "complete": n == len(self.query_ids)})
        return pd.DataFrame(rows)

    def cost_summary(self) -> dict:
        return self.cost.summary(slots=max(1, len(self.schedule.slots)), checkpoints=self.checkpoints.status())

    def cost_events(self) -> list[dict]:
        """The events log (`raygems.runtime.cost`): every actor call, slot, round and fetch, with times."""
        return self.cost.events(self.checkpoints.events)

    # ----------------------------------------------------------------------------------------- serving
    def _serve(self, requests: dict[int, list[int]], asked: dict[int, list[int]] | None = None) -> None:
        """Make sure every (arm, query) of `requests` is recorded, or the arm is recorded as failed. `asked`: what
        the algorithm asked for, when `requests` also serves queries ahead of it (`with_lookahead`); the progress
        counts those as asked when a later round asks them, and never as reused."""
        import ray

        asked = requests if asked is None else asked
        missing_by_arm: dict[int, list[int]] = {}
        for arm, queries in requests.items():
            if arm in self._failed:
                continue
            missing = self.book.missing(arm, queries)
            wanted, ahead = asked.get(arm, []), self._served_ahead.get(arm, set())
            self.progress.requested += len(wanted)
            unpaid = set(missing)
            self.progress.reused += sum(1 for q in wanted if q not in unpaid and q not in ahead)
            ahead.difference_update(wanted)           # asked now: asked again later, it is reused
            if len(queries) > len(wanted):
                self._served_ahead.setdefault(arm, set()).update((set(queries) - set(wanted)) & unpaid)
            if missing and arm in self._known_failures:   # it failed here in an earlier run
                self._recorded_failures.add(arm)              # (recorded then)
                self._fail(arm, self._known_failures[arm], persist=False)
                continue
            missing_by_arm[arm] = missing
        waiting = self.schedule.begin(missing_by_arm)
        self.checkpoints.want(waiting)
        in_flight: dict[Any, tuple[SlotState, int, list[int]]] = {}
        while not self.schedule.done:
            for dispatch in self._dispatch():
                self._submit(dispatch, in_flight)
            if self._follow_lost_nodes():
                continue                 # dispatch again: new slots, fetches for the arms the lost node held
            self.progress.outstanding = self.schedule.outstanding
            # a slot created but not placed yet: its node (the files it can load) is known once it is
            unplaced = ({slot.node: slot for slot in self.schedule.slots if _is_ref(slot.node)}
                        if self.checkpoints.fetches else {})
            events = list(in_flight) + self.checkpoints.pending() + list(unplaced)
            if not events:   # nothing could be scheduled and nothing is on its way
                if self._wait_for_a_lost_node():
                    continue
                raise RuntimeError("no model slot available: max_loaded must be at least 1")
            ready, _ = ray.wait(events, num_returns=1)
            handling = time.time()
            ref = ready[0]
            if ref in unplaced:
                if self._learn_node(unplaced[ref]):
                    self.cost.event("slot_placed", slot=self._slot_ids.get(unplaced[ref]))
            elif ref in in_flight:
                slot, arm, chunk = in_flight.pop(ref)
                self._finish_batch(slot, arm, chunk, ref)
            else:
                for arm, failure, persist in self.checkpoints.completed(ref):
                    if self.schedule.has_work(arm):
                        self._fail(arm, failure, persist=persist)
            self.cost.add_driver(time.time() - handling)     # (the next dispatch is counted with the next event)
        self.progress.outstanding = 0

    def _dispatch(self) -> list:
        """This moment's decisions of the slot schedule (raygems.runtime.schedule): slots continue their arms,
        slots are added up to capacity, idle slots take the next arm whose checkpoint is on their node."""
        decisions = self.schedule.continue_own()
        if not self.schedule.waiting:
            return decisions
        self.schedule.grow(self._slot_capacity(), self._new_slot)
        if self.checkpoints.fetches:
            for slot in list(self.schedule.slots):     # (a slot whose actor died unplaced leaves the list)
                self._node_of(slot)
            nodes = [self._node_of_id(slot.node) for slot in self.schedule.slots]
            if any(node is not None for node in nodes):    # from now on, fetches follow the placed slots only
                self._only_node, self._only_node_asked = None, True
            placed = slots_by_node(nodes, self._only_slot_node())
            self.checkpoints.set_slots(placed, idle_slots=len(self.schedule.idle_slots()))

        def ready(arm: int, node) -> bool:
            node = self._node_of_id(node)
            return self.checkpoints.ready(arm, node) and self.checkpoints.hold(arm, node)

        return decisions + self.schedule.assign_idle(ready, self.checkpoints.arrivals)

    def _node_of(self, slot: SlotState):
        """The slot's node id once its actor is placed (None before)."""
        import ray

        if _is_ref(slot.node):
            ready, _ = ray.wait([slot.node], timeout=0)
            if not ready or not self._learn_node(slot):
                return None
        return slot.node

    def _wait_for_a_lost_node(self) -> bool:
        """Nothing runs and nothing can start: the arms left wait for files on a node whose model actors died but
        which Ray has not declared gone yet (an actor's death is known before its node's). Ask Ray about the nodes
        holding files until it says one left (then follow it: True), for at most NODE_LOSS_WAIT_S."""
        if not self.checkpoints.fetches:
            return False
        self._refetch_waiting()          # (an arm requeued after its node was followed: its files are on no node)
        if self.checkpoints.pending():
            return True
        deadline = time.monotonic() + NODE_LOSS_WAIT_S
        while True:
            self.checkpoints.check_nodes(self.checkpoints.nodes_with_files())
            if self._follow_lost_nodes():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)

    def _learn_node(self, slot: SlotState) -> bool:
        """The placed slot's node, from its actor's answer; False when the actor died before it answered (its node
        left): the slot is lost (it held no model yet) and replaced when a slot is next needed."""
        import ray
        from ray.exceptions import RayActorError

        try:
            slot.node = ray.get(slot.node)
        except RayActorError as exc:
            stop_if_it_could_not_start(exc, "a model actor")   # (not: lost every time)
            self._slot_lost(slot)
            return False
        return True

    def _follow_lost_nodes(self) -> bool:
        """When the fetch stage has found more nodes gone (`lost_nodes`): their idle slots are lost (a busy one
        learns it from its call), and the waiting arms whose files were there are fetched again elsewhere. True
        when there were new ones."""
        lost = self.checkpoints.lost_nodes
        if len(lost) == self._lost_nodes_seen:
            return False
        self._lost_nodes_seen = len(lost)
        for slot in [s for s in self.schedule.slots if not s.busy and not _is_ref(s.node) and s.node in lost]:
            self._slot_lost(slot)
        self._refetch_waiting()
        return True

    def _refetch_waiting(self) -> None:
        """The fetch stage is told again which arms wait for a slot: those whose files are on no node (any more)
        are fetched."""
        self.checkpoints.want([arm for arm in self.schedule.waiting_in_order() if self.schedule.has_work(arm)])

    @staticmethod
    def _node_of_id(node):
        return None if _is_ref(node) else node

    def _submit(self, dispatch, in_flight: dict) -> None:
        slot, arm = dispatch.slot, dispatch.arm
        if dispatch.load:
            if dispatch.previous is not None:
                self.checkpoints.release(dispatch.previous)
            model = self.checkpoints.local_record(arm, self._node_of_id(slot.node)) or self.candidates[arm]
            slot.handle.assign.remote(model)   # runs before any later call on this actor (held by `ready`)
            self.progress.loaded = self.schedule.loaded()
        ref = slot.handle.evaluate.remote([self.query_ids[q] for q in dispatch.chunk])
        in_flight[ref] = (slot, arm, dispatch.chunk)
        slot.busy_since = time.time()

    def _finish_batch(self, slot: SlotState, arm: int, chunk: list[int], ref) -> None:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        returned = time.time()
        self.cost.add_busy(returned - slot.busy_since)
        call = {"arm": arm, "slot": self._slot_ids.get(slot), "submitted": self.cost.since_start(slot.busy_since),
                "returned": self.cost.since_start(returned), "round": self.progress.round,
                "phase": self.progress.phase, "queries": len(chunk), "query_index": list(chunk)}
        try:
            report = ray.get(ref)
        except RayTaskError as exc:
            self.cost.event("call", **call, failed=getattr(getattr(exc, "cause", None), "stage", "evaluate"))
            self.schedule.finished(slot, 0)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SetupError):          # not the checkpoint's fault: stop the search
                raise cause from None
            if isinstance(cause, EvaluationError):
                failure, persist = Failure(*self._key(arm), cause.stage, cause.reason), True
            else:   # not the checkpoint's own failure (a bug, out of memory, ...): a rerun tries again
                inner = cause or exc
                failure = Failure(*self._key(arm), "evaluate", one_line(inner))
                persist = False
            self._fail(arm, failure, persist=persist, in_flight=len(chunk))
            return
        except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
            stop_if_it_could_not_start(exc, "a model actor")   # (not: lost every time)
            self._slot_lost(slot)
            self._restarts[arm] = self._restarts.get(arm, 0) + 1
            if self._restarts[arm] > self.settings.max_actor_restarts:
                self._fail(arm, Failure(*self._key(arm), "evaluate", f"model actor lost {self._restarts[arm]} times"),
                           persist=False, in_flight=len(chunk))
                return
            self._load_book(only_new=True)   # it may have recorded the batch before it died
            self.schedule.requeue(arm, self.book.missing(arm, chunk), returned=len(chunk))
            if not _is_ref(slot.node):     # its node may have left: the arm's files went with it
                self.checkpoints.check_nodes([slot.node])
                if slot.node in self.checkpoints.lost_nodes:
                    self._refetch_waiting()
            return
        self.cost.event("call", **call, load_s=report.load_s, generate_s=report.generate_s, score_s=report.score_s,
                        record_s=report.record_s, prompt_tokens=report.prompt_tokens,
                        completion_tokens=report.completion_tokens, warm_up_s=report.warm_up_s)
        self.schedule.finished(slot, report.queries)
        if not os.path.exists(os.path.join(self.store.results_dir, report.part)):
            raise SetupError(
                f"a model actor evaluated {len(chunk)} queries of {self.candidates[arm].model_id}, but the driver "
                f"cannot read them in the result store {self.store_root}: on a multi-node cluster --out must be on "
                f"storage every node can reach (docs/cluster.md)")
        self.book.record_pairs(arm, chunk, report.rewards)
        if not self.schedule.has_work(arm):
            # done with it for this phase: it stays loaded in the slot, but its files may go to make room
            self.checkpoints.release(arm)
        self._known_parts.add(report.part)
        self.progress.paid += report.queries
        if report.load_s > 0:
            self.cost.add_load(report.load_s, reload=arm in self._loaded_before)
            self._loaded_before.add(arm)
        self.cost.add_batch(report)

    # -------------------------------------------------------------------------------------------- slots
    def _slot_capacity(self) -> int:
        """Loaded-model slots: max_loaded, capped by what the cluster holds right now (it may grow or shrink:
        elastic scaling), so that no actor waits forever for resources. Asked of Ray at most every 2 seconds."""
        import ray

        when, slots = self._capacity
        if time.monotonic() - when < 2.0:
            return slots
        s = self.settings
        resources = ray.cluster_resources()
        # (1e-6: float division, e.g. 1 // 0.2 == 4.0 would lose a slot)
        capacity = min((int(resources.get(k, 0) / v + 1e-6) for k, v in s.slot_needs().items()),
                       default=s.max_loaded)
        slots = max(1, min(s.max_loaded, capacity))
        self._capacity = (time.monotonic(), slots)
        return slots

    def _only_slot_node(self) -> str | None:
        """The cluster's only node that can hold a model actor, if there is exactly one (a single machine; a head
        node without GPUs and one GPU node): fetching for the slots can start there before they are placed.
        Asked of Ray once, and used only until the first slot is placed: from then on the driver knows where its
        slots are, and a node that leaves or joins later changes nothing here."""
        import ray

        if not self._only_node_asked:
            fits = self.settings.nodes_that_fit(ray.nodes())
            self._only_node = fits[0] if len(fits) == 1 else None
            self._only_node_asked = True
        return self._only_node

    def _new_slot(self) -> SlotState:
        from raygems.runtime.actors import remote_model_actor

        s = self.settings
        options: dict[str, Any] = {"num_cpus": s.cpus_per_model}
        if s.gpus_per_model:
            options["num_gpus"] = s.gpus_per_model
        if s.slot_resource:
            options["resources"] = {s.slot_resource: 1}
        threads = max(1, int(s.cpus_per_model))
        actor = remote_model_actor().options(**options).remote(self.spec, self._pool_ref, self.store_root, threads)
        self._pid_refs[actor] = actor.pid.remote()
        slot = SlotState(node=actor.node_id.remote(), handle=actor)
        actor.warm_up.remote()      # the backend's imports, while the first checkpoints are fetched to its node
        self._slot_ids[slot] = len(self._slot_ids)
        self.cost.event("slot", slot=self._slot_ids[slot])
        return slot

    def _release_all(self) -> None:
        """Kill every model actor (end of a phase: frees the cluster for others)."""
        import ray

        for slot in self.schedule.slots:
            ray.kill(slot.handle)
        self.schedule.slots.clear()
        self.progress.loaded = 0

    def _slot_lost(self, slot: SlotState) -> None:
        """The slot's actor died or cannot be reached: it is killed (an unreachable one could still hold
        resources) and replaced when a slot is next needed."""
        import ray

        self.schedule.lose(slot)
        self._pid_refs.pop(slot.handle, None)
        ray.kill(slot.handle)
        if slot.arm is not None:
            self.checkpoints.release(slot.arm)
        self._capacity = (0.0, 0)        # the cluster may have lost a node: ask again
        self.progress.loaded = self.schedule.loaded()

    # ----------------------------------------------------------------------------------------- failures
    def _key(self, arm: int) -> tuple[str, str]:
        return self.candidates[arm].model_id, self.candidates[arm].revision

    def _fail(self, arm: int, failure: Failure, persist: bool, in_flight: int = 0) -> None:
        """`arm` is out of this search. A checkpoint's own failure (fetch, load, generate) is persisted so a
        rerun does not pay for it again; other errors (`persist=False`) are retried by a rerun."""
        self._failed[arm] = failure
        if persist:
            self.store.put_failure(failure)
            self._recorded_failures.add(arm)
        for slot in self.schedule.slots:
            if slot.arm == arm:    # the slot is fine; only its checkpoint failed
                slot.handle.unload.remote()
        self.schedule.drop(arm, in_flight=in_flight)
        self.checkpoints.release(arm)
        self.checkpoints.retire([arm])
        self.progress.failed = len(self._failed)
        self.progress.loaded = self.schedule.loaded()


def remote_driver(pin_to_this_node: bool = True):
    """The driver as a Ray actor class. By default it is pinned to the node of the calling process (the head
    node in a cluster job), so that losing a preemptible worker node never takes the driver with it."""
    import ray

    options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 4}
    if pin_to_this_node:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    return ray.remote(**options)(SearchDriver)


def _is_ref(value) -> bool:
    import ray

    return isinstance(value, ray.ObjectRef)


