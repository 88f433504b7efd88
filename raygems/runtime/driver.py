"""The search driver: runs a bandit algorithm (R = 1) against live model actors.

Each round it asks the algorithm which arms answer which query ids, serves what the result store already
holds, and sends the rest to the survivors' model actors concurrently, within `max_loaded` loaded-model
slots: survivors stay resident while they fit; otherwise idle actors are unloaded, least recently used first.
A checkpoint that fails to fetch, load or generate is recorded with its reason and told to the algorithm as
failed (an eliminated arm); the search goes on. An actor that dies (killed, or its node preempted) is replaced
and its unfinished batch is re-sent; pairs it had already recorded are not evaluated again.

Because the algorithm is deterministic for a seed and every answer is kept in the store, re-running a search
(after a crash of the driver, or with `--resume`) replays the same requests and pays only for pairs that
were never recorded.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raygems.bandits import make_algorithm, repetition_keys
from raygems.errors import SetupError
from raygems.hub.types import ModelRecord
from raygems.runtime.evaluation import VARIANTS, EvaluationError, EvaluatorSpec, best_variant_successes
from raygems.runtime.store import Failure, ResultStore


@dataclass
class DriverSettings:
    method: str = "recommended"
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


@dataclass
class Progress:
    round: int = 0
    survivors: int = 0
    requested: int = 0        # (model, query) pairs asked for so far
    paid: int = 0             # pairs evaluated in this run
    reused: int = 0           # pairs served from the store
    failed: int = 0
    loaded: int = 0
    started: float = field(default_factory=time.time)
    done: bool = False
    message: str = ""

    def as_dict(self) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        return {**self.__dict__, "elapsed_s": elapsed, "throughput_qps": self.paid / elapsed}


class SearchDriver:
    """Plain class; run it inside a Ray actor (`remote_driver()`), or in-process for debugging."""

    def __init__(self, candidates: list[ModelRecord], pool, store_root: str, spec: EvaluatorSpec,
                 settings: DriverSettings):
        if len(candidates) < 2:
            raise ValueError(f"need at least 2 candidate models, got {len(candidates)}")
        self.candidates = list(candidates)
        self.pool = pool
        self.query_ids = np.asarray(pool.query_ids, dtype=object)
        self.store = ResultStore(store_root)
        self.store_root = str(store_root)
        self.spec = spec
        self.settings = settings
        self.progress = Progress()
        self._actors: OrderedDict[int, Any] = OrderedDict()   # arm -> actor holding it, least recently used first
        self._free: list[Any] = []                            # live actors holding no arm
        self._pid_refs: dict[Any, Any] = {}                   # actor -> ObjectRef of its pid (asked at creation)
        self._restarts: dict[int, int] = {}
        self._failed: dict[int, Failure] = {}
        # failures recorded by an earlier run of this search: applied when the arm next needs new work, which
        # is the moment it failed before, so a rerun follows the same path as the run it continues
        self._known_failures: dict[int, Failure] = {}
        for arm, model in enumerate(self.candidates):
            failure = self.store.failure_of(model.model_id, model.revision)
            if failure is not None:
                self._known_failures[arm] = failure
        self._answered: dict[int, list[str]] = {}
        self._pool_ref = None

    # ------------------------------------------------------------------------------------------ public
    def status(self) -> dict:
        return self.progress.as_dict()

    def actor_pids(self) -> dict[str, int]:
        """PIDs of the model actors holding a model (tests kill them to simulate crashes)."""
        import ray

        pids = {}
        for arm, actor in list(self._actors.items()):
            ref = self._pid_refs.get(actor)
            ready, _ = ray.wait([ref], timeout=0) if ref is not None else ([], [])
            if ready:
                pids[self.candidates[arm].model_id] = ray.get(ref)
        return pids

    def run(self) -> dict:
        import ray

        self._pool_ref = ray.put(self.pool)
        s = self.settings
        options = dict(s.method_options)
        if s.arm_priority is not None and accepts_option(s.method, "arm_priority"):
            options.setdefault("arm_priority", np.asarray(s.arm_priority, dtype=float))
        algo = make_algorithm(s.method, len(self.candidates), len(self.pool), s.budget_per_model,
                              repetition_keys(s.seed, 1), **options)
        totals = np.zeros(len(self.candidates), dtype=np.int64)
        while not algo.done:
            pulls = algo.ask()
            if pulls is None:
                break
            self.progress.round += 1
            requests = {arm: list(self.query_ids[ids]) for arm, ids in pulls.by_arm(0).items()}
            self.progress.survivors = len(requests)
            self._serve(requests)
            successes = np.zeros(len(pulls), dtype=np.int64)
            newly_failed = []
            for j, arm in enumerate(pulls.arm.tolist()):
                if arm in self._failed:
                    newly_failed.append(arm)
                    continue
                self._answered.setdefault(arm, []).extend(requests[arm])
                total = self._best_variant_total(arm)
                successes[j] = total - totals[arm]
                totals[arm] = total
            algo.tell(successes, failed=newly_failed or None)
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

    def evaluate_all(self, arms: list[int]) -> None:
        """Evaluate `arms` on the whole pool (for final accuracies and exhaustive comparisons)."""
        import ray

        if self._pool_ref is None:
            self._pool_ref = ray.put(self.pool)
        everything = list(self.query_ids)
        self._serve({arm: everything for arm in arms if arm not in self._failed})

    def shutdown(self) -> None:
        """Release every model actor."""
        self._release_all()

    def failures(self) -> dict[int, Failure]:
        return dict(self._failed)

    # ----------------------------------------------------------------------------------------- helpers
    def _best_variant_total(self, arm: int) -> int:
        model = self.candidates[arm]
        rows = self.store.known_rewards(model.model_id, model.revision, self._answered[arm])
        return best_variant_successes(rows)

    def _missing(self, arm: int, query_ids: list[str]) -> list[str]:
        model = self.candidates[arm]
        rows = self.store.known_rewards(model.model_id, model.revision, query_ids)
        have = rows.groupby("query_id")["variant"].nunique()
        complete = set(have.index[have >= len(VARIANTS)])
        return [q for q in query_ids if q not in complete]

    def _serve(self, requests: dict[int, list[str]]) -> None:
        """Make sure every (arm, query) of `requests` is in the store, or the arm is recorded as failed."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        queue: list[tuple[int, list[str]]] = []
        for arm, qids in requests.items():
            self.progress.requested += len(qids)
            if arm in self._failed:
                continue
            missing = self._missing(arm, qids)
            self.progress.reused += len(qids) - len(missing)
            if missing and arm in self._known_failures:   # it failed here in an earlier run
                self._failed[arm] = self._known_failures[arm]
                self.progress.failed = len(self._failed)
                continue
            for i in range(0, len(missing), self.settings.chunk_size):
                queue.append((arm, missing[i:i + self.settings.chunk_size]))
        in_flight: dict[Any, tuple[int, list[str]]] = {}
        busy: set[int] = set()
        while queue or in_flight:
            # submit as much as the slots allow, one batch per actor at a time
            for item in list(queue):
                arm, chunk = item
                if arm in self._failed:
                    queue.remove(item)
                    continue
                if arm in busy:
                    continue
                actor = self._actor_for(arm, keep={a for a, _ in queue} | busy)
                if actor is None:
                    continue
                queue.remove(item)
                ref = actor.evaluate.remote(chunk)
                in_flight[ref] = (arm, chunk)
                busy.add(arm)
            if not in_flight:
                if queue:  # nothing could be scheduled: every slot holds a busy actor (cannot happen) or none fit
                    raise RuntimeError("no model slot available: max_loaded must be at least 1")
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                arm, chunk = in_flight.pop(ref)
                busy.discard(arm)
                try:
                    self.progress.paid += int(ray.get(ref))
                except RayTaskError as exc:
                    cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                    if isinstance(getattr(exc, "cause", None), SetupError):   # not the checkpoint's fault: stop
                        raise exc.cause from None
                    if isinstance(cause, EvaluationError) or isinstance(getattr(exc, "cause", None), EvaluationError):
                        err = cause if isinstance(cause, EvaluationError) else exc.cause
                        self._record_failure(arm, err.stage, err.reason)
                    else:   # not the checkpoint's own failure (a bug, out of memory, ...): a rerun tries again
                        inner = getattr(exc, "cause", None) or exc
                        self._record_failure(arm, "evaluate", f"{type(inner).__name__}: {_first_line(inner)}",
                                             persist=False)
                    continue
                except (ActorDiedError, ActorUnavailableError, RayActorError):
                    self._actor_lost(arm)
                    if arm not in self._failed:
                        missing = self._missing(arm, chunk)
                        if missing:
                            queue.append((arm, missing))
                    continue
                if self._missing(arm, chunk):
                    raise RuntimeError(
                        f"a model actor evaluated {len(chunk)} queries of {self.candidates[arm].model_id}, but the "
                        f"driver cannot read them in the result store {self.store_root}: on a multi-node cluster "
                        f"--out must be on storage every node can reach (docs/cluster.md)")

    def _actor_for(self, arm: int, keep: set[int]):
        """The actor holding `arm`; otherwise a slot is re-assigned to it: a free actor, a new one if the
        cluster has room, or the least recently used actor whose arm has no pending work (its checkpoint is
        unloaded). Returns None when every slot is busy.
        """
        if arm in self._actors:
            self._actors.move_to_end(arm)
            return self._actors[arm]
        if self._free:
            actor = self._free.pop()
        elif len(self._actors) < self._slots():
            actor = self._create_actor()
        else:
            idle = [a for a in self._actors if a not in keep]
            if not idle:
                return None
            actor = self._actors.pop(idle[0])
        actor.assign.remote(self.candidates[arm])   # runs before any later call on this actor
        self._actors[arm] = actor
        self.progress.loaded = len(self._actors)
        return actor

    def _slots(self) -> int:
        """Loaded-model slots: max_loaded, capped by what the cluster holds right now (it may grow or shrink:
        elastic scaling), so that no actor waits forever for resources."""
        import ray

        s = self.settings
        resources = ray.cluster_resources()
        needs = {"CPU": s.cpus_per_model, "GPU": s.gpus_per_model}
        if s.slot_resource:
            needs[s.slot_resource] = 1.0
        # (1e-6: float division, e.g. 1 // 0.2 == 4.0 would lose a slot)
        capacity = min((int(resources.get(k, 0) / v + 1e-6) for k, v in needs.items() if v), default=s.max_loaded)
        return max(1, min(s.max_loaded, capacity))

    def _create_actor(self):
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
        return actor

    def _release_all(self) -> None:
        """Kill every model actor (end of a phase: frees the cluster for others)."""
        import ray

        for actor in list(self._actors.values()) + self._free:
            ray.kill(actor)
        self._actors.clear()
        self._free.clear()
        self.progress.loaded = 0

    def _actor_lost(self, arm: int) -> None:
        """The actor holding `arm` died or cannot be reached: it is killed (an unreachable one could still
        hold resources) and replaced on the next request; after `max_actor_restarts` losses on the same arm,
        the arm fails (not persisted: a rerun, perhaps on other nodes, tries it again)."""
        import ray

        actor = self._actors.pop(arm, None)
        if actor is not None:
            self._pid_refs.pop(actor, None)
            ray.kill(actor)
        self.progress.loaded = len(self._actors)
        self._restarts[arm] = self._restarts.get(arm, 0) + 1
        if self._restarts[arm] > self.settings.max_actor_restarts:
            self._record_failure(arm, "evaluate", f"model actor lost {self._restarts[arm]} times", persist=False)

    def _record_failure(self, arm: int, stage: str, reason: str, persist: bool = True) -> None:
        """`arm` is out of this search. A checkpoint's own failure (fetch, load, generate) is persisted so a
        rerun does not pay for it again; other errors (`persist=False`) are retried by a rerun."""
        model = self.candidates[arm]
        failure = Failure(model.model_id, model.revision, stage, reason)
        self._failed[arm] = failure
        if persist:
            self.store.put_failure(failure)
        actor = self._actors.pop(arm, None)
        if actor is not None:   # the slot is fine; only its checkpoint failed
            actor.unload.remote()
            self._free.append(actor)
        self.progress.failed = len(self._failed)
        self.progress.loaded = len(self._actors)


def accepts_option(method: str, option: str) -> bool:
    """Whether a registered method's constructor takes `option` (e.g. arm_priority, prior_alpha)."""
    import inspect

    from raygems.bandits import get_method

    cls = get_method(method).cls
    return any(option in inspect.signature(klass.__init__).parameters for klass in cls.__mro__
               if "__init__" in vars(klass))


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


def accuracy_table(store: ResultStore, candidates: list[ModelRecord], pool) -> pd.DataFrame:
    """Per model: queries evaluated, accuracy with the better prompt variant per task, and whether it answered
    the whole pool (`complete`)."""
    results = store.results()
    keys = {(m.model_id, m.revision) for m in candidates}
    results = results[[(a, b) in keys for a, b in zip(results["model_id"], results["revision"])]]
    pool_ids = set(pool.query_ids)
    results = results[results["query_id"].isin(pool_ids)]
    rows = []
    for model in candidates:
        mine = results[(results["model_id"] == model.model_id) & (results["revision"] == model.revision)]
        n = mine["query_id"].nunique()
        correct = best_variant_successes(mine) if n else 0
        rows.append({"model_id": model.model_id, "revision": model.revision, "queries": int(n),
                     "accuracy": correct / n if n else float("nan"),
                     "complete": bool(n == len(pool_ids))})
    return pd.DataFrame(rows)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
