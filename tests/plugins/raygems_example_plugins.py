"""A plug-in module, as a user would write one: a search method, a task and a backend registered outside raygems.
tests/conftest.py puts this folder on the Ray workers' PYTHONPATH; tests name the module in `plugins`."""
from __future__ import annotations

import hashlib
import re

import numpy as np

from raygems import (Backend, BanditAlgorithm, CheckpointError, Generation, Task, make_pulls, register_backend,
                     register_method, register_task)

#: How often each model of the tiny tree answers right (the others: 0.2): the best one must be chosen.
SKILL = {"quietmath/tiny-arith-pro": 0.95, "numbersmith/tiny-arith": 0.6, "tiny-org/tiny-base": 0.1}


@register_method("plugin-uniform", label="Uniform in rounds")
class UniformInRounds(BanditAlgorithm):
    """Every arm that has not failed answers `chunk` more queries per round, the same ones for every arm (the
    next positions of one shared query order: correlated), until each has answered N; the choice is the arm
    with the best mean. (docs/bandits.md points here: a complete method.)"""

    correlated = True

    def __init__(self, *args, chunk: int = 4, **kwargs):
        super().__init__(*args, **kwargs)          # num_arms, num_queries, budget_per_model, seeds
        self.chunk = int(chunk)
        self.answered = 0                          # positions of the shared order every arm has answered

    @property
    def done(self) -> bool:
        return self.answered >= self.budget_per_model

    def ask(self):
        if self.pending is not None:               # asked and not told yet: the same request again
            return self.pending
        if self.done:
            return None
        count = min(self.chunk, self.budget_per_model - self.answered)
        rep, arm = np.nonzero(~self.failed)        # every (repetition, arm) still in
        pulls = make_pulls(rep, arm, start=np.full_like(rep, self.answered), count=np.full_like(rep, count),
                           shared=True, order=self.order)
        return self._issue(pulls)                  # kept as pending until tell()

    def _update(self, pulls, successes) -> None:   # tell() has added the answers to self.pulls, self.successes
        self.answered += int(pulls.count.max()) if len(pulls) else self.budget_per_model

    def recommend(self) -> np.ndarray:
        score = self.means + 1e-9 * self.jitter()  # seeded tie-break
        score[self.failed] = -np.inf
        return np.argmax(score, axis=1)


@register_task("plugin_sums")
class PluginSums(Task):
    """Forty sums of two numbers; the completion must be the sum."""

    name = "plugin_sums"
    max_new_tokens = 8

    def load(self) -> list[dict]:
        return [{"query_id": f"plugin_sums/{i}", "task": self.name, "source_id": str(i),
                 "messages": [{"role": "user", "content": f"What is {i} plus {2 * i}?"}], "reference": str(3 * i)}
                for i in range(40)]

    def score(self, query, completion: str) -> int:
        return int(completion.strip() == query["reference"])


@register_backend("plugin_oracle")
class OracleBackend(Backend):
    """Answers from `SKILL` instead of running weights (deterministic per model and prompt); a folder without
    config.json fails to load, as a real backend's would. Setting `crash`: every generate raises (a bug)."""

    name = "plugin_oracle"

    def __init__(self, **settings) -> None:
        self._settings = dict(settings)
        self.model = None

    def load(self, model) -> None:
        if not model.path or not (__import__("pathlib").Path(model.path) / "config.json").is_file():
            raise CheckpointError("no config.json", model.model_id)
        self.model = model

    def generate(self, requests):
        self._require_loaded(self.model)
        if self._settings.get("crash"):      # a bug in the backend, not any checkpoint's failure
            raise RuntimeError("the plug-in backend crashed")
        skill = SKILL.get(self.model.model_id, 0.2)
        answers = []
        for request in requests:
            a, b = map(int, re.search(r"What is (\d+) plus (\d+)\?", request.prompt).groups())
            draw = hashlib.sha256(f"{self.model.model_id}|{request.prompt}".encode()).digest()[0] / 256
            answers.append(Generation(text=str(a + b if draw < skill else a + b + 1), prompt_tokens=1,
                                      completion_tokens=1, seconds=0.0))
        return answers

    def unload(self) -> None:
        self.model = None

    def settings(self) -> dict:
        return {"backend": self.name, **self._settings}

    @property
    def tokenizer(self):
        return None
