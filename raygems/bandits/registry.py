"""The registry of search methods: one name, one implementation, documented defaults.

    from raygems.bandits import make_algorithm, list_methods
    algo = make_algorithm("ours", num_arms=K, num_queries=Q, budget_per_model=50, seeds=keys)

Names are the paper's methods and baselines, exactly: random, best-base, uniform, ucb, ucb-e, ucb-stddev,
successive-rejects, sequential-halving, ttts, bayes-elim, ours, ours-sh-schedule, ours-no-corr.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raygems.bandits.base import BanditAlgorithm
from raygems.bandits.elimination import (
    AggressiveElimination,
    BayesElim,
    OursNoCorrelation,
    OursSHSchedule,
    SequentialHalving,
    SuccessiveRejects,
    Uniform,
)
from raygems.bandits.index_policies import UCB, UCBE, UCBStdDev
from raygems.bandits.randomness import repetition_keys
from raygems.bandits.recommended import RecommendedSearch
from raygems.bandits.reference import BestBase, RandomSelection
from raygems.bandits.ttts import TopTwoThompsonSampling


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its class, fixed options, and what it needs."""

    name: str
    cls: type[BanditAlgorithm]
    label: str                           # the paper's row label
    options: dict[str, Any] = field(default_factory=dict)
    needs_models_table: bool = False
    spends_budget: bool = True

    def make(self, num_arms: int, num_queries: int, budget_per_model: int, seeds, **options) -> BanditAlgorithm:
        merged = {**self.options, **options}
        return self.cls(num_arms, num_queries, budget_per_model, seeds, **merged)

    @property
    def anytime(self) -> bool:
        return self.cls.anytime


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


for _spec in (
    MethodSpec("random", RandomSelection, "Random Selection", spends_budget=False),
    MethodSpec("best-base", BestBase, "Best Base", needs_models_table=True, spends_budget=False),
    MethodSpec("uniform", Uniform, "Uniform"),
    MethodSpec("ucb", UCB, "UCB"),
    MethodSpec("ucb-stddev", UCBStdDev, "UCB-StdDev."),
    MethodSpec("ttts", TopTwoThompsonSampling, "TTTS"),
    MethodSpec("successive-rejects", SuccessiveRejects, "Successive Rejects"),
    MethodSpec("bayes-elim", BayesElim, "BayesElim"),
    MethodSpec("ucb-e", UCBE, "UCB-E"),
    MethodSpec("sequential-halving", SequentialHalving, "Sequential Halving"),
    MethodSpec("ours", AggressiveElimination, "Ours"),
    MethodSpec("ours-sh-schedule", OursSHSchedule, "Ours w. SH Scheduler"),
    MethodSpec("ours-no-corr", OursNoCorrelation, "Ours w/o Corr. Sampling"),
    MethodSpec("recommended", RecommendedSearch, "Recommended"),
):
    register_method(_spec)


def list_methods() -> list[str]:
    """Registered method names, in the paper's table order."""
    return list(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(_REGISTRY)}") from None


def make_algorithm(name: str, num_arms: int, num_queries: int, budget_per_model: int, seeds=None, *,
                   seed: int = 0, reps: int = 1, **options) -> BanditAlgorithm:
    """Create a registered algorithm. `seeds` are repetition keys; by default `repetition_keys(seed, reps)`."""
    if seeds is None:
        seeds = repetition_keys(seed, reps)
    return get_method(name).make(num_arms, num_queries, budget_per_model, np.asarray(seeds, dtype=np.uint64),
                                 **options)
