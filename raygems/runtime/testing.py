"""Test doubles for the live runtime: a replay backend that pretends to be slow and to hold broken checkpoints.

`backend="simulated-replay"` answers from a correctness matrix exactly as the replay backend does (the rows it
records say backend "replay"), and reads two test hooks from its backend settings:

* `delay_s`: seconds each batch takes, as if generating (tests kill actors, nodes and the driver mid-round);
* `warm_up_s`: seconds a model actor's warm-up takes, as if importing a backend;
* `fail`: `{model_id: [stage, reason]}`: checkpoints that fail at stage "fetch", "load" or "generate" with that
  reason, as broken uploads do.

    SearchConfig(matrix=..., backend=SIMULATED_REPLAY, backend_settings={"delay_s": 0.15, "fail": {...}})
    raygems search --matrix M --backend simulated-replay --backend-settings '{"delay_s": 0.15}'

Nothing in a real search uses it: production configuration has no test hooks.
"""
from __future__ import annotations

import time

from raygems.runtime.evaluation import SIMULATED_REPLAY, EvaluationError, MatrixEvaluator

__all__ = ["SIMULATED_REPLAY", "SimulatedMatrixEvaluator", "simulated_warm_up"]


def simulated_warm_up(settings: dict) -> None:
    """A model actor's warm-up, as if importing a backend: `warm_up_s` seconds."""
    time.sleep(float(settings.get("warm_up_s", 0.0)))


class SimulatedMatrixEvaluator(MatrixEvaluator):
    """The replay backend with simulated generation time and simulated broken checkpoints (module docstring)."""

    def _failure(self, stages: tuple[str, ...]) -> None:
        failure = self.spec.settings.get("fail", {}).get(self.model.model_id)
        if failure and failure[0] in stages:
            raise EvaluationError(*failure)

    def load(self) -> None:
        self._failure(("fetch", "load"))
        super().load()

    def evaluate(self, query_ids: list[str]) -> list[dict]:
        self._failure(("generate",))
        delay = float(self.spec.settings.get("delay_s", 0.0))
        time.sleep(delay)
        rows = super().evaluate(query_ids)
        self.last_timing = {"generate_s": delay, "score_s": 0.0}
        return rows
