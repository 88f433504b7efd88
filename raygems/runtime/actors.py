"""The model actor: a Ray actor that holds exactly one loaded checkpoint at a time and evaluates query
batches on it.

An actor is a loaded-model slot: `assign(model)` unloads the checkpoint it holds and takes another, so the
cost of starting a worker process (and, for the fast GPU path, of compiling the decoder once per
architecture) is paid once per slot, not once per checkpoint. The checkpoint loads lazily inside the first
`evaluate` after an assignment, so a broken checkpoint comes back as that call's EvaluationError.

Every batch's rows are written to the result store by the actor itself (an atomic parquet part per batch)
before the call returns, so results survive a crash of the driver. On a multi-node cluster the store
directory must be on storage every node can reach (NFS/EFS or a shared mount); see docs/runtime.md.
"""
from __future__ import annotations

import os
import time

from raygems.hub.types import ModelRecord
from raygems.runtime.evaluation import EvaluatorSpec
from raygems.runtime.store import ResultStore


class ModelActor:
    """Plain class; `remote_model_actor()` turns it into a Ray actor class."""

    def __init__(self, spec: EvaluatorSpec, pool, store_root: str, threads: int = 1):
        self._limit_threads(threads)
        self.spec = spec
        self.pool = pool
        self.store = ResultStore(store_root)
        self.model: ModelRecord | None = None
        self.evaluator = None
        self.loads = 0
        self.load_seconds = 0.0

    @staticmethod
    def _limit_threads(threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:  # the replay backend needs no torch
            pass

    def pid(self) -> int:
        return os.getpid()

    def assign(self, model: ModelRecord) -> None:
        """Hold `model` from now on (the previous checkpoint is unloaded; the new one loads lazily)."""
        if self.model is not None and model.model_id == self.model.model_id and model.revision == self.model.revision:
            return
        self.unload()
        self.model = model

    def load(self) -> float:
        """Fetch and load the assigned checkpoint; EvaluationError(stage, reason) when it cannot be."""
        if self.model is None:
            raise RuntimeError("no model assigned to this actor")
        start = time.perf_counter()
        evaluator = self.spec.build(self.model, self.pool)
        evaluator.load()
        self.evaluator = evaluator
        self.loads += 1
        self.load_seconds += time.perf_counter() - start
        return time.perf_counter() - start

    def evaluate(self, query_ids: list[str]) -> int:
        """Evaluate one batch (both prompt variants), record it, return the number of queries evaluated."""
        if self.evaluator is None:
            self.load()
        rows = self.evaluator.evaluate(list(query_ids))
        self.store.put(rows)
        return len(query_ids)

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
