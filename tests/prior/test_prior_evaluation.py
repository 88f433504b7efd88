from __future__ import annotations

import pandas as pd
import pytest

from raygems.prior import PriorConfig
from raygems.prior.evaluation import (GradientBoostingRanker, LikesRanker, ModelLensRanker, ModelMeanRanker,
                                      ParamsRanker, RandomRanker, completion_split, evaluate_rankers, summarise,
                                      task_split, temporal_split)


def test_completion_split_masks_a_share_of_entries(synthetic_records):
    train, test = completion_split(synthetic_records, test_fraction=0.25, seed=1)
    assert len(train) + len(test) == len(synthetic_records)
    assert 0.18 < len(test) / len(synthetic_records) < 0.32
    assert not set(zip(train["model_id"], train["task"])) & set(zip(test["model_id"], test["task"]))
    # most test models still have other entries in training (that is what completion means)
    assert test["model_id"].isin(train["model_id"]).mean() > 0.8
    with pytest.raises(ValueError, match="test_fraction"):
        completion_split(synthetic_records, test_fraction=1.0)


def test_temporal_split_holds_out_the_newest_models_per_source(synthetic_records):
    other = synthetic_records.assign(source="other", model_id="b/" + synthetic_records["model_id"],
                                     date=pd.to_datetime(synthetic_records["date"]) + pd.Timedelta(days=900))
    records = pd.concat([synthetic_records, other], ignore_index=True)
    train, test = temporal_split(records, test_fraction=0.2)
    assert not set(train["model_id"]) & set(test["model_id"])
    for source in ("synthetic", "other"):   # each source contributes its own newest models
        tr, te = train[train["source"] == source], test[test["source"] == source]
        assert te["date"].min() >= tr["date"].max()
        assert 0.15 < te["model_id"].nunique() / records[records["source"] == source]["model_id"].nunique() < 0.3


def test_task_split(synthetic_records):
    train, test = task_split(synthetic_records, "beta")
    assert set(test["task"]) == {"beta"} and "beta" not in set(train["task"])
    with pytest.raises(ValueError, match="no records"):
        task_split(synthetic_records, "nope")


def test_evaluate_rankers_on_a_temporal_split(synthetic_records):
    train, test = temporal_split(synthetic_records, test_fraction=0.3)
    rankers = [ModelLensRanker(PriorConfig(steps=150, list_size=32, calibration_fraction=0.0)),
               GradientBoostingRanker(max_iter=50), ModelMeanRanker(), LikesRanker(), ParamsRanker(), RandomRanker()]
    results = evaluate_rankers(train, test, rankers, split="temporal")
    assert set(results["method"]) == {"modellens", "gbm", "model_mean", "likes", "params", "random"}
    assert set(results["task"]) == {"alpha", "beta", "gamma"}
    assert results[["wtau", "ndcg@10", "recall@10"]].apply(lambda c: c.between(-1, 1)).all().all()
    table = summarise(results)
    # size drives alpha: the parameter count ranks it well, and a learned ranker does too
    alpha = results[results["task"] == "alpha"].set_index("method")
    assert alpha.loc["params", "wtau"] > 0.5 and alpha.loc["modellens", "wtau"] > 0.5
    assert table.loc[("temporal", "modellens"), "wtau"] > table.loc[("temporal", "random"), "wtau"]
    # unseen models: the collaborative baseline has no opinion (constant scores -> tau 0)
    assert (results[results["method"] == "model_mean"]["wtau"] == 0).all()
