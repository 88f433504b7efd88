"""The model actor: a Ray actor that holds exactly one loaded checkpoint at a time and evaluates query batches on it.

An actor is a loaded-model slot: `assign(model)` unloads the checkpoint it holds and takes another, so the cost of
starting a worker process (and, for the fast GPU path, of compiling the decoder once per architecture) is paid once
per slot, not once per checkpoint. The checkpoint is read from local disk only (`model.path`: the driver assigns a
model once its files are on this node, see `raygems.runtime.fetch`); it loads lazily inside the first `evaluate`
after an assignment, so a broken checkpoint comes back as that call's EvaluationError.

Every batch's rows are written to the result store by the actor itself (one atomic parquet part per batch) before
the call returns, so results survive a crash of the driver. The call returns what the driver needs to go on
without reading the store back: the rewards, where the part was written, and what the batch cost (`BatchReport`).
On a multi-node cluster the store directory must be on storage every node can reach (NFS/EFS or a shared mount).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from raygems.hub.types import ModelRecord
from raygems.plugins import import_plugins
from raygems.runtime.evaluation import MATRIX_BACKENDS, EvaluatorSpec
from raygems.runtime.store import ResultStore
from raygems.tasks.prompting import PROMPT_VARIANTS


@dataclass
class BatchReport:
    """What one `evaluate` call did: rewards per query (in PROMPT_VARIANTS order, queries in the order asked), the
    store part holding the rows, and its costs (seconds, tokens; `load_s` > 0 when the checkpoint was loaded)."""

    queries: int
    rewards: list[tuple[int, ...]]
    part: str
    load_s: float
    generate_s: float
    score_s: float
    record_s: float
    prompt_tokens: int
    completion_tokens: int
    warm_up_s: float = 0.0     # the actor's warm-up imports, in its first successful report after them (else 0)


class ModelActor:
    """Plain class; `remote_model_actor()` turns it into a Ray actor class."""

    def __init__(self, spec: EvaluatorSpec, pool, store_root: str, threads: int = 1):
        os.environ["OMP_NUM_THREADS"] = str(threads)   # torch is imported later (warm_up, or the first load), not
        self.threads = threads                         # here: the driver learns the actor's node, and starts
        self.spec = spec                               # fetching there, as soon as the actor is up
        import_plugins(spec.plugins)                   # plug-in backends and tasks register themselves here too
        self.pool = pool
        self.store = ResultStore(store_root)
        self.model: ModelRecord | None = None
        self.evaluator = None
        self.loads = 0
        self.load_seconds = 0.0
        self.warm_up_s = 0.0               # reported once, with the next batch (the cost model's `warm_up_s`)
        self._threads_limited = False

    def warm_up(self) -> None:
        """Import what loading will need (`Backend.warm_up`). The driver calls it right after asking for the
        actor's node, so the imports overlap the first downloads instead of lengthening the first load. A
        failure here is only logged: the first load meets it again, as that model's failure."""
        started = time.perf_counter()
        try:
            self.spec.warm_up()
            self._limit_threads()
        except Exception as exc:  # noqa: BLE001
            logging.getLogger(__name__).warning("warm-up of backend %s failed: %s", self.spec.backend, exc)
        self.warm_up_s = time.perf_counter() - started

    def _limit_threads(self) -> None:
        """torch's threads for this actor, once (torch is imported here if warm_up did not); nothing for a
        matrix backend, which does not use torch."""
        if self._threads_limited or self.spec.backend in MATRIX_BACKENDS:
            return
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(max(1, self.threads))
        self._threads_limited = True

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def assign(self, model: ModelRecord) -> None:
        """Hold `model` from now on (the previous checkpoint is unloaded; the new one loads lazily)."""
        if self.model is not None and model.model_id == self.model.model_id and model.revision == self.model.revision:
            return
        self.unload()
        self.model = model

    def load(self) -> float:
        """Load the assigned checkpoint from local disk; EvaluationError(stage, reason) when it cannot be."""
        if self.model is None:
            raise RuntimeError("no model assigned to this actor")
        start = time.perf_counter()
        self._limit_threads()
        evaluator = self.spec.build(self.model, self.pool)
        evaluator.load()
        self.evaluator = evaluator
        seconds = time.perf_counter() - start
        self.loads += 1
        self.load_seconds += seconds
        return seconds

    def evaluate(self, query_ids: list[str]) -> BatchReport:
        """Evaluate one batch (both prompt variants), record it, and report it."""
        load_s = self.load() if self.evaluator is None else 0.0
        started = time.perf_counter()
        rows = self.evaluator.evaluate(list(query_ids))
        evaluated = time.perf_counter()
        part = self.store.put_rows(rows)
        record_s = time.perf_counter() - evaluated
        by_key = {(row["query_id"], row["variant"]): row["reward"] for row in rows}
        timing = self.evaluator.last_timing
        first = [row for row in rows if row["variant"] == PROMPT_VARIANTS[0]]   # token counts: one variant's
        warm_up_s, self.warm_up_s = self.warm_up_s, 0.0
        return BatchReport(
            queries=len(query_ids),
            rewards=[tuple(int(by_key[(q, v)]) for v in PROMPT_VARIANTS) for q in query_ids],
            part=part.name, load_s=load_s,
            generate_s=float(timing.get("generate_s", evaluated - started)), score_s=float(timing.get("score_s", 0.0)),
            record_s=record_s,
            prompt_tokens=sum(int(row["prompt_tokens"]) for row in first),
            completion_tokens=sum(int(row["completion_tokens"]) for row in first), warm_up_s=warm_up_s)

    def unload(self) -> None:
        if self.evaluator is not None:
            self.evaluator.unload()
            self.evaluator = None

    def stats(self) -> dict:
        return {"pid": os.getpid(), "loads": self.loads, "load_seconds": self.load_seconds,
                "model": None if self.model is None else self.model.model_id}


def remote_model_actor():
    import ray

    return ray.remote(max_restarts=0, max_task_retries=0)(ModelActor)
