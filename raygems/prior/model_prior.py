"""`ModelPrior`: fit the ModelLens network on evaluation records, then rank, prune and seed a bandit.

    prior = ModelPrior(PriorConfig(steps=2000)).fit(records)
    prior.rank(candidates, task="gsm8k")            # model_id, score, predicted_score; best first
    prior.prune(candidates, task="gsm8k", keep=0.5) # the better half of the candidates, best first
    alpha0, beta0 = prior.beliefs(candidates, task="gsm8k", strength=1.0)   # Beta priors, input order

Calibration (how a ranking score becomes a belief about accuracy): a share of the models
(`calibration_fraction`, default 10%) is held out of training entirely. After training, the held-out
models' records are scored as unseen models, and per evaluation group (task, metric) a least-squares line
maps ranking score -> observed score (the 0-1 accuracy scale); the residual standard deviation sigma of
that line is the prior's typical error for a model it has never seen. `beliefs` then moment-matches a Beta
to (predicted accuracy p, sigma): concentration kappa = p(1-p)/sigma^2 - 1, so alpha0 = 1 + strength*kappa*p
and beta0 = 1 + strength*kappa*(1-p). strength=0 gives the uniform Beta(1, 1) a bandit starts from anyway;
strength=1 says "the prior is worth as many observations as its held-out error justifies". Groups with
fewer than `MIN_CALIBRATION_RECORDS` held-out records use one line fitted on z-scores pooled over groups.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.errors import UsageError, one_line
from raygems.prior.features import Featurizer, ModelFeatures, TaskFeatures
from raygems.prior.records import DEFAULT_METRIC, METADATA_COLUMNS, aggregate_duplicates, model_table, validate_records
from raygems.tasks.info import task_info

FORMAT_NAME = "raygems-model-prior"
FORMAT_VERSION = 1
MIN_CALIBRATION_RECORDS = 20
_MAX_CONCENTRATION = 10_000.0
_PREDICT_CHUNK = 16_384


@dataclass
class PriorConfig:
    """Hyper-parameters of the ModelLens network and its training."""

    embedding_dim: int = 32
    hidden_dim: int = 128
    dropout: float = 0.1
    id_dropout_model: float = 0.5         # P(model id -> [UNK]) per training record
    id_dropout_task: float = 0.2          # P(task id -> [UNK]) per training group
    token_dropout: float = 0.3            # P(a name / base-model token is hidden) per training record
    pairwise_weight: float = 1.0          # BPR
    listwise_weight: float = 1.0          # Plackett-Luce
    pointwise_weight: float = 0.5         # z-score regression
    steps: int = 1500
    groups_per_step: int = 12
    list_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    calibration_fraction: float = 0.1     # models held out of training to calibrate beliefs
    min_token_count: int = 2              # name tokens seen in fewer models are ignored
    text_embedding: bool = False          # frozen MiniLM embeddings of descriptions (needs the extra)
    num_threads: int = 1                  # torch threads for training and ranking
    seed: int = 0
    progress: bool = False                # tqdm bar over training steps

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "hidden_dim", "steps", "groups_per_step", "list_size", "num_threads",
                     "min_token_count"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PriorConfig.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.list_size < 2:
            raise ValueError(f"PriorConfig.list_size must be at least 2 (rankings need pairs), got {self.list_size}")
        for name in ("dropout", "id_dropout_model", "id_dropout_task", "token_dropout", "calibration_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"PriorConfig.{name} must be in [0, 1), got {value!r}")
        for name in ("pairwise_weight", "listwise_weight", "pointwise_weight", "learning_rate", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"PriorConfig.{name} must be non-negative, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"PriorConfig.seed must be a non-negative integer, got {self.seed!r}")
        if self.pairwise_weight + self.listwise_weight + self.pointwise_weight <= 0:
            raise ValueError("PriorConfig: at least one loss weight must be positive")


@dataclass
class GroupCalibration:
    """Ranking score -> observed score line for one evaluation group, with its residual error."""

    intercept: float
    slope: float
    sigma: float
    num_records: int
    pooled: bool           # True: fitted on z-scores pooled across groups, then put on this group's scale


class ModelPrior:
    """A learned prior over models for a task (ModelLens-style). See the module docstring."""

    def __init__(self, config: PriorConfig | None = None) -> None:
        self.config = config if config is not None else PriorConfig()
        if not isinstance(self.config, PriorConfig):
            raise TypeError(f"config must be a PriorConfig, got {type(self.config).__name__}")
        self._network = None
        self._featurizer: Featurizer | None = None
        self._contexts: list[tuple[str, str]] = []
        self._context_stats: dict[tuple[str, str], tuple[float, float, int]] = {}
        self._calibration: dict[tuple[str, str], GroupCalibration] = {}
        self._pooled_calibration: tuple[float, float, float] | None = None
        self._text_encoder = None
        self.training_log: list[dict] = []
        self.calibration_models: list[str] = []

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, records: pd.DataFrame) -> "ModelPrior":
        """Train on records in the long format (`raygems.prior.records`)."""
        import torch

        from raygems.prior.network import ModelLensNet, NetworkShape
        from raygems.prior.training import train_network

        torch.set_num_threads(self.config.num_threads)
        records = aggregate_duplicates(validate_records(records))
        contexts_all = records.groupby(["task", "metric"]).size()
        if len(records) < 2 or (contexts_all < 2).all():
            raise ValueError("records: need at least one (task, metric) group with two or more models to learn a ranking")
        rng = np.random.default_rng(self.config.seed)
        train, held_out = _split_calibration(records, self.config.calibration_fraction, rng)
        self.calibration_models = sorted(held_out["model_id"].unique().tolist())

        models = model_table(train)
        self._contexts = sorted({(t, m) for t, m in zip(train["task"], train["metric"])})
        stats = train.groupby(["task", "metric"])["score"].agg(["mean", "std", "count"])
        self._context_stats = {key: (float(r["mean"]), _safe_std(r["std"]), int(r["count"])) for key, r in stats.iterrows()}
        self._featurizer = Featurizer.fit(models, self._contexts, min_token_count=self.config.min_token_count)
        text_dim = 0
        if self.config.text_embedding:
            from raygems.prior.text_embedding import TEXT_EMBEDDING_DIM
            text_dim = TEXT_EMBEDDING_DIM
        sizes = self._featurizer.sizes()
        shape = NetworkShape(
            num_model_ids=sizes["model_ids"], num_name_tokens=sizes["name_vocab"], num_base_tokens=sizes["base_vocab"],
            num_families=sizes["families"], num_types=sizes["types"], num_licenses=sizes["licenses"],
            num_tasks=sizes["tasks"], num_metrics=sizes["metrics"], num_task_tokens=sizes["task_vocab"],
            embedding_dim=self.config.embedding_dim, hidden_dim=self.config.hidden_dim, text_dim=text_dim)
        torch.manual_seed(self.config.seed)
        self._network = ModelLensNet(shape, dropout=self.config.dropout)

        model_features = self._encode_models(models)
        task_features = self._encode_contexts(self._contexts)
        row_of_model = {m: i for i, m in enumerate(models["model_id"])}
        context_index = {c: i for i, c in enumerate(self._contexts)}
        record_model = train["model_id"].map(row_of_model).to_numpy(dtype=np.int64)
        record_context = np.fromiter((context_index[(t, m)] for t, m in zip(train["task"], train["metric"])),
                                     dtype=np.int64, count=len(train))
        scores = train["score"].to_numpy(dtype=np.float32)
        means = np.array([self._context_stats[c][0] for c in self._contexts])[record_context]
        stds = np.array([self._context_stats[c][1] for c in self._contexts])[record_context]
        z = ((scores - means) / stds).astype(np.float32)
        self.training_log = train_network(self._network, self.config, model_features, task_features,
                                          record_model, record_context, scores, z, rng)
        self._calibrate(held_out if len(held_out) else train, on_training_data=not len(held_out))
        return self

    # ------------------------------------------------------------------------------------ prediction
    @property
    def contexts(self) -> list[tuple[str, str]]:
        """The (task, metric) evaluation groups seen in training."""
        return list(self._contexts)

    @property
    def tasks(self) -> list[str]:
        return sorted({task for task, _ in self._contexts})

    def default_metric(self, task: str) -> str:
        """The metric with the most training records for `task` (DEFAULT_METRIC for an unknown task)."""
        known = [(self._context_stats[c][2], c[1]) for c in self._contexts if c[0] == task]
        return max(known)[1] if known else DEFAULT_METRIC

    def predict(self, candidates: pd.DataFrame, task: str, metric: str | None = None) -> pd.DataFrame:
        """Per candidate, in input order: model_id, score (ranking score), predicted_score (0-1 scale, NaN
        when the group has no calibration), z (pointwise head: predicted z-score within the group)."""
        import torch

        self._require_fitted()
        candidates = _candidate_table(candidates)
        metric = metric or self.default_metric(task)
        torch.set_num_threads(self.config.num_threads)
        features = self._encode_models(candidates)
        context = self._encode_contexts([(task, metric)])
        scores, z = _score(self._network, features, context)
        calibration = self.calibration_for(task, metric)
        predicted = (calibration.intercept + calibration.slope * scores) if calibration else np.full(len(scores), np.nan)
        return pd.DataFrame({"model_id": candidates["model_id"].to_numpy(), "score": scores,
                             "predicted_score": predicted, "z": z})

    def rank(self, candidates: pd.DataFrame, task: str, metric: str | None = None) -> pd.DataFrame:
        """Candidates best first: model_id, score, predicted_score (ties keep input order)."""
        predictions = self.predict(candidates, task, metric)
        order = np.argsort(-predictions["score"].to_numpy(), kind="stable")
        return predictions.iloc[order][["model_id", "score", "predicted_score"]].reset_index(drop=True)

    def scores(self, candidates: pd.DataFrame, task: str, metric: str | None = None) -> np.ndarray:
        """Ranking scores in input order (higher = better): a bandit's `arm_priority`."""
        return self.predict(candidates, task, metric)["score"].to_numpy()

    def prune(self, candidates: pd.DataFrame, task: str, keep: float, metric: str | None = None) -> pd.DataFrame:
        """The best ceil(keep * n) candidates (at least one), best first, with their `score` column added."""
        if not 0.0 < float(keep) <= 1.0:
            raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
        table = _candidate_table(candidates)
        scores = self.scores(table, task, metric)
        order = np.argsort(-scores, kind="stable")
        kept = order[: max(1, math.ceil(float(keep) * len(table)))]
        out = candidates.reset_index(drop=True).iloc[kept].copy()
        out["score"] = scores[kept]
        return out.reset_index(drop=True)

    def calibration_for(self, task: str, metric: str | None = None) -> GroupCalibration | None:
        """The score -> 0-1 scale line for a group; None for a group never seen in training."""
        metric = metric or self.default_metric(task)
        key = (task, metric)
        if key in self._calibration:
            return self._calibration[key]
        if key in self._context_stats and self._pooled_calibration is not None:
            mean, std, _ = self._context_stats[key]
            a, b, sigma_z = self._pooled_calibration
            return GroupCalibration(mean + std * a, std * b, std * sigma_z, 0, pooled=True)
        return None

    def beliefs(self, candidates: pd.DataFrame, task: str, strength: float = 1.0, metric: str | None = None, *,
                scale: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Beta prior parameters (alpha0, beta0), each shape (n,), in input order, on the 0-1 accuracy scale.

        `scale=(mean, std)` puts an unknown task on a scale: predicted accuracy = mean + std * z, with the
        pooled z-calibration's error. Without it, an unknown task is an error.
        """
        if strength < 0 or not math.isfinite(strength):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        predictions = self.predict(candidates, task, metric)
        calibration = self.calibration_for(task, metric)
        if scale is not None:
            mean, std = scale
            if std <= 0:
                raise ValueError(f"scale: std must be positive, got {std!r}")
            a, b, sigma_z = self._pooled_calibration or (0.0, 1.0, 1.0)
            calibration = GroupCalibration(mean + std * a, std * b, std * sigma_z, 0, pooled=True)
        if calibration is None:
            raise ValueError(f"task {task!r} (metric {metric or self.default_metric(task)!r}) was not in the prior's "
                             f"training records, so its accuracy scale is unknown; known tasks: {self.tasks}. "
                             "Pass scale=(mean, std) or train on records of this task.")
        p = np.clip(calibration.intercept + calibration.slope * predictions["score"].to_numpy(), 0.005, 0.995)
        sigma2 = max(calibration.sigma, 1e-3) ** 2
        kappa = np.clip(p * (1 - p) / sigma2 - 1.0, 0.0, _MAX_CONCENTRATION)
        alpha0 = 1.0 + strength * kappa * p
        beta0 = 1.0 + strength * kappa * (1 - p)
        return alpha0, beta0

    # ----------------------------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write config.json (settings, vocabularies, calibration) and weights.pt (network state)."""
        import torch

        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION,
            "config": asdict(self.config),
            "shape": asdict(self._network.shape),
            "featurizer": self._featurizer.to_dict(),
            "contexts": [list(c) for c in self._contexts],
            "context_stats": [[t, m, *v] for (t, m), v in self._context_stats.items()],
            "calibration": [[t, m, asdict(c)] for (t, m), c in self._calibration.items()],
            "pooled_calibration": self._pooled_calibration,
            "calibration_models": self.calibration_models,
            "training_log": self.training_log[-5:],
        }
        (directory / "config.json").write_text(json.dumps(document, indent=1))
        torch.save(self._network.state_dict(), directory / "weights.pt")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ModelPrior":
        import torch

        from raygems.prior.network import ModelLensNet, NetworkShape

        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory} is not a saved prior (no config.json)")
        try:
            document = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{config_path}: not a valid prior config file (corrupt JSON: {one_line(exc)})") from None
        if not isinstance(document, dict):
            raise UsageError(f"{config_path}: not a raygems model prior (a JSON {type(document).__name__}, "
                             "expected an object)")
        if document.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path}: not a raygems model prior (format {document.get('format')!r})")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"{config_path}: prior format version {document.get('version')!r}, expected {FORMAT_VERSION}")
        try:
            prior = cls(PriorConfig(**document["config"]))
            prior._featurizer = Featurizer.from_dict(document["featurizer"])
            prior._contexts = [tuple(c) for c in document["contexts"]]
            prior._context_stats = {(t, m): (float(a), float(b), int(n))
                                    for t, m, a, b, n in document["context_stats"]}
            prior._calibration = {(t, m): GroupCalibration(**c) for t, m, c in document["calibration"]}
            pooled = document.get("pooled_calibration")
            prior._pooled_calibration = tuple(pooled) if pooled else None
            prior.calibration_models = document.get("calibration_models", [])
            prior.training_log = document.get("training_log", [])
            network = ModelLensNet(NetworkShape(**document["shape"]), dropout=prior.config.dropout)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise UsageError(f"{config_path}: malformed prior config ({one_line(exc)})") from None
        weights_path = directory / "weights.pt"
        if not weights_path.is_file():
            raise FileNotFoundError(f"{directory} is not a complete saved prior (no weights.pt)")
        try:
            state = torch.load(weights_path, weights_only=True)
        except Exception as exc:   # torch raises UnpicklingError, RuntimeError, KeyError, EOFError, ... on bad bytes
            raise UsageError(f"{weights_path}: not a readable prior weights file (corrupt, or not written by "
                             f"`raygems prior fit`; torch.load raised {type(exc).__name__})") from None
        try:
            network.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
            raise UsageError(f"{weights_path}: the weights do not fit the network described in {config_path} "
                             f"(are the two files from different priors? {type(exc).__name__})") from None
        prior._network = network.eval()
        return prior

    # -------------------------------------------------------------------------------------- internals
    def _require_fitted(self) -> None:
        if self._network is None:
            raise RuntimeError("this ModelPrior is not fitted: call fit(records) or ModelPrior.load(directory)")

    def _text(self):
        if self._text_encoder is None:
            from raygems.prior.text_embedding import TextEncoder
            self._text_encoder = TextEncoder()
        return self._text_encoder

    def _encode_models(self, models: pd.DataFrame) -> ModelFeatures:
        description = self._text().encode(models["description"].tolist()) if self.config.text_embedding else None
        return self._featurizer.encode_models(models, description)

    def _encode_contexts(self, contexts: list[tuple[str, str]]) -> TaskFeatures:
        description = None
        if self.config.text_embedding:
            texts = [task_info(t).description or f"Benchmark {t.replace('_', ' ')}, metric {m.replace('_', ' ')}."
                     for t, m in contexts]
            description = self._text().encode(texts)
        return self._featurizer.encode_contexts(contexts, description)

    def _calibrate(self, records: pd.DataFrame, *, on_training_data: bool) -> None:
        """Fit score -> observed score lines on held-out models (see the module docstring)."""
        self._calibration = {}
        self._pooled_calibration = None
        pooled_s, pooled_z = [], []
        table = model_table(records)
        features = self._encode_models(table)
        if on_training_data:   # no held-out models (tiny data): score the training models as if unseen,
            features.model_id[:] = 0   # through the unknown id, with their real names and metadata
        row_of = {m: i for i, m in enumerate(table["model_id"])}
        for (task, metric), group in records.groupby(["task", "metric"]):
            if (task, metric) not in self._context_stats:
                continue
            rows = group["model_id"].map(row_of).to_numpy()
            s, _ = _score(self._network, features.take(rows), self._encode_contexts([(task, metric)]))
            y = group["score"].to_numpy(dtype=float)
            mean, std, _ = self._context_stats[(task, metric)]
            pooled_s.append(s)
            pooled_z.append((y - mean) / std)
            if len(y) >= MIN_CALIBRATION_RECORDS and np.std(s) > 0:
                slope, intercept, sigma = _line(s, y)
                self._calibration[(task, metric)] = GroupCalibration(intercept, slope, sigma, len(y), pooled=False)
        if pooled_s:
            s, z = np.concatenate(pooled_s), np.concatenate(pooled_z)
            if len(s) >= 3 and np.std(s) > 0:
                slope, intercept, sigma = _line(s, z)
                self._pooled_calibration = (intercept, slope, sigma)
        if self._pooled_calibration is None:
            self._pooled_calibration = (0.0, 0.0, 1.0)   # no information: predict the group mean, error = its std


def _score(network, features: ModelFeatures, context: TaskFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Ranking scores and z predictions of every model for one evaluation context (eval mode, chunked)."""
    import torch

    from raygems.prior.training import model_tensors, task_tensors

    network.eval()
    out_s, out_z = [], []
    with torch.no_grad():
        for start in range(0, len(features), _PREDICT_CHUNK):
            rows = np.arange(start, min(start + _PREDICT_CHUNK, len(features)))
            m = model_tensors(features.take(rows))
            t = task_tensors(context, np.zeros(len(rows), dtype=np.int64))
            s, z = network(m, t)
            out_s.append(s.numpy())
            out_z.append(z.numpy())
    if not out_s:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(out_s).astype(float), np.concatenate(out_z).astype(float)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope, intercept and residual standard deviation of y on x."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    dof = max(len(y) - 2, 1)
    return float(slope), float(intercept), float(math.sqrt(float(residual @ residual) / dof))


def _safe_std(value: float) -> float:
    return float(value) if value is not None and np.isfinite(value) and value > 1e-6 else 1.0


def _split_calibration(records: pd.DataFrame, fraction: float, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold a random share of the models out of training (all their records) for calibration."""
    models = records["model_id"].unique()
    count = int(round(fraction * len(models)))
    if fraction <= 0 or count < 1 or len(models) - count < 2:
        return records, records.iloc[0:0]
    held = set(rng.choice(models, size=count, replace=False).tolist())
    mask = records["model_id"].isin(held)
    train = records[~mask]
    if (train.groupby(["task", "metric"]).size() < 2).all():
        return records, records.iloc[0:0]
    return train.reset_index(drop=True), records[mask].reset_index(drop=True)


def _candidate_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """Candidates with every metadata column (missing columns = unknown), in the records' conventions."""
    if not isinstance(candidates, pd.DataFrame):
        raise TypeError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
    if "model_id" not in candidates.columns:
        raise ValueError(f"candidates: no 'model_id' column; have {list(candidates.columns)}")
    table = candidates.reset_index(drop=True).copy()
    # A raygems tree table (ModelRecord rows) names two of the columns differently.
    if "type" not in table.columns and "kind" in table.columns:
        table["type"] = table["kind"]
    if "date" not in table.columns and "created_at" in table.columns:
        table["date"] = table["created_at"]
    if table["model_id"].isna().any():
        raise ValueError("candidates: some rows have no model_id")
    table = table.assign(task="?", score=0.0)
    table = validate_records(table, where="candidates")
    return table[["model_id", *METADATA_COLUMNS]]
