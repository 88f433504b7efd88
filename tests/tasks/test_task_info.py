"""A task carries its own metadata (description, skill family, guessing rate); the prior, the model-card check and
the population families read it from there."""
from __future__ import annotations

from raygems.tasks.info import BENCHMARKS, TaskInfo, task_info
from raygems.tasks.registry import get_task


def test_the_runnable_benchmarks_declare_their_metadata_on_the_task():
    expected = {"arc_challenge": ("arc", 0.25), "winogrande": ("commonsense", 0.5), "mmlu": ("knowledge", 0.25),
                "gsm8k": ("math", 0.0), "mbpp": ("code", 0.0)}
    for name, (family, guess) in expected.items():
        task = type(get_task(name))
        assert (task.skill_family, task.guess_rate) == (family, guess)
        assert task_info(name) == TaskInfo(task.description, family, guess) and task.description.endswith(".")
        assert name not in BENCHMARKS                                        # declared once: on the task
    assert task_info("toy_choice").guess_rate == 0.25 and task_info("toy_choice").skill_family is None
    assert task_info("hellaswag") == BENCHMARKS["hellaswag"]                 # known by name only
    assert task_info("no_such_task") == TaskInfo()


def test_the_prior_the_cards_and_the_populations_read_it():
    from raygems.hub.cards import DOC_IRRELEVANT, DOC_RELEVANT, parse_model_card
    from raygems.populations.irt import GUESS_FLOOR

    assert GUESS_FLOOR["winogrande"] == task_info("winogrande").guess_rate == 0.5
    assert GUESS_FLOOR["hellaswag"] == task_info("hellaswag").guess_rate
    card = parse_model_card("| Benchmark | Score |\n|---|---|\n| HumanEval | 40.1 |\n", "u/coder")
    assert card.documentation_for("mbpp") == DOC_RELEVANT                     # mbpp's family is code
    assert card.documentation_for("ARC-Challenge") == DOC_IRRELEVANT          # arc_challenge's is arc
