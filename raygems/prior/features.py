"""Turn model metadata and evaluation contexts into integer ids and numbers the network can embed.

A `Featurizer` is fitted on the training records (it builds the vocabularies) and then encodes any
table of models, seen or not: unseen ids, tokens and categories map to index 0 (unknown), so a model
that was never trained on falls back on its name tokens, size, family, type, licence, likes and date.
"""
from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from raygems.prior.records import parse_dates

#: Upper edges (billions of parameters) of the size buckets; bucket 0 is "unknown".
SIZE_EDGES_B = (0.5, 1.0, 2.0, 4.0, 6.0, 9.5, 15.0, 25.0, 40.0, 80.0)
MAX_NAME_TOKENS = 16
MAX_TASK_TOKENS = 8
_DATE_ORIGIN = pd.Timestamp("2023-01-01", tz="UTC")
_SIZE_TOKEN = re.compile(r"^\d+(?:\.\d+)?[bmk]$")
_NAME_SPLIT = re.compile(r"[^a-z0-9.]+")
_PIECES = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_CONTEXT_SPLIT = re.compile(r"[^a-z0-9]+")
_ARCH_SUFFIXES = ("forcausallm", "lmheadmodel", "forconditionalgeneration", "forsequenceclassification", "model")

def name_tokens(model_id: str) -> list[str]:
    """Tokens of a model name: the organisation, the name's parts, and their letter/number pieces.

    "Qwen/Qwen2.5-7B-Instruct" -> ["org:qwen", "qwen2.5", "qwen", "2.5", "7b", "instruct"].
    """
    text = str(model_id).lower()
    org, _, name = text.rpartition("/")
    tokens = [f"org:{org}"] if org else []
    for part in _NAME_SPLIT.split(name):
        part = part.strip(".")
        if not part:
            continue
        tokens.append(part)
        if not _SIZE_TOKEN.match(part):
            pieces = _PIECES.findall(part)
            if len(pieces) > 1:
                tokens.extend(pieces)
    return list(dict.fromkeys(tokens))[:MAX_NAME_TOKENS]


def base_model_tokens(base_model: object) -> list[str]:
    """Tokens of a parent model: its whole id (a strong family signal) and its name tokens."""
    if base_model is None or (isinstance(base_model, float) and math.isnan(base_model)) or not str(base_model).strip():
        return []
    return list(_base_model_tokens(str(base_model)))


@functools.lru_cache(maxsize=65536)
def _base_model_tokens(base_model: str) -> tuple[str, ...]:     # parents repeat: cache them
    return tuple(dict.fromkeys([f"id:{base_model.lower()}", *name_tokens(base_model)]))[:MAX_NAME_TOKENS]


def task_tokens(task: str, metric: str) -> list[str]:
    """Tokens of an evaluation context: the task name's parts and the metric's parts ("acc", "5shot")."""
    parts = [f"task:{p}" for p in _CONTEXT_SPLIT.split(str(task).lower()) if p]
    parts += [f"metric:{p}" for p in _CONTEXT_SPLIT.split(str(metric).lower()) if p]
    return list(dict.fromkeys(parts))[:MAX_TASK_TOKENS]


def family_of(architecture: object) -> str | None:
    """"Qwen2ForCausalLM" -> "qwen2", "GPT2LMHeadModel" -> "gpt2"; None when unknown."""
    if architecture is None or (isinstance(architecture, float) and math.isnan(architecture)):
        return None
    return _family_of(str(architecture))


@functools.lru_cache(maxsize=4096)
def _family_of(architecture: str) -> str | None:
    text = architecture.strip().lower()
    if text in {"", "?", "unknown", "nan", "none"}:
        return None
    for suffix in _ARCH_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


def size_bucket(params_b: object) -> int:
    """0 for unknown, else 1 + the index of the first edge at or above the size."""
    try:
        value = float(params_b)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(value) or value <= 0:
        return 0
    return 1 + int(np.searchsorted(SIZE_EDGES_B, value, side="left"))


def size_buckets(params_b: object) -> np.ndarray:
    """`size_bucket` of every value of a column (vectorised)."""
    values = pd.to_numeric(pd.Series(params_b), errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(values) & (values > 0)
    return np.where(known, 1 + np.searchsorted(SIZE_EDGES_B, np.where(known, values, 1.0), side="left"), 0).astype(np.int64)


NUM_SIZE_BUCKETS = len(SIZE_EDGES_B) + 2


@dataclass
class Vocabulary:
    """Strings -> indices 1..n; anything else -> 0 (unknown)."""

    items: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {item: i + 1 for i, item in enumerate(self.items)}

    @classmethod
    def build(cls, values: Iterable[str | None], *, min_count: int = 1) -> "Vocabulary":
        counts = Counter(v for v in values if v is not None)
        return cls(sorted(v for v, c in counts.items() if c >= min_count))

    def __len__(self) -> int:          # including the unknown slot
        return len(self.items) + 1

    def index(self, value: str | None) -> int:
        return self._index.get(value, 0) if value is not None else 0

    def indices(self, values: Iterable[str | None]) -> np.ndarray:
        return np.fromiter((self.index(v) for v in values), dtype=np.int64)

    def bags(self, token_lists: Sequence[Sequence[str]], width: int) -> np.ndarray:
        """(n, width) known-token indices, 0-padded; unknown tokens are left out."""
        out = np.zeros((len(token_lists), width), dtype=np.int64)
        for row, tokens in enumerate(token_lists):
            known = [i for i in (self._index.get(t, 0) for t in tokens) if i][:width]
            out[row, : len(known)] = known
        return out


@dataclass
class ModelFeatures:
    """Encoded models: one row per model, aligned with the table they came from."""

    model_id: np.ndarray        # (n,) int64, 0 = unknown id
    name_tokens: np.ndarray     # (n, MAX_NAME_TOKENS) int64, 0 = padding
    base_tokens: np.ndarray     # (n, MAX_NAME_TOKENS) int64
    size: np.ndarray            # (n,) int64 bucket
    family: np.ndarray          # (n,) int64
    type: np.ndarray            # (n,) int64
    license: np.ndarray         # (n,) int64
    numeric: np.ndarray         # (n, NUM_NUMERIC) float32, standardised
    description: np.ndarray | None = None   # (n, text_dim) float32, when text embeddings are on

    def __len__(self) -> int:
        return len(self.model_id)

    def take(self, rows: np.ndarray) -> "ModelFeatures":
        return ModelFeatures(**{name: (None if value is None else value[rows]) for name, value in vars(self).items()})


@dataclass
class TaskFeatures:
    """Encoded evaluation contexts (task, metric): one row per context."""

    task_id: np.ndarray         # (m,) int64, 0 = unknown task
    metric: np.ndarray          # (m,) int64
    tokens: np.ndarray          # (m, MAX_TASK_TOKENS) int64
    description: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.task_id)


NUMERIC_COLUMNS = ("log_likes", "likes_known", "date_years", "date_known", "log_params", "params_known")
NUM_NUMERIC = len(NUMERIC_COLUMNS)


def _nan_column_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: mean, standard deviation, min and max of the non-NaN values; NaN for a column with no known
    value (e.g. no record gives a model size). The same numbers as numpy's nan-functions, without their
    RuntimeWarnings about empty columns."""
    values = np.array(values, dtype=float)          # a copy: empty columns are filled in below
    empty = np.isnan(values).all(axis=0) if len(values) else np.ones(values.shape[1], dtype=bool)
    if len(values):
        values[:, empty] = 0.0                       # same layout, so the other columns' sums are unchanged
    else:
        values = np.zeros((1, values.shape[1]))
    stats = [np.nanmean(values, axis=0), np.nanstd(values, axis=0), np.nanmin(values, axis=0),
             np.nanmax(values, axis=0)]
    for stat in stats:
        stat[empty] = np.nan
    return tuple(stats)


@dataclass
class Featurizer:
    """Vocabularies and numeric scalings learned from the training models and evaluation contexts."""

    model_ids: Vocabulary
    name_vocab: Vocabulary
    base_vocab: Vocabulary
    families: Vocabulary
    types: Vocabulary
    licenses: Vocabulary
    tasks: Vocabulary
    metrics: Vocabulary
    task_vocab: Vocabulary
    numeric_mean: list[float]
    numeric_std: list[float]
    numeric_low: list[float]       # training range: numbers are clipped to it (no extrapolation,
    numeric_high: list[float]      # e.g. of dates for models newer than every training model)

    @classmethod
    def fit(cls, models: pd.DataFrame, contexts: Sequence[tuple[str, str]], *, min_token_count: int = 2,
            min_category_count: int = 3) -> "Featurizer":
        names = [name_tokens(m) for m in models["model_id"]]
        bases = [base_model_tokens(b) for b in models["base_model"]]
        numeric = _raw_numeric(models)
        mean, std, low, high = _nan_column_stats(numeric)
        std[~np.isfinite(std) | (std < 1e-6)] = 1.0
        mean[~np.isfinite(mean)] = 0.0
        return cls(
            model_ids=Vocabulary.build(models["model_id"].astype(str)),
            name_vocab=Vocabulary.build((t for ts in names for t in ts), min_count=min_token_count),
            base_vocab=Vocabulary.build((t for ts in bases for t in ts), min_count=min_token_count),
            families=Vocabulary.build((family_of(a) for a in models["architecture"]), min_count=min_category_count),
            types=Vocabulary.build(_str_or_none(v) for v in models["type"]),
            licenses=Vocabulary.build((_lower_or_none(v) for v in models["license"]), min_count=min_category_count),
            tasks=Vocabulary.build(task for task, _ in contexts),
            metrics=Vocabulary.build(metric for _, metric in contexts),
            task_vocab=Vocabulary.build(t for task, metric in contexts for t in task_tokens(task, metric)),
            numeric_mean=[float(x) for x in mean],
            numeric_std=[float(x) for x in std],
            numeric_low=[float(x) if np.isfinite(x) else 0.0 for x in low],
            numeric_high=[float(x) if np.isfinite(x) else 0.0 for x in high],
        )

    # -- encoding ------------------------------------------------------------------------------------
    def encode_models(self, models: pd.DataFrame, description: np.ndarray | None = None) -> ModelFeatures:
        raw = _raw_numeric(models)
        clipped = np.clip(raw, np.asarray(self.numeric_low), np.asarray(self.numeric_high))
        scaled = (clipped - np.asarray(self.numeric_mean)) / np.asarray(self.numeric_std)
        scaled = np.where(np.isfinite(scaled), scaled, 0.0)
        # indicator columns stay 0/1
        for i, name in enumerate(NUMERIC_COLUMNS):
            if name.endswith("_known"):
                scaled[:, i] = raw[:, i]
        ids = models["model_id"].astype(str).tolist()
        return ModelFeatures(
            model_id=self.model_ids.indices(ids),
            name_tokens=self.name_vocab.bags([name_tokens(m) for m in ids], MAX_NAME_TOKENS),
            base_tokens=self.base_vocab.bags([base_model_tokens(b) for b in _objects(models["base_model"])],
                                             MAX_NAME_TOKENS),
            size=size_buckets(models["params_b"]),
            family=self.families.indices(family_of(a) for a in _objects(models["architecture"])),
            type=self.types.indices(_str_or_none(v) for v in _objects(models["type"])),
            license=self.licenses.indices(_lower_or_none(v) for v in _objects(models["license"])),
            numeric=scaled.astype(np.float32),
            description=None if description is None else np.asarray(description, dtype=np.float32),
        )

    def encode_contexts(self, contexts: Sequence[tuple[str, str]], description: np.ndarray | None = None) -> TaskFeatures:
        return TaskFeatures(
            task_id=self.tasks.indices(task for task, _ in contexts),
            metric=self.metrics.indices(metric for _, metric in contexts),
            tokens=self.task_vocab.bags([task_tokens(t, m) for t, m in contexts], MAX_TASK_TOKENS),
            description=None if description is None else np.asarray(description, dtype=np.float32),
        )

    # -- persistence -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {}
        for name, value in vars(self).items():
            out[name] = value.items if isinstance(value, Vocabulary) else value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Featurizer":
        kwargs = {}
        for name, value in data.items():
            kwargs[name] = value if name.startswith("numeric_") else Vocabulary(list(value))
        return cls(**kwargs)

    def sizes(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items() if isinstance(value, Vocabulary)}


def _objects(column: pd.Series) -> list:
    """A column as a plain list (iterating pandas' Arrow-backed strings element by element is slow)."""
    return column.astype(object).tolist()


def _str_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _lower_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    return text or None


def _raw_numeric(models: pd.DataFrame) -> np.ndarray:
    """(n, NUM_NUMERIC) raw numeric features; NaN where unknown (indicators are 0/1)."""
    likes = pd.to_numeric(models["likes"], errors="coerce").to_numpy(dtype=float)
    dates = parse_dates(models["date"])
    years = ((dates - _DATE_ORIGIN).dt.days / 365.25).to_numpy(dtype=float, na_value=np.nan)
    params = pd.to_numeric(models["params_b"], errors="coerce").to_numpy(dtype=float)
    params = np.where(params > 0, params, np.nan)
    return np.column_stack([
        np.log1p(np.clip(likes, 0, None)), np.isfinite(likes).astype(float),
        years, np.isfinite(years).astype(float),
        np.log(params), np.isfinite(params).astype(float),
    ])
