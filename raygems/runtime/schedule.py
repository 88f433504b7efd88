"""The live search's slot policy, without Ray: which loaded-model slot evaluates which batch next.

The driver (`raygems.runtime.driver`) and the cost model (`raygems.plan`) both drive this one object, so a plan
follows the same schedule a search does. Per phase (a round, or the final evaluation) it holds each arm's work
(query batches of `chunk_size`) and the arms waiting for a slot, in the round's order. Its decisions:

1. a slot whose arm still has work continues with it (the checkpoint stays loaded);
2. slots are added up to the cluster's capacity while arms wait for one;
3. an idle slot (its arm has no work left) takes the first waiting arm whose checkpoint is ready on its node,
   the least recently used idle slot first, so that recently used checkpoints stay resident for the next round.

Finding that arm costs O(log K), not a scan of the waiting arms (at K = 2,000 a scan per event was most of a
plan's time): each waiting arm has a place in the phase's order, and a heap per node holds the places of the
arms whose files arrived there (the fetch stage's `arrivals` log); a source without fetching has every arm on
every node, one heap for all.

The round's two other steps, shared the same way: `with_lookahead` (which queries each arm is served) and
`tell_round` (what the algorithm is told).
"""
from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(eq=False)
class SlotState:
    """A loaded-model slot: its node (None: not placed yet), the arm it holds, whether a batch is in flight."""

    node: Any = None
    arm: int | None = None
    busy: bool = False
    last_used: int = 0
    handle: Any = None            # what the caller keeps with it (the driver: its model actor)
    busy_since: float = 0.0


@dataclass(frozen=True)
class Dispatch:
    """Send `chunk` of `arm`'s queries to `slot`; `load`: the slot takes the arm now (it held `previous`)."""

    slot: SlotState
    arm: int
    chunk: list[int]
    load: bool = False
    previous: int | None = None


#: The heap of the arms that may be ready on any node (a source without fetching); not None, the node of a slot
#: not placed yet, which finds no heap while fetching.
EVERY_NODE = "<every node>"


class SlotSchedule:
    def __init__(self, chunk_size: int):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.slots: list[SlotState] = []
        self.work: dict[int, deque[list[int]]] = {}
        self.waiting: dict[int, int] = {}           # arms with work and no slot -> their place (smaller: sooner)
        self.outstanding = 0                          # queries queued or in flight
        self._uses = 0
        self._front = 0                               # the place of the arm put first last (requeue)
        self._heaps: dict[Any, list[tuple[int, int]]] = {}   # node -> (place, arm) of arms whose files are there
        self._arrivals_seen = 0

    # ---------------------------------------------------------------------------------------------- phase
    def begin(self, missing: dict[int, list[int]]) -> list[int]:
        """Queue each arm's missing queries (in the phase's order); returns the arms that wait for a slot."""
        size = self.chunk_size
        self.work = {arm: deque(queries[i:i + size] for i in range(0, len(queries), size))
                     for arm, queries in missing.items() if queries}
        self.outstanding = sum(len(queries) for queries in missing.values())
        held = {slot.arm for slot in self.slots}
        self.waiting = {arm: place for place, arm in enumerate(arm for arm in self.work if arm not in held)}
        self._front = 0
        self._heaps = {EVERY_NODE: [(place, arm) for arm, place in self.waiting.items()]}   # (sorted: a heap)
        self._arrivals_seen = 0       # the arrivals log is read again from its start: files kept from before count
        return list(self.waiting)

    def waiting_in_order(self) -> list[int]:
        return sorted(self.waiting, key=self.waiting.__getitem__)

    @property
    def done(self) -> bool:
        return not self.work and not any(slot.busy for slot in self.slots)

    # ------------------------------------------------------------------------------------------- decisions
    def continue_own(self) -> list[Dispatch]:
        """Idle slots whose arm still has work take its next batch."""
        return [Dispatch(slot, slot.arm, self._take(slot, slot.arm)) for slot in self.slots
                if not slot.busy and slot.arm in self.work]

    def grow(self, capacity: int, new_slot: Callable[[], SlotState]) -> None:
        """Add slots up to `capacity` while arms wait for one."""
        wanted = min(capacity, len(self.slots) + len(self.waiting))
        while len(self.slots) < wanted:
            self.slots.append(new_slot())

    def loaded(self) -> int:
        """Slots that hold a model."""
        return sum(1 for slot in self.slots if slot.arm is not None)

    def idle_slots(self) -> list[SlotState]:
        """Slots with nothing to do, least recently used first."""
        return sorted((s for s in self.slots if not s.busy and s.arm not in self.work), key=lambda s: s.last_used)

    def assign_idle(self, ready: Callable[[int, Any], bool],
                    arrivals: Sequence[tuple[int, Any]] | None = None) -> list[Dispatch]:
        """Each idle slot takes the first waiting arm that `ready(arm, node)` says is on its node. `arrivals`: the
        (arm, node) of every fetch that brought files to a node, in order, a log that only grows (None: every arm
        is on every node); an arm is looked for only on the nodes it arrived at, and `ready` has the last word."""
        if arrivals is not None:
            self._read_arrivals(arrivals)
        out = []
        for slot in self.idle_slots():
            if not self.waiting:
                break
            arm = self._first_ready(slot, ready, EVERY_NODE if arrivals is None else slot.node)
            if arm is None:
                continue
            previous, slot.arm = slot.arm, arm
            out.append(Dispatch(slot, arm, self._take(slot, arm), load=True, previous=previous))
        return out

    def _read_arrivals(self, arrivals: Sequence[tuple[int, Any]]) -> None:
        for arm, node in arrivals[self._arrivals_seen:]:
            heap = self._heaps.setdefault(node, [])    # (kept even empty: an arm put first again goes in it)
            if arm in self.waiting:
                heapq.heappush(heap, (self.waiting[arm], arm))
        self._arrivals_seen = len(arrivals)

    def _first_ready(self, slot: SlotState, ready: Callable[[int, Any], bool], heap_key) -> int | None:
        """The first waiting arm on the slot's node. An entry that is out of date (the arm was taken, dropped or
        put first again since) is dropped; so is one on a node whose files are gone (its next arrival brings it
        back); an arm `ready` turns down on the heap of every node keeps its place."""
        heap, passed, found = self._heaps.get(heap_key, []), [], None
        while heap:
            place, arm = heapq.heappop(heap)
            if self.waiting.get(arm) != place:
                continue
            if ready(arm, slot.node):
                del self.waiting[arm]
                found = arm
                break
            if heap_key == EVERY_NODE:
                passed.append((place, arm))
        for entry in passed:
            heapq.heappush(heap, entry)
        return found

    def _take(self, slot: SlotState, arm: int) -> list[int]:
        chunk = self.work[arm].popleft()
        if not self.work[arm]:
            del self.work[arm]
        slot.busy = True
        self._uses += 1
        slot.last_used = self._uses
        return chunk

    # --------------------------------------------------------------------------------------------- events
    def finished(self, slot: SlotState, queries: int) -> None:
        """A batch of `queries` came back recorded."""
        slot.busy = False
        self.outstanding -= queries

    def has_work(self, arm: int) -> bool:
        return arm in self.work

    def drop(self, arm: int, in_flight: int = 0) -> None:
        """`arm` is out (failed): its queued work goes, and `in_flight` queries of a batch that came back."""
        chunks = self.work.pop(arm, ())
        self.waiting.pop(arm, None)
        self.outstanding -= in_flight + sum(len(chunk) for chunk in chunks)
        for slot in self.slots:
            if slot.arm == arm:
                slot.arm = None

    def requeue(self, arm: int, missing: list[int], returned: int) -> None:
        """A batch of `returned` queries was lost with its slot; `missing` of them are to be evaluated again,
        first, by a slot that takes the arm anew."""
        self.outstanding -= returned - len(missing)
        if missing:
            self.work.setdefault(arm, deque()).appendleft(missing)
        if arm in self.work:
            self._front -= 1
            self.waiting[arm] = self._front
            for heap in self._heaps.values():      # (on a node it is not on, its entry is dropped when reached)
                heapq.heappush(heap, (self._front, arm))

    def lose(self, slot: SlotState) -> None:
        """A slot that died (its actor, or its node)."""
        if slot in self.slots:
            self.slots.remove(slot)


def tell_round(algo, pulls, requests: dict[int, list[int]], failed, correct: Callable[[int, list[int]], int]) \
        -> list[int]:
    """Tell the algorithm a round's outcome, as the driver and the cost model both do: per pulled arm how many of
    its `requests` it answered correctly (`correct(arm, queries)`), an arm in `failed` as a failed arm. Returns
    the arms eliminated so far (their checkpoints may go first)."""
    successes = np.zeros(len(pulls), dtype=np.int64)
    newly_failed = []
    for j, arm in enumerate(pulls.arm.tolist()):
        if arm in failed:
            newly_failed.append(arm)
            continue
        successes[j] = correct(arm, requests[arm])
    algo.tell(successes, failed=newly_failed or None)
    return np.flatnonzero(algo.eliminated()[0]).tolist()


def count_by_stage(stages: Iterable[str]) -> str:
    """How many models failed at each stage, most first: '3 at fetch, 1 at load' (the one line a search, or its
    plan, gives when every candidate failed)."""
    return ", ".join(f"{n} at {stage}" for stage, n in Counter(stages).most_common())


def with_lookahead(pulls, requests: dict[int, list[int]], missing: Callable[[int, list[int]], int],
                   queries_per_batch: int, num_queries: int) -> dict[int, list[int]]:
    """The load-aware variant (`--lookahead`, docs/cost.md): under correlated sampling every survivor of a round
    answers the same next positions of one shared query order, so the queries a survivor answers next round
    are known now. Each arm's last generate batch of the round is filled with them: on a GPU a decode step
    costs the same for a full batch as for a few sequences, and a survivor whose next round is already
    answered needs no slot, fetch or load then. The algorithm is asked and told exactly as without it.

    `missing(arm, queries)`: how many of `queries` the arm has still to answer; `queries_per_batch`: queries
    per generate batch (the backend's batch size / prompt variants)."""
    if not pulls.shared or queries_per_batch < 1:
        return requests
    served = {}
    for j, arm in enumerate(pulls.arm.tolist()):
        asked = requests[arm]
        start, count = int(pulls.start[j]), int(pulls.count[j])
        todo = missing(arm, asked)
        extra = min((-todo) % queries_per_batch, num_queries - (start + count)) if todo else 0
        ahead = [int(q) for q in pulls.order.ids(int(pulls.rep[j]), arm, start + count, extra, True)] if extra > 0 \
            else []
        served[arm] = asked + ahead
    return served
