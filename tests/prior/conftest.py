"""Fixtures for the prior's tests: small synthetic record sets with a known structure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

FAMILIES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen"}
SIZES = (0.5, 1.5, 3.0, 7.0, 14.0, 32.0)
TASKS = {"alpha": 1.0, "beta": 0.6, "gamma": -0.4}   # task -> how much it rewards size


def make_records(num_models: int = 240, seed: int = 0) -> pd.DataFrame:
    """Records whose score follows size, family and a per-model skill (with noise), on three tasks.

    A model's accuracy on task t: sigmoid(scale_t * log(size) + family_t + skill + noise): size matters
    differently per task, so a good prior must learn task-dependent structure. `expected_logit` is the
    part of the logit that metadata can tell (no skill, no noise): the best any metadata ranker can do.
    """
    archs = list(FAMILIES)
    world = np.random.default_rng(1234)          # the same family effects for every draw of models
    family_effect = {(a, t): world.normal(0, 0.4) for a in archs for t in TASKS}
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_models):
        arch = archs[i % len(archs)]
        size = SIZES[rng.integers(len(SIZES))]
        skill = rng.normal(0, 0.3)
        kind = ["finetuned", "chat", "merge"][rng.integers(3)]
        model_id = f"org{i % 17}/{FAMILIES[arch]}-{size:g}b-{kind}-v{i}"
        date = (pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(i * 300 / num_models))).strftime("%Y-%m-%d")
        likes = int(rng.poisson(3 + size))
        for task, scale in TASKS.items():
            expected = 0.6 * scale * np.log(size) + family_effect[(arch, task)] - 0.5   # knowable from metadata
            logit = expected + skill + rng.normal(0, 0.1)
            rows.append({"model_id": model_id, "task": task, "score": float(1 / (1 + np.exp(-logit))),
                         "expected_logit": expected,
                         "metric": "acc", "source": "synthetic", "architecture": arch, "params_b": size,
                         "type": kind, "license": "apache-2.0", "likes": likes, "date": date,
                         "base_model": None, "description": None})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def record_maker():
    """`make_records` itself, for tests that need a fresh draw of models from the same world."""
    return make_records


@pytest.fixture(scope="session")
def synthetic_records() -> pd.DataFrame:
    return make_records()


@pytest.fixture(scope="session")
def fitted_prior(synthetic_records):
    """A small prior trained once per session on the synthetic records (about 2-4 s)."""
    import torch

    from raygems.prior import ModelPrior, PriorConfig

    torch.set_num_threads(1)
    return ModelPrior(PriorConfig(steps=400, list_size=32, calibration_fraction=0.2, seed=0)).fit(synthetic_records)
