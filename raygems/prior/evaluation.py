"""The paper's evaluation: three splits, per-task ranking metrics, and baselines on the same splits.

Splits (each returns `(train_records, test_records)`):
* `completion_split`: performance completion: a random share of the (model, task) entries is masked;
  the test ranks, per task, the models whose entry was masked (most of them have other, seen entries).
* `temporal_split`: unseen models: within each source (leaderboard snapshot), the newest models by date
  are test models; every record of a test model leaves the training set (no id, no other task).
* `task_split`: unseen task: one task is held out entirely; every model is ranked on it.

Rankers share one interface (`fit(train_records)`, `score(candidates, task, metric) -> array`):
ModelLens (the prior), likes (popularity), parameter count, random, a gradient-boosting regressor on the
same metadata features, and the model's mean z-score over its other seen tasks (collaborative
baseline; no opinion on unseen models, which it ranks last).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from raygems.prior.features import Featurizer, size_bucket
from raygems.prior.metrics import ranking_metrics
from raygems.prior.model_prior import ModelPrior, PriorConfig
from raygems.prior.records import METADATA_COLUMNS, aggregate_duplicates, model_table, validate_records

#: Groups with fewer test models than this are not scored (Recall@10 needs a field to choose from).
MIN_TEST_MODELS = 20


# ------------------------------------------------------------------------------------------- splits
def completion_split(records: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mask a random `test_fraction` of the (model, task, metric) entries."""
    _check_fraction(test_fraction)
    records = aggregate_duplicates(validate_records(records))
    rng = np.random.default_rng(seed)
    test = rng.random(len(records)) < test_fraction
    return records[~test].reset_index(drop=True), records[test].reset_index(drop=True)


def temporal_split(records: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest `test_fraction` of each source's dated models become unseen test models."""
    _check_fraction(test_fraction)
    records = aggregate_duplicates(validate_records(records))
    dates = pd.to_datetime(records["date"], errors="coerce", utc=True)
    sources = records["source"].fillna("?")
    test_models: set[str] = set()
    for source in sources.unique():
        in_source = (sources == source) & dates.notna()
        first_date = dates[in_source].groupby(records.loc[in_source, "model_id"]).min()
        if len(first_date) < 2:
            continue
        cutoff = first_date.quantile(1 - test_fraction)
        test_models |= set(first_date.index[first_date >= cutoff])
    test = records["model_id"].isin(test_models)
    return records[~test].reset_index(drop=True), records[test].reset_index(drop=True)


def task_split(records: pd.DataFrame, task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out every record of `task`."""
    records = aggregate_duplicates(validate_records(records))
    held = records["task"] == task
    if not held.any():
        raise ValueError(f"task {task!r} has no records; tasks: {sorted(records['task'].unique())}")
    return records[~held].reset_index(drop=True), records[held].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ rankers
class Ranker:
    """Scores candidates for an evaluation group; higher = better."""

    name = "ranker"

    def fit(self, train: pd.DataFrame) -> "Ranker":
        return self

    def score(self, candidates: pd.DataFrame, task: str, metric: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


@dataclass
class ModelLensRanker(Ranker):
    config: PriorConfig = field(default_factory=lambda: PriorConfig(calibration_fraction=0.0))
    name: str = "modellens"

    def fit(self, train: pd.DataFrame) -> "ModelLensRanker":
        self.prior = ModelPrior(self.config).fit(train)
        return self

    def score(self, candidates, task, metric):
        return self.prior.scores(candidates, task, metric)


class LikesRanker(Ranker):
    name = "likes"

    def score(self, candidates, task, metric):
        return pd.to_numeric(candidates["likes"], errors="coerce").fillna(-1).to_numpy(dtype=float)


class ParamsRanker(Ranker):
    name = "params"

    def score(self, candidates, task, metric):
        return pd.to_numeric(candidates["params_b"], errors="coerce").fillna(-1).to_numpy(dtype=float)


@dataclass
class RandomRanker(Ranker):
    seed: int = 0
    name: str = "random"

    def score(self, candidates, task, metric):
        return np.random.default_rng(self.seed).random(len(candidates))


class ModelMeanRanker(Ranker):
    """The model's mean z-score over its training records (other tasks or other masked entries)."""

    name = "model_mean"

    def fit(self, train):
        stats = train.groupby(["task", "metric"])["score"].agg(["mean", "std"])
        z = (train["score"] - stats["mean"].reindex(list(zip(train["task"], train["metric"]))).to_numpy()) / \
            stats["std"].replace(0, 1).fillna(1).reindex(list(zip(train["task"], train["metric"]))).to_numpy()
        self.mean_z = z.groupby(train["model_id"]).mean()
        return self

    def score(self, candidates, task, metric):
        return candidates["model_id"].map(self.mean_z).to_numpy(dtype=float)   # NaN (unseen) ranks last


@dataclass
class GradientBoostingRanker(Ranker):
    """sklearn HistGradientBoostingRegressor on the prior's metadata features, predicting within-task z.

    Features: size bucket, family, type, licence, task and metric (categorical), log likes, date, log
    params, and indicators of the most frequent name tokens.
    """

    num_name_tokens: int = 128
    max_iter: int = 300
    seed: int = 0
    name: str = "gbm"

    def fit(self, train):
        from sklearn.ensemble import HistGradientBoostingRegressor

        from raygems.prior.features import name_tokens

        models = model_table(train)
        contexts = sorted(set(zip(train["task"], train["metric"])))
        self.featurizer = Featurizer.fit(models, contexts)
        counts = pd.Series([t for m in models["model_id"] for t in name_tokens(m)]).value_counts()
        self.tokens = list(counts.index[: self.num_name_tokens])
        stats = train.groupby(["task", "metric"])["score"].agg(["mean", "std"])
        keys = list(zip(train["task"], train["metric"]))
        z = (train["score"].to_numpy() - stats["mean"].reindex(keys).to_numpy()) / \
            stats["std"].replace(0, 1).fillna(1).reindex(keys).to_numpy()
        table = model_table(train).set_index("model_id").loc[train["model_id"]].reset_index()
        x = self._features(table, train["task"].tolist(), train["metric"].tolist())
        self.model = HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=0.1,
                                                   categorical_features=list(range(6)), random_state=self.seed)
        self.model.fit(x, z)
        return self

    def score(self, candidates, task, metric):
        n = len(candidates)
        return self.model.predict(self._features(candidates, [task] * n, [metric] * n))

    def _features(self, models: pd.DataFrame, tasks: list[str], metrics: list[str]) -> np.ndarray:
        from raygems.prior.features import family_of, name_tokens

        f = self.featurizer
        cats = np.column_stack([
            np.fromiter((size_bucket(p) for p in models["params_b"]), dtype=float, count=len(models)),
            f.families.indices(family_of(a) for a in models["architecture"]),
            f.types.indices(None if pd.isna(v) else str(v) for v in models["type"]),
            f.licenses.indices(None if pd.isna(v) else str(v).lower() for v in models["license"]),
            f.tasks.indices(tasks), f.metrics.indices(metrics),
        ]).astype(float)
        cats = np.where(cats > 250, 0, cats)       # HistGradientBoosting takes at most 255 categories
        cats[cats == 0] = np.nan                    # unknown -> missing
        likes = np.log1p(pd.to_numeric(models["likes"], errors="coerce").to_numpy(dtype=float))
        years = (pd.to_datetime(models["date"], errors="coerce", utc=True) - pd.Timestamp("2023-01-01", tz="UTC"))
        years = (years.dt.days / 365.25).to_numpy(dtype=float, na_value=np.nan)
        params = pd.to_numeric(models["params_b"], errors="coerce").to_numpy(dtype=float)
        log_params = np.log(np.where(params > 0, params, np.nan))
        index = {t: i for i, t in enumerate(self.tokens)}
        bag = np.zeros((len(models), len(self.tokens)))
        for row, model_id in enumerate(models["model_id"]):
            for token in name_tokens(model_id):
                if token in index:
                    bag[row, index[token]] = 1.0
        return np.column_stack([cats, likes, years, log_params, bag])


def default_rankers(config: PriorConfig | None = None, seed: int = 0) -> list[Ranker]:
    config = config or PriorConfig(calibration_fraction=0.0, seed=seed)
    return [ModelLensRanker(config), GradientBoostingRanker(seed=seed), ModelMeanRanker(), LikesRanker(),
            ParamsRanker(), RandomRanker(seed=seed)]


# --------------------------------------------------------------------------------------- evaluation
def evaluate_rankers(train: pd.DataFrame, test: pd.DataFrame, rankers: Sequence[Ranker], *, split: str,
                     k: int = 10, min_test_models: int = MIN_TEST_MODELS, shuffle_seed: int = 0,
                     log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Fit every ranker on `train`, then score each test group (task, metric) with enough models.

    Returns one row per (split, task, metric, method): wtau, ndcg@k, recall@k, n_models, fit_seconds.
    Test models are shuffled before scoring so that ties in a ranker's scores are broken at random.
    """
    rows = []
    for ranker in rankers:
        start = time.perf_counter()
        ranker.fit(train)
        fit_seconds = time.perf_counter() - start
        if log:
            log(f"{split}: fitted {ranker.name} in {fit_seconds:.1f} s")
        for (task, metric), group in test.groupby(["task", "metric"]):
            if group["model_id"].nunique() < min_test_models:
                continue
            # Shuffle: the snapshots list models best first, and a ranker's ties must not inherit that order.
            group = group.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
            candidates = group[["model_id", *METADATA_COLUMNS]]
            predicted = np.asarray(ranker.score(candidates, task, metric), dtype=float)
            metrics = ranking_metrics(group["score"].to_numpy(dtype=float), predicted, k)
            rows.append({"split": split, "task": task, "metric": metric, "method": ranker.name, **metrics,
                         "n_models": len(group), "fit_seconds": round(fit_seconds, 1)})
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over tasks, per split and method (methods as columns)."""
    metric_columns = [c for c in results.columns if c in {"wtau"} or c.startswith(("ndcg@", "recall@"))]
    return results.groupby(["split", "method"])[metric_columns].mean().round(3)


def _check_fraction(value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {value!r}")
