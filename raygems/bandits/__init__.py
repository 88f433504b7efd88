"""Fixed-budget best-arm identification for model search: every method of the paper behind one ask/tell
interface (pure numpy; no I/O, no clocks). See `base.py` for the protocol and `registry.py` for the names."""
from raygems.bandits.base import AllArmsFailed, BanditAlgorithm, Pulls, make_pulls
from raygems.bandits.randomness import QueryOrder, repetition_keys
from raygems.bandits.registry import (
    MethodSpec,
    get_method,
    list_methods,
    make_algorithm,
    register_method,
)
from raygems.bandits.schedules import (
    Round,
    aggressive_schedule,
    karnin_schedule,
    ratio_schedule,
    schedule_budget,
    successive_rejects_schedule,
    table4_literal_schedule,
)

__all__ = [
    "AllArmsFailed", "BanditAlgorithm", "MethodSpec", "Pulls", "QueryOrder", "Round", "aggressive_schedule",
    "get_method", "karnin_schedule", "list_methods", "make_algorithm", "make_pulls", "ratio_schedule",
    "register_method", "repetition_keys", "schedule_budget", "successive_rejects_schedule", "table4_literal_schedule",
]
