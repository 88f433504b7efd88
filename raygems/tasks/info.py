"""What raygems knows about a benchmark besides how to run it: a task carries its own metadata.

* `description`: what the benchmark asks, in a sentence (the learned prior embeds it to place a task it has
  few records of: `raygems.prior`);
* `skill_family`: the skill a model card's evaluations must cover to document the task (math, code, arc,
  commonsense, knowledge, ...: the gem report's documentation check, `raygems.hub.cards`);
* `guess_rate`: the chance of a correct answer by guessing (1/4 with four options, 1/2 with two, 0 for a
  generated answer: the floor of the population families' item-response model, `raygems.populations.irt`).

A registered task declares them as class attributes of its `Task` (`raygems.tasks.base`). Benchmarks raygems
knows only by name (the leaderboards' tasks, names that results and matrices use) are listed in `BENCHMARKS`.
`task_info(name)` answers for either.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TaskInfo:
    description: str | None = None
    skill_family: str | None = None
    guess_rate: float | None = None


#: Benchmarks raygems cannot run but meets by name: in leaderboard records, in result tables and matrices.
BENCHMARKS: dict[str, TaskInfo] = {
    "hellaswag": TaskInfo("Commonsense sentence completion: pick the most plausible continuation of an everyday "
                          "scene.", "commonsense", 0.25),
    "truthfulqa": TaskInfo("Questions designed to elicit common misconceptions; measures whether answers are "
                           "truthful.", guess_rate=0.25),
    "ifeval": TaskInfo("Instruction following with verifiable constraints on format, length and content."),
    "bbh": TaskInfo("BIG-Bench Hard: challenging multi-step reasoning tasks such as logic, dates and tracking "
                    "objects."),
    "math_lvl5": TaskInfo("Competition mathematics problems, hardest difficulty level, exact final answer."),
    "gpqa": TaskInfo("Graduate-level, Google-proof multiple-choice questions in biology, physics and chemistry."),
    "musr": TaskInfo("Multi-step soft reasoning over long narratives: murder mysteries, object placement, team "
                     "allocation."),
    "mmlu_pro": TaskInfo("Harder, ten-option version of MMLU with reasoning-focused professional and academic "
                         "questions."),
    "math": TaskInfo(skill_family="math"),
    "humaneval": TaskInfo(skill_family="code"),
    "arc": TaskInfo(skill_family="arc"),
}


def task_info(name: str) -> TaskInfo:
    """The metadata of task `name`: its registered `Task`'s, else `BENCHMARKS`', else nothing known."""
    from raygems.tasks.registry import task_class_attribute

    declared = TaskInfo(*(task_class_attribute(name, f.name) for f in fields(TaskInfo)))
    return declared if declared != TaskInfo() else BENCHMARKS.get(name, TaskInfo())
