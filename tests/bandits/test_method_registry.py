"""The method registry: each method described once by its MethodSpec, which everything else reads."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.bandits import BanditAlgorithm, MethodSpec, get_method, list_methods, register_method
from raygems.bandits.elimination import EliminationAlgorithm
from raygems.bandits.registry import METHODS
from raygems.bandits.reference import RandomSelection
from raygems.replay import CorrectnessMatrix, replay, replay_budgets

PAPER_ORDER = ["random", "best-base", "uniform", "ucb", "ucb-stddev", "ttts", "successive-rejects", "bayes-elim",
               "ucb-e", "sequential-halving", "ours", "ours-sh-schedule", "ours-no-corr", "recommended"]


@pytest.fixture
def isolated_methods(monkeypatch):
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))


def test_methods_are_listed_in_the_papers_order():
    assert list_methods() == PAPER_ORDER


def test_what_each_method_is():
    def having(flag):
        return [m for m in PAPER_ORDER if getattr(get_method(m), flag)]

    assert [m for m in PAPER_ORDER if not get_method(m).spends_budget] == ["random", "best-base"]
    assert having("anytime") == ["ucb", "ucb-stddev", "ttts"]
    assert having("needs_models_table") == ["best-base"]
    assert having("accepts_beliefs") == ["ttts", "bayes-elim"]
    assert having("accepts_query_groups") == ["recommended"]
    # the elimination family breaks ties by a prior's priority: exactly the classes that take the option
    assert having("accepts_arm_priority") == [m for m in PAPER_ORDER
                                              if issubclass(get_method(m).cls, EliminationAlgorithm)]
    assert having("schedules") == ["ours", "ours-sh-schedule", "ours-no-corr"]
    assert [get_method(m).default_schedule for m in having("schedules")] == ["rule_a", "karnin", "rule_a"]
    assert get_method("ucb").default_schedule is None
    assert get_method("ours").correlated() and not get_method("ours").correlated({"correlated": False})
    assert get_method("recommended").correlated() and not get_method("ours-no-corr").correlated()


def test_options_are_read_from_the_constructor_with_their_defaults():
    ours = get_method("ours").options
    assert ours["schedule"] == "rule_a" and ours["first_round_fraction"] == 0.6 and ours["arm_priority"] is None
    assert get_method("ours-sh-schedule").options["schedule"] == "karnin"      # the subclass's default wins
    assert get_method("ttts").accepts("mc_samples") and not get_method("ttts").accepts("arm_priority")
    assert get_method("random").options == {}


def test_only_the_literal_table4_schedule_may_overspend():
    ours = get_method("ours")
    assert ours.may_overspend({"schedule": "table4_literal"})
    assert not ours.may_overspend() and not ours.may_overspend({"schedule": "karnin"})
    assert not get_method("uniform").may_overspend({"schedule": "table4_literal"})   # it has no schedules
    matrix = CorrectnessMatrix((np.random.default_rng(0).random((40, 200)) < 0.5).astype(np.uint8),
                               tuple(f"m{i}" for i in range(40)), tuple(f"q{j}" for j in range(200)))
    result = replay(matrix, "ours", 10, reps=3, options={"schedule": "table4_literal"})
    assert result.summary()["budget_fraction"] > 1.0        # overspends on a small tree, and the replay allows it


def test_a_declaration_must_match_the_constructor():
    with pytest.raises(ValueError, match="declares accepts_beliefs but RandomSelection takes no prior_alpha"):
        MethodSpec("x", RandomSelection, "X", accepts_beliefs=True)
    with pytest.raises(ValueError, match="takes no option"):
        MethodSpec("x", RandomSelection, "X", preset={"c": 2.0})
    with pytest.raises(TypeError, match="not a BanditAlgorithm"):
        MethodSpec("x", dict, "X")


def test_a_plug_in_registered_with_the_decorator_runs_in_replays(isolated_methods):
    @register_method("always-first", label="Always first", spends_budget=False)
    class AlwaysFirst(RandomSelection):
        def __init__(self, *args, favourite: int = 0, **kwargs):
            super().__init__(*args, **kwargs)
            self.favourite = favourite

        def recommend(self):
            return np.full(self.reps, self.favourite)

    assert issubclass(AlwaysFirst, BanditAlgorithm) and list_methods()[-1] == "always-first"
    spec = get_method("always-first")
    assert spec.label == "Always first" and spec.accepts("favourite")
    matrix = CorrectnessMatrix(np.eye(4, 6, dtype=np.uint8), tuple("abcd"), tuple("uvwxyz"))
    results = replay_budgets(matrix, "always-first", [1], reps=3, options={"favourite": 2})
    assert results[0].per_rep["arm"].tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="method 'always-first' is already registered"):
        register_method("always-first", RandomSelection)


def test_unknown_methods_name_the_known_ones():
    with pytest.raises(ValueError, match="unknown method 'oracle'; known methods: random, best-base, uniform"):
        get_method("oracle")
