"""Where the model actors find checkpoints: on local disk already (a tree in a local directory, the replay
backend), or downloaded to each node's disk by CPU-only fetch workers ahead of the slots (a hub tree).

The driver talks to a `CheckpointSource`:

* `want(arms)`: the arms the current phase still needs, in the order the slots will take them (fetch ahead);
* `ready(arm, node)`: whether the arm's files are on `node`, and `local_record(arm, node)` its record with the
  local path a model actor loads from;
* `hold(arm)` / `release(arm)`: a slot loads / lets go of the arm (files in use are never evicted);
* `retire(arms)`: arms out of the search (eliminated or failed): their files are the first to go;
* `pending()` / `completed(ref)`: fetches in flight, which the driver waits on with the slots' batches; a fetch
  that failed is that model's failure;
* `status()`: bytes fetched, cache use, for the progress line and the cost summary.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raygems.backends.base import CheckpointError
from raygems.errors import RaygemsError, UsageError, stop_if_it_could_not_start
from raygems.files import NO_SPACE, DiskFull
from raygems.hub.retry import RetryPolicy
from raygems.hub.types import ModelRecord
from raygems.runtime.cache import CheckpointCache, TooLarge, delete_folder


class CheckpointSource:
    """Checkpoints already on every node's disk: nothing to fetch (a local tree; the replay backend)."""

    #: Whether checkpoints are fetched to nodes (then a slot takes only arms whose files are on its node).
    fetches = False

    def __init__(self, candidates: list[ModelRecord] | None = None):
        self.candidates = candidates
        self.events: list[dict] = []   # one record per finished fetch, for the run's events log (none here)
        self.lost_nodes: set[str] = set()   # nodes found to have left the cluster (their slots are lost too)
        #: (arm, node) of every fetch that brought an arm's files to a node, in order (the slot schedule looks for
        #: an arm only where it arrived); None: every arm is on every node.
        self.arrivals: list[tuple[int, str]] | None = None

    def want(self, arms: list[int]) -> None:
        pass

    def ready(self, arm: int, node) -> bool:
        return True

    def local_record(self, arm: int, node) -> ModelRecord | None:
        return None   # the candidate's own record (its path, if any, is local)

    def set_slots(self, slots_per_node: dict, idle_slots: int) -> None:
        pass

    def hold(self, arm: int, node=None) -> bool:
        """A slot on `node` takes `arm`: its files stay until `release`. False: they are gone (fetch again)."""
        return True

    def release(self, arm: int) -> None:
        pass

    def retire(self, arms: Iterable[int]) -> None:
        pass

    def pending(self) -> list:
        return []

    def check_nodes(self, nodes: Iterable) -> None:
        """Something on `nodes` died: those that left the cluster join `lost_nodes` (nothing to do here)."""

    def nodes_with_files(self) -> set:
        """The nodes holding fetched checkpoints (none here)."""
        return set()

    def completed(self, ref) -> list:
        """The models whose fetch `ref` failed, as (arm, Failure, persist): `persist` false for a failure that is
        not the checkpoint's own (a busy hub, a cache limit the checkpoint does not fit), which a rerun tries again."""
        return []

    def status(self) -> dict:
        return {}

    def shutdown(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- hub trees
@dataclass(frozen=True)
class FetchSettings:
    """How checkpoints of a hub tree reach the nodes.

    cache_dir: node-local folder for checkpoints ("{node}" in it is replaced by the node id, for several Ray
        nodes on one machine). limit_bytes: the most the cache may hold (None: 90% of the free space there when
        the search starts). concurrency: downloads at once per node. overlap: fetch ahead of the slots (True), or
        only when a slot is idle and needs a checkpoint (False: the serial design, kept for comparison).
    endpoint, token, offline: the hub as the search's own process sees it (endpoint None: HF_ENDPOINT's; token
        None: the node's saved token); the workers follow it, whatever their environment says.
    retry: the back-off on a busy or unreachable hub (`raygems.hub.retry`).
    """

    cache_dir: str
    limit_bytes: int | None = None
    concurrency: int = 2
    overlap: bool = True
    endpoint: str | None = None
    token: str | None = None
    offline: bool = False
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"fetch concurrency must be at least 1, got {self.concurrency}")


@dataclass(frozen=True)
class FetchReport:
    """One checkpoint on one node: where it is, what fetching it cost (0 bytes: it was there already), and the
    cache's state after it. `failure`: the model's own failure (stage "fetch"), when it could not be fetched."""

    model_id: str
    path: str | None
    bytes: int
    seconds: float
    cache_bytes: int
    peak_cache_bytes: int
    cache_limit_bytes: int
    failure: str | None = None
    failure_persists: bool = True  # the checkpoint's own (recorded); false: a busy hub, a cache it does not fit
    plan_s: float = 0.0           # asking the hub which files (metadata), for the checkpoint and its base
    wait_s: float = 0.0           # waiting for room in the cache


def slots_by_node(nodes: Iterable[Any], only_node: str | None = None) -> dict[str, int]:
    """The slots per node the fetch stage plans its downloads with, given each slot's node (None: not placed
    yet). A slot counts on its node once the driver knows it; before that, on `only_node`, the only node of the
    cluster that can hold a slot (when there is exactly one, every slot is placed there), so that the first
    downloads start while the slots' processes are still starting."""
    placed: dict[str, int] = {}
    for node in nodes:
        node = node if node is not None else only_node
        if node is not None:
            placed[node] = placed.get(node, 0) + 1
    return placed


class FetchWorker:
    """One node's downloader (a CPU-only Ray actor, `remote_fetch_worker`): downloads checkpoints into the node's
    cache (`raygems.hub.download`: resumable, only the files loading needs), under the cache's byte budget
    (`raygems.runtime.cache.CheckpointCache`). Several `fetch` calls run at once (threads; `concurrency`
    downloads at a time); a download that does not fit waits until the driver releases or retires something."""

    def __init__(self, settings: FetchSettings, revisions: dict[str, str], node: str):
        import shutil as _shutil

        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = settings.offline
        self.settings = settings
        self.revisions = revisions
        root = Path(settings.cache_dir.replace("{node}", node[:12])).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        limit = settings.limit_bytes
        if limit is None:
            limit = int(0.9 * _shutil.disk_usage(root).free)
            if limit <= 0:                 # no room for any checkpoint here: the disk, not a model
                raise DiskFull(root)
        self.cache = CheckpointCache(root, limit)
        self._scan_existing()
        self._lock = threading.Condition()
        self._downloads = threading.Semaphore(settings.concurrency)
        self.fetched_bytes = 0
        self.fetch_seconds = 0.0
        self._call = threading.local()       # this fetch call's bytes, plan and wait seconds (calls run at once)

    def _scan_existing(self) -> None:
        """Checkpoints downloaded by an earlier run (complete, or partial: resumed when wanted again)."""
        from raygems.hub.download import MARKER_FILE

        for folder in sorted(p for p in self.cache.root.glob("*/*") if p.is_dir()):
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            marker = folder / MARKER_FILE
            revision = json.loads(marker.read_text()).get("revision", "") if marker.is_file() else ""
            self.cache.register(f"{folder.parent.name}/{folder.name}", size, revision, ready=marker.is_file())

    # ----------------------------------------------------------------------------------------- control
    def retire(self, model_ids: list[str]) -> None:
        with self._lock:
            self.cache.retire(set(model_ids))
            self._lock.notify_all()

    def hold(self, model_id: str) -> bool:
        """Keep `model_id`'s checkpoint for a slot; False when it is not (or no longer) on this node."""
        with self._lock:
            entry = self.cache.entries.get(model_id)
            if entry is None or not entry.ready or not self.cache.folder(model_id).is_dir():
                return False
            self.cache.hold(model_id)
            return True

    def release(self, model_id: str) -> None:
        with self._lock:
            self.cache.release(model_id)
            self._lock.notify_all()

    def status(self) -> dict:
        with self._lock:
            return {"cache_bytes": self.cache.used_bytes, "peak_cache_bytes": self.cache.peak_bytes,
                    "cache_limit_bytes": self.cache.limit_bytes, "fetch_bytes": self.fetched_bytes,
                    "fetch_s": self.fetch_seconds, "evicted": list(self.cache.evicted)}

    # ------------------------------------------------------------------------------------------ fetching
    def fetch(self, model_id: str) -> FetchReport:
        """The checkpoint of `model_id` on this node (and, for an adapter, its base beside it)."""
        from raygems.hub.download import DownloadError

        started = time.monotonic()
        self._call.bytes, self._call.plan_s, self._call.wait_s = 0, 0.0, 0.0
        try:
            path = self._fetch(model_id, self.revisions.get(model_id, "main"))
            self._fetch_base(model_id, path)
        except DownloadError as exc:     # (still 429/5xx after the retries: not the checkpoint's, try it next run)
            return self._report(model_id, None, started, failure=str(exc).splitlines()[0], persists=not exc.transient)
        except TooLarge as exc:          # (another --cache-limit may hold it)
            return self._report(model_id, None, started, failure=str(exc).splitlines()[0], persists=False)
        except CheckpointError as exc:     # what the upload says cannot be followed: this arm's failure only
            return self._report(model_id, None, started, failure=f"{model_id}: {exc.reason}")
        except OSError as exc:
            if exc.errno in NO_SPACE:     # the node's disk, not the model: the search stops (DiskFull)
                raise DiskFull(self.cache.root) from None
            raise
        return self._report(model_id, str(path), started)

    def _report(self, model_id: str, path: str | None, started: float, failure: str | None = None,
                persists: bool = True) -> FetchReport:
        with self._lock:
            return FetchReport(model_id, path, self._call.bytes, time.monotonic() - started,
                               self.cache.used_bytes, self.cache.peak_bytes, self.cache.limit_bytes, failure,
                               failure_persists=persists, plan_s=self._call.plan_s, wait_s=self._call.wait_s)

    def _fetch(self, model_id: str, revision: str) -> Path:
        from raygems.hub.download import download, is_complete, plan_download

        asked = time.monotonic()
        plan = plan_download(model_id, revision, endpoint=self.settings.endpoint, token=self.settings.token,
                             retry=self.settings.retry)
        self._call.plan_s += time.monotonic() - asked
        folder = self.cache.folder(model_id)
        waiting = time.monotonic()
        with self._lock:
            entry = self.cache.entries.get(model_id)
            if entry is not None and entry.ready and is_complete(folder, plan):
                self.cache.completed(model_id, entry.size)
                return folder
            while True:
                victims = self.cache.admit(model_id, plan.total_bytes, plan.commit)
                if victims is not None:
                    break
                self._lock.wait(timeout=5.0)     # woken by a release or a retirement
            self._call.wait_s += time.monotonic() - waiting
            for victim in victims:
                delete_folder(self.cache.folder(victim))
            if entry is not None and entry.revision not in ("", plan.commit):
                delete_folder(folder)            # another commit: the downloader refuses to mix them
        seconds = time.monotonic()
        try:
            with self._downloads:
                result = download(plan, folder, token=self.settings.token, retry=self.settings.retry)
        except BaseException:
            with self._lock:
                self.cache.abandon(model_id)
                self._lock.notify_all()
            raise
        with self._lock:
            self.fetched_bytes += result.bytes_downloaded
            self._call.bytes += result.bytes_downloaded
            self.fetch_seconds += time.monotonic() - seconds
            self.cache.completed(model_id, plan.total_bytes)
            self._lock.notify_all()
        return folder

    def _fetch_base(self, model_id: str, folder: Path) -> None:
        """An adapter loads on its base: fetched beside it, and kept while the adapter is in the search.
        CheckpointError when its adapter_config.json cannot be read or names a base that is not a hub model id."""
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        from raygems.backends.checkpoint import ADAPTER_CONFIG, names_a_local_base, read_adapter_config

        adapter = read_adapter_config(folder, model_id)
        if adapter is None:
            return
        base = adapter["base_model_name_or_path"]
        if names_a_local_base(base):
            return                                 # a local base path: loading finds it (or fails) itself
        try:
            validate_repo_id(base)
        except HFValidationError:
            raise CheckpointError(f"{ADAPTER_CONFIG} names base model {base[:200]!r}, not a hub model id",
                                  model_id) from None
        self._fetch(base, self.revisions.get(base, "main"))
        with self._lock:
            self.cache.needs_base(model_id, base)

    def pid(self) -> int:
        return os.getpid()


def remote_fetch_worker():
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(FetchWorker)


class FetchStage(CheckpointSource):
    """The driver's side of fetching (a `CheckpointSource`): one `FetchWorker` per node that has slots, started
    when first needed. Each phase it is told the arms still to evaluate, in the order the slots will take them,
    and keeps up to `concurrency` fetches per node going ahead of the slots (arms go to the node with the
    fewest queued per slot; an arm already on a node stays there). A slot takes only an arm whose files are
    on its node.

    The policy here is pure bookkeeping; what touches the workers (Ray calls) is in the five `_..._on` /
    `_start_fetch` / `_fetch_report` methods, which the cost model (`raygems.plan.simulate`) replaces with
    simulated nodes, so that a plan fetches in exactly the order a search does. `events` keeps one record per
    finished fetch (when it was launched and done, its bytes and timings) for the run's events log."""

    fetches = True

    def __init__(self, candidates: list[ModelRecord], settings: FetchSettings):
        super().__init__(candidates)
        self.settings = settings
        self.revisions = {m.model_id: m.revision for m in candidates}
        self.workers: dict[str, Any] = {}                  # node id -> FetchWorker actor
        self.local: dict[tuple[int, str], str] = {}        # (arm, node) -> local path
        self.in_flight: dict[Any, tuple[int, str]] = {}    # fetch ref -> (arm, node)
        self.launched: dict[Any, float] = {}               # fetch ref -> when it was launched (clock())
        self.queue: deque[int] = deque()                   # arms still to fetch, in order
        self.slots_per_node: dict[str, int] = {}
        self.held_on: dict[int, list[str]] = {}
        self.idle_slots = 0                                # slots with nothing to do (serial mode fetches then)
        self.totals = {"fetch_bytes": 0, "fetch_s": 0.0, "cache_bytes": 0, "peak_cache_bytes": 0,
                       "cache_limit_bytes": 0}
        self._cache_by_node: dict[str, tuple[int, int]] = {}
        self.arrivals = []

    def clock(self) -> float:
        return time.time()

    # ------------------------------------------------------------------------------------------ placement
    def set_slots(self, slots_per_node: dict[str, int], idle_slots: int) -> None:
        """The nodes that have slots (placed ones), and how many slots are idle: fetches are launched now. A node
        that left is not one of them, whatever its slots' actors (not yet known to be lost) say."""
        self.slots_per_node = {node: n for node, n in slots_per_node.items() if node not in self.lost_nodes}
        self.idle_slots = idle_slots
        self._launch()

    def want(self, arms: list[int]) -> None:
        on_a_node = {arm for arm, _ in self.local} | {arm for arm, _ in self.in_flight.values()}
        self.queue = deque(arm for arm in arms if arm not in on_a_node)
        self._launch()

    def _launch(self) -> None:
        if not self.slots_per_node:
            return
        limit = self.settings.concurrency if self.settings.overlap else self.idle_slots
        queued = {node: 0 for node in self.slots_per_node}
        for _, node in self.in_flight.values():
            if node in queued:
                queued[node] += 1
        while self.queue:
            node = min(self.slots_per_node, key=lambda n: (queued[n] / self.slots_per_node[n], n))
            if queued[node] >= limit:
                break
            arm = self.queue.popleft()
            ref = self._start_fetch(node, arm)
            self.in_flight[ref] = (arm, node)
            self.launched[ref] = self.clock()
            queued[node] += 1

    # ------------------------------------------------------------------------------------------ events
    def pending(self) -> list:
        return list(self.in_flight)

    def completed(self, ref) -> list:
        from raygems.runtime.store import Failure

        arm, node = self.in_flight.pop(ref)
        launched = self.launched.pop(ref, None)
        report = self._fetch_report(ref, node)
        if report is None:                          # the node's worker died (its node left): fetch again
            self.queue.appendleft(arm)
            self._launch()
            return []
        self.events.append({"arm": arm, "node": node, "launched": launched, "completed": self.clock(),
                            "bytes": report.bytes, "seconds": report.seconds, "plan_s": report.plan_s,
                            "wait_s": report.wait_s, "failure": report.failure})
        self.totals["fetch_bytes"] += report.bytes
        self.totals["fetch_s"] += report.seconds
        self._cache_by_node[node] = (report.cache_bytes, report.peak_cache_bytes, report.cache_limit_bytes)
        self.totals["cache_bytes"] = sum(used for used, _, _ in self._cache_by_node.values())
        self.totals["peak_cache_bytes"] = max(self.totals["peak_cache_bytes"],
                                              sum(peak for _, peak, _ in self._cache_by_node.values()))
        self.totals["cache_limit_bytes"] = sum(limit for _, _, limit in self._cache_by_node.values())
        self._launch()
        model = self.candidates[arm]
        if report.failure is not None:
            return [(arm, Failure(model.model_id, model.revision, "fetch", report.failure), report.failure_persists)]
        self.local[(arm, node)] = report.path
        self.arrivals.append((arm, node))
        return []

    # -------------------------------------------------------------------------------------------- slots
    def ready(self, arm: int, node) -> bool:
        return node is not None and (arm, node) in self.local

    def local_record(self, arm: int, node) -> ModelRecord | None:
        path = self.local.get((arm, node))
        return None if path is None else replace(self.candidates[arm], path=path)

    def hold(self, arm: int, node=None) -> bool:
        """Asks the node's worker, and waits for the answer: the checkpoint may have been deleted to make room
        since it was fetched (it was not in use then); if so it is fetched again."""
        if not self._hold_on(node, arm):
            self.local.pop((arm, node), None)
            self.queue.appendleft(arm)
            self._launch()
            return False
        self.held_on.setdefault(arm, []).append(node)
        return True

    def release(self, arm: int) -> None:
        for node in self.held_on.pop(arm, []):
            self._release_on(node, arm)

    def retire(self, arms: Iterable[int]) -> None:
        arms = list(arms)
        if not arms:
            return
        self._retire_everywhere(arms)
        retired = set(arms)
        self.queue = deque(arm for arm in self.queue if arm not in retired)
        for key in [key for key in self.local if key[0] in retired]:
            del self.local[key]      # it may be deleted to make room from now on: fetch it again if needed

    def status(self) -> dict:
        return dict(self.totals)

    # ------------------------------------------------------------------------------ the workers (Ray calls)
    def _start_fetch(self, node: str, arm: int):
        """Start fetching `arm` on `node`; returns what `pending()` lists and `completed()` is given."""
        return self._worker(node).fetch.remote(self.candidates[arm].model_id)

    def _fetch_report(self, ref, node: str) -> FetchReport | None:
        """The finished fetch's report; None when the node's worker died."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RaygemsError):   # the hub cannot be reached, a full disk: stop the search
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            stop_if_it_could_not_start(exc, f"the checkpoint downloader of node {node[:12]}")   # (its folder, disk)
            self._worker_lost(node)
            return None
        except ray.exceptions.ActorUnschedulableError:    # started for a node that has left meanwhile
            self._worker_lost(node)
            return None

    def _hold_on(self, node, arm: int) -> bool:
        import ray

        if node not in self.workers:
            return False
        try:
            return ray.get(self.workers[node].hold.remote(self.candidates[arm].model_id))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnschedulableError):   # its node left
            self._worker_lost(node)
            return False

    def nodes_with_files(self) -> set:
        return {node for _, node in self.local}

    def _worker_lost(self, node: str) -> None:
        """The node's downloader died: the next fetch there starts a new one, unless the node left (check_nodes)."""
        self.workers.pop(node, None)
        self.check_nodes([node])

    def check_nodes(self, nodes: Iterable) -> None:
        """Something on `nodes` died (a downloader, a model actor): each node that left the cluster (one question to
        Ray) has its files gone with it, and no fetch goes there again (a new worker there could never start: the
        search would start one per event)."""
        import ray

        unknown = set(nodes) - self.lost_nodes
        if not unknown:
            return
        gone = unknown - {n.get("NodeID") for n in ray.nodes() if n.get("Alive")}
        if not gone:
            return
        self.lost_nodes |= gone
        for node in gone:
            self.workers.pop(node, None)
            self.slots_per_node.pop(node, None)
        self.local = {key: path for key, path in self.local.items() if key[1] not in gone}

    def _release_on(self, node, arm: int) -> None:
        if node in self.workers:
            self.workers[node].release.remote(self.candidates[arm].model_id)

    def _retire_everywhere(self, arms: list[int]) -> None:
        ids = [self.candidates[arm].model_id for arm in arms]
        for worker in self.workers.values():
            worker.retire.remote(ids)

    def _worker(self, node: str):
        if node not in self.workers:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            worker = remote_fetch_worker().options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
                max_concurrency=self.settings.concurrency + 8).remote(self.settings, self.revisions, node)
            self.workers[node] = worker
        return self.workers[node]

    def shutdown(self) -> None:
        import ray

        for worker in self.workers.values():
            ray.kill(worker)
        self.workers.clear()
