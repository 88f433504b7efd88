from __future__ import annotations

import numpy as np
import pandas as pd

from raygems.prior.features import (MAX_NAME_TOKENS, Featurizer, base_model_tokens, family_of, name_tokens,
                                    size_bucket, task_tokens)


def test_name_tokens():
    assert name_tokens("Qwen/Qwen2.5-7B-Instruct") == ["org:qwen", "qwen2.5", "qwen", "2.5", "7b", "instruct"]
    assert name_tokens("gpt2") == ["gpt2", "gpt", "2"]
    assert len(name_tokens("o/" + "-".join(f"w{i}" for i in range(40)))) == MAX_NAME_TOKENS
    assert base_model_tokens(None) == [] and base_model_tokens(float("nan")) == []
    assert base_model_tokens("meta-llama/Llama-3.1-8B")[0] == "id:meta-llama/llama-3.1-8b"


def test_family_size_and_task_tokens():
    assert family_of("Qwen2ForCausalLM") == "qwen2"
    assert family_of("GPT2LMHeadModel") == "gpt2"
    assert family_of("Qwen2Model") == "qwen2"
    assert family_of("?") is None and family_of(None) is None
    assert size_bucket(None) == 0 and size_bucket(float("nan")) == 0 and size_bucket(0) == 0
    assert size_bucket(0.35) < size_bucket(1.5) < size_bucket(7) < size_bucket(70) < size_bucket(400)
    assert size_bucket(7) == size_bucket(8.03)
    assert task_tokens("mmlu_pro", "acc_5shot") == ["task:mmlu", "task:pro", "metric:acc", "metric:5shot"]


def test_unknown_values_map_to_zero(synthetic_records):
    models = synthetic_records.drop_duplicates("model_id")
    featurizer = Featurizer.fit(models, [("alpha", "acc")])
    unseen = pd.DataFrame([{"model_id": "neworg/brand-new-thing", "architecture": "FalconForCausalLM",
                            "params_b": None, "type": None, "license": None, "likes": None, "date": "2030-01-01",
                            "base_model": None, "description": None}])
    encoded = featurizer.encode_models(unseen)
    assert encoded.model_id[0] == 0 and encoded.family[0] == 0 and encoded.size[0] == 0
    assert (encoded.name_tokens == 0).all()
    # dates beyond the training range are clipped, not extrapolated
    latest = models.sort_values("date").tail(1)
    assert np.allclose(encoded.numeric[0, 2], featurizer.encode_models(latest).numeric[0, 2])
    seen = featurizer.encode_models(models.head(2))
    assert (seen.model_id > 0).all() and (seen.family > 0).all()
    contexts = featurizer.encode_contexts([("alpha", "acc"), ("unknown_task", "acc")])
    assert contexts.task_id.tolist()[1] == 0 and contexts.metric.tolist() == [1, 1]


def test_featurizer_round_trips_through_a_dict(synthetic_records):
    models = synthetic_records.drop_duplicates("model_id")
    featurizer = Featurizer.fit(models, [("alpha", "acc"), ("beta", "acc")])
    again = Featurizer.from_dict(featurizer.to_dict())
    a, b = featurizer.encode_models(models), again.encode_models(models)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("model_id", "name_tokens", "family", "numeric"))


def test_fitting_on_records_without_numeric_metadata_gives_no_warnings(synthetic_records):
    """Records with only model_id, task and score leave the numeric columns empty: no numpy RuntimeWarnings
    (mean of empty slice, all-NaN slice), and the same statistics as numpy's nan-functions give."""
    import warnings

    from raygems.prior.features import _nan_column_stats, _raw_numeric
    from raygems.prior.records import model_table

    bare = model_table(synthetic_records[["model_id", "task", "score"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        featurizer = Featurizer.fit(bare, [("alpha", "acc")])
    assert featurizer.numeric_mean == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert featurizer.numeric_std == [1.0] * 6
    full = _raw_numeric(model_table(synthetic_records))
    mixed = full.copy()
    mixed[:, 2] = np.nan
    for values in (full, mixed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = [np.nanmean(values, axis=0), np.nanstd(values, axis=0), np.nanmin(values, axis=0),
                        np.nanmax(values, axis=0)]
        for got, want in zip(_nan_column_stats(values), expected):
            np.testing.assert_array_equal(got, want)   # bit for bit
