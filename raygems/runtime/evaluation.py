"""Evaluating one loaded model on a batch of queries: both prompt variants, greedy generation, scoring.

An `Evaluator` is what a model actor holds. Two kinds:
* `GenerativeEvaluator`: a real checkpoint behind a generation backend (transformers, vLLM). For each query it
  renders the "system" variant (with the model's own system prompt) and the "plain" variant (without), generates
  greedily with the task's token limit and stop strings, and scores each completion with the task.
  A model without a system prompt of its own has identical variants: it is generated once and recorded twice.
* `MatrixEvaluator` (backend "replay"): answers from a recorded correctness matrix. Used by tests and by
  replays through the live runtime; it exercises everything but generation. Its test double with simulated
  generation time and broken checkpoints (backend "simulated-replay") is `raygems.runtime.testing`.

Both return result rows in the store's schema (`raygems.results.RESULT_COLUMNS`).
"""
from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from raygems.hub.types import ModelRecord
from raygems.runtime.store import settings_json
from raygems.tasks.prompting import PROMPT_VARIANTS


#: Backends that answer from a correctness matrix instead of generating: the replay backend, and its test double
#: with simulated generation time and broken checkpoints (`raygems.runtime.testing`).
REPLAY, SIMULATED_REPLAY = "replay", "simulated-replay"
MATRIX_BACKENDS = (REPLAY, SIMULATED_REPLAY)


@dataclass(frozen=True)
class EvaluatorSpec:
    """How to build an evaluator on a worker (serialisable: it travels to Ray actors).

    backend: "transformers", "vllm", or one of MATRIX_BACKENDS.
    settings: backend constructor keyword arguments (batch size, dtype, device, ...).
    tree: where checkpoints come from (a local directory or a hub id), for fetching.
    matrix: path of the correctness matrix (matrix backends only).
    """

    backend: str = "transformers"
    settings: dict[str, Any] = field(default_factory=dict)
    tree: str | None = None
    matrix: str | None = None
    allow_code_execution: bool = False     # tasks that score by running model-written code may run it
    plugins: tuple[str, ...] = ()          # modules that register methods, tasks or backends (raygems.plugins)

    def build(self, model: ModelRecord, pool) -> "Evaluator":
        """The replay backend's evaluator, a generative one, or the replay backend's test double (backend
        "simulated-replay", kept in `raygems.runtime.testing`)."""
        if self.backend == REPLAY:
            return MatrixEvaluator(model, pool, self)
        if self.backend == SIMULATED_REPLAY:
            from raygems.runtime.testing import SimulatedMatrixEvaluator

            return SimulatedMatrixEvaluator(model, pool, self)
        return GenerativeEvaluator(model, pool, self)

    def warm_up(self) -> None:
        """Import what loading will need (`Backend.warm_up`): nothing for a matrix; the test double waits its
        `warm_up_s` setting."""
        if self.backend == REPLAY:
            return
        if self.backend == SIMULATED_REPLAY:
            from raygems.runtime.testing import simulated_warm_up

            simulated_warm_up(self.settings)
            return
        from raygems.backends import BACKENDS

        BACKENDS.get(self.backend).warm_up()


class EvaluationError(Exception):
    """A model that could not be fetched, loaded or run: `stage` says which, `reason` why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason

    def __reduce__(self):
        return (type(self), (self.stage, self.reason))


class Evaluator(ABC):
    def __init__(self, model: ModelRecord, pool, spec: EvaluatorSpec):
        self.model, self.pool, self.spec = model, pool, spec
        #: The last `evaluate` call's seconds by part ("generate_s", "score_s"); empty when not measured.
        self.last_timing: dict[str, float] = {}

    @abstractmethod
    def load(self) -> None:
        """Fetch and load the checkpoint; raise EvaluationError(stage, reason) when it cannot be."""

    @abstractmethod
    def evaluate(self, query_ids: list[str]) -> list[dict]:
        """Result rows (one per query and variant); EvaluationError("generate", reason) on failure."""

    def unload(self) -> None:
        pass

    def _row(self, query_id: str, variant: str, reward: int, generation: str, prompt_tokens: int,
             completion_tokens: int, latency: float, backend: str, settings: str) -> dict:
        from raygems.tasks.registry import scoring_version

        task = self.pool.task_of(query_id)
        return {
            "model_id": self.model.model_id, "revision": self.model.revision, "query_id": query_id,
            "variant": variant, "task": task, "reward": int(reward), "scoring_version": scoring_version(task),
            "generation": generation, "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens), "latency_s": float(latency), "backend": backend,
            "backend_settings": settings, "pool_hash": self.pool.content_hash,
        }


@functools.lru_cache(maxsize=4)
def _cached_matrix(path: str):
    """A worker reads a matrix once, however many checkpoints it is assigned."""
    from raygems.replay import load_matrix

    return load_matrix(path)


class MatrixEvaluator(Evaluator):
    """The replay backend: rewards looked up in a recorded correctness matrix (both variants identical)."""

    def load(self) -> None:
        if self.spec.matrix is None:
            raise EvaluationError("load", "the replay backend needs a correctness matrix")
        matrix = _cached_matrix(str(self.spec.matrix))
        if self.model.model_id not in matrix.model_ids:
            raise EvaluationError("load", f"model {self.model.model_id!r} is not in the matrix")
        self._row_values = matrix.values[matrix.model_ids.index(self.model.model_id)]
        self._column = {q: j for j, q in enumerate(matrix.query_ids)}
        self._settings = settings_json({"backend": "replay", "matrix": str(self.spec.matrix)})

    def evaluate(self, query_ids: list[str]) -> list[dict]:
        self.last_timing = {"generate_s": 0.0, "score_s": 0.0}
        rows = []
        for q in query_ids:
            reward = int(self._row_values[self._column[q]])
            for variant in PROMPT_VARIANTS:
                rows.append(self._row(q, variant, reward, "", 0, 0, 0.0, "replay", self._settings))
        return rows


class GenerativeEvaluator(Evaluator):
    """A real checkpoint behind a generation backend."""

    backend = None   # the generation backend (`raygems.backends.Backend`) once `load` has made it

    def load(self) -> None:
        from raygems.backends import CheckpointError
        from raygems.backends.reuse import process_backend
        from raygems.tasks import get_task, model_system_prompt

        model = self.model
        if model.unreadable:   # metadata the listing could not read (raygems.hub.sources.LocalTreeSource)
            raise EvaluationError("metadata", model.unreadable)
        if model.path is None:   # the driver assigns a model once its files are on this node (raygems.runtime.fetch)
            raise EvaluationError("fetch", f"no local copy of {model.model_id} on this node")
        # one backend per worker process when it keeps state across checkpoints (the fast GPU path's
        # compiled module); a new one per checkpoint otherwise
        self.backend = process_backend(self.spec.backend, self.spec.settings)
        try:
            self.backend.load(model)
        except CheckpointError as exc:
            raise EvaluationError("load", exc.reason) from None
        self.system_prompt = model_system_prompt(self.backend.tokenizer, self.backend.generation_config)
        self._tasks = {}
        self._get_task = get_task
        self._settings = settings_json(self.backend.settings())

    def _task(self, name: str):
        if name not in self._tasks:
            from raygems.tasks.registry import task_executes_code

            options = {"allow_code_execution": self.spec.allow_code_execution} if task_executes_code(name) else {}
            self._tasks[name] = self._get_task(name, **options)
        return self._tasks[name]

    def evaluate(self, query_ids: list[str]) -> list[dict]:
        from raygems.backends import CheckpointError, GenerationRequest
        from raygems.errors import SetupError
        from raygems.tasks import render_prompt
        from raygems.tasks.sandbox import CodeExecutionDisabled, SandboxUnavailable

        queries = [self.pool.query(q) for q in query_ids]
        variants = PROMPT_VARIANTS if self.system_prompt else ("plain",)
        requests, keys = [], []
        for query in queries:
            stop = tuple(query.get("stop") or ())
            for variant in variants:
                system = self.system_prompt if variant == "system" else None
                prompt = render_prompt(self.backend.tokenizer, query["messages"], system)
                requests.append(GenerationRequest(prompt, int(query["max_new_tokens"]), stop))
                keys.append((query, variant))
        started = time.perf_counter()
        try:
            outputs = self.backend.generate(requests)
        except CheckpointError as exc:
            raise EvaluationError("generate", exc.reason) from None
        generated = time.perf_counter()
        rows = []
        for (query, variant), out in zip(keys, outputs):
            task = self._task(query["task"])
            try:
                reward = task.score(query, out.text)
            except (CodeExecutionDisabled, SandboxUnavailable) as exc:   # never recorded as a reward
                raise SetupError(str(exc)) from None
            names = PROMPT_VARIANTS if len(variants) == 1 else (variant,)  # identical variants are recorded twice
            for name in names:
                rows.append(self._row(query["query_id"], name, reward, out.text, out.prompt_tokens,
                                      out.completion_tokens, out.seconds, self.spec.backend, self._settings))
        self.last_timing = {"generate_s": generated - started, "score_s": time.perf_counter() - generated}
        return rows

    def unload(self) -> None:
        if self.backend is not None:
            self.backend.unload()

