from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from raygems.prior import ModelPrior, PriorConfig


def _candidates(records: pd.DataFrame) -> pd.DataFrame:
    return (records.drop_duplicates("model_id").drop(columns=["task", "score", "metric", "source", "expected_logit"])
            .reset_index(drop=True))


def test_config_validation():
    with pytest.raises(ValueError, match="list_size"):
        PriorConfig(list_size=1)
    with pytest.raises(ValueError, match="id_dropout_model"):
        PriorConfig(id_dropout_model=1.0)
    with pytest.raises(ValueError, match="loss weight"):
        PriorConfig(pairwise_weight=0, listwise_weight=0, pointwise_weight=0)
    with pytest.raises(TypeError):
        ModelPrior(config={"steps": 3})
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        PriorConfig(seed=-1)


def test_unfitted_prior_refuses_to_rank(synthetic_records):
    with pytest.raises(RuntimeError, match="not fitted"):
        ModelPrior().rank(_candidates(synthetic_records), "alpha")


def test_fit_needs_a_ranking_group():
    with pytest.raises(ValueError, match="two or more models"):
        ModelPrior(PriorConfig(steps=5)).fit(pd.DataFrame({"model_id": ["a", "b"], "task": ["t", "u"], "score": [1, 0]}))


def test_ranks_unseen_models_by_their_metadata(fitted_prior, record_maker):
    """Models from a fresh draw (new ids, never trained on) are ranked well from name, size and family."""
    fresh = record_maker(num_models=90, seed=7)
    fresh["model_id"] = fresh["model_id"].str.replace("org", "neworg", regex=False)
    for task in ("alpha", "beta", "gamma"):
        group = fresh[fresh["task"] == task].reset_index(drop=True)
        scores = fitted_prior.scores(group, task)
        oracle = spearmanr(group["expected_logit"], group["score"]).statistic   # metadata-only ceiling
        assert spearmanr(scores, group["score"]).statistic > oracle - 0.1, task
    # size helps on alpha and hurts on gamma: the prior learned task-dependent structure
    big = fresh.assign(params_b=32.0).drop_duplicates("model_id").head(20)
    small = big.assign(params_b=0.5)
    assert (fitted_prior.scores(big, "alpha") > fitted_prior.scores(small, "alpha")).mean() > 0.9
    assert (fitted_prior.scores(big, "gamma") < fitted_prior.scores(small, "gamma")).mean() > 0.9


def test_rank_prune_and_scores_agree(fitted_prior, synthetic_records):
    candidates = _candidates(synthetic_records).head(50)
    ranked = fitted_prior.rank(candidates, "beta")
    assert list(ranked.columns) == ["model_id", "score", "predicted_score"]
    assert ranked["score"].is_monotonic_decreasing
    assert sorted(ranked["model_id"]) == sorted(candidates["model_id"])
    kept = fitted_prior.prune(candidates, "beta", keep=0.3)
    assert len(kept) == 15
    assert kept["model_id"].tolist() == ranked["model_id"].head(15).tolist()
    assert set(candidates.columns) <= set(kept.columns)          # the candidates' own columns survive
    assert len(fitted_prior.prune(candidates.head(3), "beta", keep=0.01)) == 1
    for keep in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match="keep"):
            fitted_prior.prune(candidates, "beta", keep=keep)
    scores = fitted_prior.scores(candidates, "beta")            # input order
    assert dict(zip(candidates["model_id"], scores)) == pytest.approx(dict(zip(ranked["model_id"], ranked["score"])))


def test_candidates_may_lack_metadata_or_be_a_tree_table(fitted_prior):
    bare = pd.DataFrame({"model_id": ["x/llama-7b-chat", "y/qwen-0.5b-chat"]})
    assert len(fitted_prior.rank(bare, "alpha")) == 2
    tree = pd.DataFrame({"model_id": ["x/a"], "kind": ["merge"], "created_at": ["2024-05-01T00:00:00Z"],
                         "likes": [3], "base_model": ["x/root"], "depth": [1]})
    assert len(fitted_prior.rank(tree, "alpha")) == 1
    with pytest.raises(ValueError, match="model_id"):
        fitted_prior.rank(pd.DataFrame({"name": ["x"]}), "alpha")


def test_beliefs_are_calibrated_beta_priors(fitted_prior, synthetic_records):
    candidates = _candidates(synthetic_records).head(40)
    alpha0, beta0 = fitted_prior.beliefs(candidates, "alpha", strength=1.0)
    assert alpha0.shape == beta0.shape == (40,)
    assert (alpha0 >= 1).all() and (beta0 >= 1).all()
    mean = alpha0 / (alpha0 + beta0)
    scores = fitted_prior.scores(candidates, "alpha")
    assert spearmanr(mean, scores).statistic > 0.99                   # monotone in the ranking score
    truth = synthetic_records[synthetic_records["task"] == "alpha"].set_index("model_id").loc[candidates["model_id"], "score"]
    assert np.abs(mean - truth.to_numpy()).mean() < 0.1                # on the 0-1 accuracy scale
    calibration = fitted_prior.calibration_for("alpha")
    assert not calibration.pooled and calibration.num_records >= 20 and 0 < calibration.sigma < 0.2
    # the concentration follows from sigma: kappa = p(1-p)/sigma^2 - 1
    p = np.clip(calibration.intercept + calibration.slope * scores, 0.005, 0.995)
    kappa = p * (1 - p) / calibration.sigma ** 2 - 1
    assert alpha0 + beta0 - 2 == pytest.approx(np.clip(kappa, 0, None), rel=1e-6)
    none_a, none_b = fitted_prior.beliefs(candidates, "alpha", strength=0.0)
    assert (none_a == 1).all() and (none_b == 1).all()
    double_a, _ = fitted_prior.beliefs(candidates, "alpha", strength=2.0)
    assert double_a - 1 == pytest.approx(2 * (alpha0 - 1))
    with pytest.raises(ValueError, match="strength"):
        fitted_prior.beliefs(candidates, "alpha", strength=-1)


def test_unknown_task_ranks_but_needs_a_scale_for_beliefs(fitted_prior, synthetic_records):
    candidates = _candidates(synthetic_records).head(10)
    assert len(fitted_prior.rank(candidates, "delta")) == 10
    with pytest.raises(ValueError, match="not in the prior's training records"):
        fitted_prior.beliefs(candidates, "delta")
    alpha0, beta0 = fitted_prior.beliefs(candidates, "delta", scale=(0.4, 0.1))
    assert 0.2 < float(np.mean(alpha0 / (alpha0 + beta0))) < 0.6


def test_save_and_load_reproduce_the_ranking(fitted_prior, synthetic_records, tmp_path):
    candidates = _candidates(synthetic_records)
    fitted_prior.save(tmp_path / "prior")
    loaded = ModelPrior.load(tmp_path / "prior")
    assert loaded.contexts == fitted_prior.contexts
    assert loaded.scores(candidates, "gamma") == pytest.approx(fitted_prior.scores(candidates, "gamma"), abs=1e-5)
    a1, b1 = loaded.beliefs(candidates, "gamma")
    a2, b2 = fitted_prior.beliefs(candidates, "gamma")
    assert a1 == pytest.approx(a2, rel=1e-4) and b1 == pytest.approx(b2, rel=1e-4)
    with pytest.raises(FileNotFoundError):
        ModelPrior.load(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a raygems model prior"):
        ModelPrior.load(tmp_path / "other")


def test_training_is_seeded(synthetic_records):
    small = synthetic_records[synthetic_records["model_id"].isin(synthetic_records["model_id"].unique()[:60])]
    config = PriorConfig(steps=30, list_size=16, seed=3, calibration_fraction=0.0)
    first = ModelPrior(config).fit(small).scores(_candidates(small), "alpha")
    second = ModelPrior(config).fit(small).scores(_candidates(small), "alpha")
    assert first == pytest.approx(second)


def test_tiny_data_calibrates_on_training_models(record_maker):
    records = record_maker(num_models=12, seed=1)
    prior = ModelPrior(PriorConfig(steps=20, list_size=8, calibration_fraction=0.0)).fit(records)
    calibration = prior.calibration_for("alpha")
    assert calibration.pooled and math.isfinite(calibration.sigma)
    alpha0, beta0 = prior.beliefs(_candidates(records), "alpha")
    assert np.isfinite(alpha0).all() and np.isfinite(beta0).all()
