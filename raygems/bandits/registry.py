"""The registry of search methods: one name, one implementation, and one description of what the method is and
what it accepts (`MethodSpec`). The replay engine, the live search, sweeps and reports read the spec; none of
them probes the algorithm's class.

    from raygems.bandits import make_algorithm, list_methods
    algo = make_algorithm("ours", num_arms=K, num_queries=Q, budget_per_model=50, seeds=keys)

    @register_method("my-method", label="Mine", anytime=True)     # a plug-in: any BanditAlgorithm subclass
    class Mine(BanditAlgorithm): ...

Names are the paper's methods and baselines, exactly, in the paper's table order: random, best-base, uniform,
ucb, ucb-stddev, ttts, successive-rejects, bayes-elim, ucb-e, sequential-halving, ours, ours-sh-schedule,
ours-no-corr; then recommended (docs/statistics.md).
"""
from __future__ import annotations

import inspect
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
from raygems.bandits.schedules import OURS_SCHEDULES, OVERSPENDING_SCHEDULES
from raygems.bandits.ttts import TopTwoThompsonSampling
from raygems.registry import Registry

#: The inputs a caller hands a method that declares it accepts them, and the constructor options they fill.
INPUT_OPTIONS = {
    "needs_models_table": ("downloads", "is_base"),
    "accepts_beliefs": ("prior_alpha", "prior_beta"),
    "accepts_query_groups": ("query_groups",),
    "accepts_arm_priority": ("arm_priority",),
}


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its class, what it is, and what it accepts.

    What it is
    ----------
    label: the paper's row label.
    spends_budget: False for the reference rows (random, best-base): they ask for no evaluations, so a replay
        runs them once and tables show them once, whatever the budget.
    anytime: the method never looks at the total budget, so a run to budget B passes through exactly the states
        of shorter runs and one run is recorded at several budgets (replay.engine).
    schedules: the values of its `schedule` option ((): it has none); `default_schedule` is the one it uses
        when none is given, and `may_overspend(options)` says whether a schedule spends more than B by design.
    preset: options fixed by this registration (a registered variant of a class).
    options: every keyword option the constructor takes, with its default (read from the class once, here).

    What it accepts (each is a set of constructor options, `INPUT_OPTIONS`; the flag asks callers to fill them)
    -----------------------------------------------------------------------------------------------------------
    needs_models_table: `downloads` and `is_base` of every model (best-base).
    accepts_beliefs: per-arm Beta beliefs `prior_alpha`, `prior_beta` from a learned prior (bayes-elim, ttts).
    accepts_query_groups: the task label of every query, `query_groups` (recommended: stratified blocks).
    accepts_arm_priority: a per-arm score, `arm_priority`, that breaks ties (the elimination methods).
    """

    name: str
    cls: type[BanditAlgorithm]
    label: str
    spends_budget: bool = True
    anytime: bool = False
    schedules: tuple[str, ...] = ()
    preset: dict[str, Any] = field(default_factory=dict)
    needs_models_table: bool = False
    accepts_beliefs: bool = False
    accepts_query_groups: bool = False
    accepts_arm_priority: bool = False
    options: dict[str, Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.cls, type) and issubclass(self.cls, BanditAlgorithm)):
            raise TypeError(f"method {self.name!r}: {self.cls!r} is not a BanditAlgorithm subclass")
        object.__setattr__(self, "options", constructor_options(self.cls))
        for flag, names in INPUT_OPTIONS.items():
            missing = [n for n in names if n not in self.options]
            if getattr(self, flag) and missing:
                raise ValueError(f"method {self.name!r} declares {flag} but {self.cls.__name__} takes no "
                                 f"{', '.join(missing)}")
        unknown = sorted(set(self.preset) - set(self.options))
        if unknown:
            raise ValueError(f"method {self.name!r}: {self.cls.__name__} takes no option(s) {unknown}")
        if self.schedules and self.default_schedule not in self.schedules:
            raise ValueError(f"method {self.name!r}: default schedule {self.default_schedule!r} is not among its "
                             f"schedules {self.schedules}")

    @property
    def default_schedule(self) -> str | None:
        """The schedule used when none is given; None for methods without schedules."""
        if not self.schedules:
            return None
        return str(self.preset.get("schedule", self.options.get("schedule")))

    def accepts(self, option: str) -> bool:
        """Whether the method takes keyword option `option`."""
        return option in self.options

    def may_overspend(self, options: dict[str, Any] | None = None) -> bool:
        """Whether a run with these options may spend more than the budget B by design."""
        schedule = {**self.preset, **(options or {})}.get("schedule", self.default_schedule)
        return bool(self.schedules) and schedule in OVERSPENDING_SCHEDULES

    def correlated(self, options: dict[str, Any] | None = None) -> bool:
        """Whether survivors share their queries (one query order per repetition) with these options."""
        return bool({**self.preset, **(options or {})}.get("correlated", self.cls.correlated))

    def with_inputs(self, options: dict[str, Any] | None = None, *, downloads=None, is_base=None,
                    query_groups=None, arm_priority=None) -> dict[str, Any]:
        """`options` completed with the inputs this method declares it takes (`INPUT_OPTIONS`), from what the
        caller knows of the models and queries: every caller (replay, live search, plan) builds a method's
        options here. An input given as None is left out; one already in `options` wins."""
        known = {"downloads": downloads, "is_base": is_base, "query_groups": query_groups,
                 "arm_priority": arm_priority}
        merged = dict(options or {})
        for flag, names in INPUT_OPTIONS.items():
            for name in names:
                if getattr(self, flag) and known.get(name) is not None:
                    merged.setdefault(name, np.asarray(known[name]))
        return merged

    def make(self, num_arms: int, num_queries: int, budget_per_model: int, seeds, **options) -> BanditAlgorithm:
        return self.cls(num_arms, num_queries, budget_per_model, seeds, **{**self.preset, **options})


def constructor_options(cls: type) -> dict[str, Any]:
    """The keyword options `cls` accepts, its own and those of the classes it extends, with their defaults."""
    options: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty):
                options.setdefault(p.name, None if p.default is p.empty else p.default)
    return options


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(name: str, cls: type[BanditAlgorithm] | None = None, *, label: str | None = None, **spec):
    """Register a method: `register_method(name, cls, label=..., anytime=..., ...)` (the MethodSpec fields), or
    without `cls` a class decorator. The label defaults to the name."""
    def register(klass: type[BanditAlgorithm]) -> type[BanditAlgorithm]:
        METHODS.register(name, MethodSpec(name, klass, label or name, **spec))
        return klass

    return register if cls is None else register(cls)


_ELIMINATION = {"accepts_arm_priority": True}
register_method("random", RandomSelection, label="Random Selection", spends_budget=False)
register_method("best-base", BestBase, label="Best Base", spends_budget=False, needs_models_table=True)
register_method("uniform", Uniform, label="Uniform", **_ELIMINATION)
register_method("ucb", UCB, label="UCB", anytime=True)
register_method("ucb-stddev", UCBStdDev, label="UCB-StdDev.", anytime=True)
register_method("ttts", TopTwoThompsonSampling, label="TTTS", anytime=True, accepts_beliefs=True)
register_method("successive-rejects", SuccessiveRejects, label="Successive Rejects", **_ELIMINATION)
register_method("bayes-elim", BayesElim, label="BayesElim", accepts_beliefs=True, **_ELIMINATION)
register_method("ucb-e", UCBE, label="UCB-E")
register_method("sequential-halving", SequentialHalving, label="Sequential Halving", **_ELIMINATION)
register_method("ours", AggressiveElimination, label="Ours", schedules=OURS_SCHEDULES, **_ELIMINATION)
register_method("ours-sh-schedule", OursSHSchedule, label="Ours w. SH Scheduler", schedules=OURS_SCHEDULES,
                **_ELIMINATION)
register_method("ours-no-corr", OursNoCorrelation, label="Ours w/o Corr. Sampling", schedules=OURS_SCHEDULES,
                **_ELIMINATION)
register_method("recommended", RecommendedSearch, label="Recommended", accepts_query_groups=True)


def list_methods() -> list[str]:
    """Registered method names, in the paper's table order."""
    return METHODS.names()


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)


def make_algorithm(name: str, num_arms: int, num_queries: int, budget_per_model: int, seeds=None, *,
                   seed: int = 0, reps: int = 1, **options) -> BanditAlgorithm:
    """Create a registered algorithm. `seeds` are repetition keys; by default `repetition_keys(seed, reps)`."""
    if seeds is None:
        seeds = repetition_keys(seed, reps)
    return get_method(name).make(num_arms, num_queries, budget_per_model, np.asarray(seeds, dtype=np.uint64),
                                 **options)
