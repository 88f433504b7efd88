"""The slot schedule's choice of arm for an idle slot: the first waiting arm, in the phase's order (arms put back
after a lost slot first), whose files are on the slot's node. Checked against that rule written as a plain scan,
over random runs of arrivals, deletions, finished batches, failures and lost slots; and the index behind it asks
about no arm that has not arrived on the node (a scan per event made K = 2,000 quadratic)."""
from __future__ import annotations

import random

import pytest

from raygems.runtime.schedule import SlotSchedule, SlotState


class Files:
    """Which arm's files are on which node, with the arrivals log a fetching source keeps."""

    def __init__(self):
        self.on: set[tuple[int, str]] = set()
        self.arrivals: list[tuple[int, str]] = []
        self.asked = 0

    def arrive(self, arm: int, node: str) -> None:
        self.on.add((arm, node))
        self.arrivals.append((arm, node))

    def ready(self, arm: int, node) -> bool:
        self.asked += 1
        return (arm, node) in self.on


def expected_choices(schedule: SlotSchedule, waiting: list[int], ready_on: set[tuple[int, str]] | None) \
        -> list[tuple[SlotState, int]]:
    """The rule as a scan: each idle slot, least recently used first, takes the first ready arm of `waiting` (the
    test's own list of the waiting arms, in order)."""
    order = list(waiting)
    out = []
    for slot in schedule.idle_slots():
        arm = next((a for a in order if ready_on is None or (a, slot.node) in ready_on), None)
        if arm is not None:
            order.remove(arm)
            out.append((slot, arm))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_an_idle_slot_takes_the_first_waiting_arm_on_its_node(seed):
    rng = random.Random(seed)
    nodes = ["node-a", "node-b", "node-c"][:rng.randint(1, 3)]
    fetching = rng.random() < 0.8
    arms = rng.randint(1, 40)
    schedule = SlotSchedule(chunk_size=rng.randint(1, 3))
    places = nodes + [None]                                 # (None: a slot whose actor is not placed yet)
    for _ in range(rng.randint(1, 6)):
        schedule.slots.append(SlotState(node=rng.choice(places)))
    files = Files()
    in_flight: dict[int, tuple[SlotState, int, list[int]]] = {}
    for phase in range(3):
        queries = rng.randint(1, 6)
        arms_asked = rng.sample(range(arms), rng.randint(1, arms))
        schedule.begin({arm: list(range(queries)) for arm in arms_asked})
        held = {slot.arm for slot in schedule.slots}
        waiting = [arm for arm in arms_asked if arm not in held]      # the phase's order: the arms without a slot
        for _ in range(400):
            if schedule.done:
                break
            event = rng.random()
            if fetching and event < 0.35 and waiting:
                files.arrive(rng.choice(waiting), rng.choice(nodes))
            elif fetching and event < 0.45 and files.on:
                files.on.discard(rng.choice(sorted(files.on)))          # deleted to make room, or its node left
            elif event < 0.5 and schedule.work:
                failed = rng.choice(sorted(schedule.work))
                schedule.drop(failed)
                waiting = [arm for arm in waiting if arm != failed]
            elif event < 0.55 and in_flight:
                slot = rng.choice(list(in_flight))
                slot_state, arm, chunk = in_flight.pop(slot)
                schedule.lose(slot_state)
                schedule.requeue(arm, chunk, len(chunk))
                waiting.insert(0, arm)                                   # first: most recently put back first
                schedule.slots.append(SlotState(node=rng.choice(places)))
            elif in_flight:
                slot_state, _, chunk = in_flight.pop(rng.choice(list(in_flight)))
                schedule.finished(slot_state, len(chunk))
            for dispatch in schedule.continue_own():
                in_flight[id(dispatch.slot)] = (dispatch.slot, dispatch.arm, dispatch.chunk)
            expected = expected_choices(schedule, waiting, files.on if fetching else None)
            got = (schedule.assign_idle(files.ready, files.arrivals) if fetching
                   else schedule.assign_idle(lambda arm, node: True))      # every arm on every node
            assert [(d.slot, d.arm) for d in got] == expected, f"seed {seed}, phase {phase}"
            for dispatch in got:
                in_flight[id(dispatch.slot)] = (dispatch.slot, dispatch.arm, dispatch.chunk)
                waiting.remove(dispatch.arm)
            assert schedule.waiting_in_order() == waiting
        for slot_state, _, chunk in in_flight.values():
            schedule.finished(slot_state, len(chunk))
        in_flight.clear()


def test_an_idle_slot_with_nothing_on_its_node_asks_about_no_arm():
    schedule = SlotSchedule(chunk_size=1)
    schedule.slots = [SlotState(node="node-a"), SlotState(node="node-b"), SlotState(node=None)]   # (None: unplaced)
    schedule.begin({arm: [0] for arm in range(2000)})
    files = Files()
    for _ in range(100):                      # events while the downloads run: nothing is on a node yet
        assert schedule.assign_idle(files.ready, files.arrivals) == []
    assert files.asked == 0
    files.arrive(1500, "node-b")
    [dispatch] = schedule.assign_idle(files.ready, files.arrivals)
    assert (dispatch.arm, dispatch.slot.node) == (1500, "node-b") and files.asked == 1


def test_an_arm_put_back_after_its_slot_was_lost_goes_first_on_the_node_holding_its_files():
    schedule = SlotSchedule(chunk_size=2)
    slot = SlotState(node="node-a")
    schedule.slots = [slot]
    schedule.begin({0: [0, 1, 2, 3], 1: [0, 1], 2: [0, 1]})
    files = Files()
    for arm in (0, 1, 2):
        files.arrive(arm, "node-a")
    [first] = schedule.assign_idle(files.ready, files.arrivals)
    assert first.arm == 0
    schedule.lose(slot)                                 # its actor died with the batch in flight
    schedule.requeue(0, first.chunk, len(first.chunk))
    schedule.slots = [SlotState(node="node-a")]
    [again] = schedule.assign_idle(files.ready, files.arrivals)
    assert again.arm == 0 and again.chunk == [0, 1] and again.load
