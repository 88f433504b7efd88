"""Ranking metrics per task, as in the ModelLens paper: weighted Kendall tau, NDCG@k, Recall@k.

All take the true scores and the predicted scores of the same models (any order); higher = better.
* weighted Kendall tau: scipy's `weightedtau` with its defaults (hyperbolic weights 1/(r+1), averaged
  over the ranking by the truth and the ranking by the prediction), so swaps near the top cost most;
* NDCG@k: gains are the true scores min-max normalised within the task (0 = worst, 1 = best model), so a
  near-miss at the top still earns most of the gain;
* Recall@k: |predicted top k  ∩  true top k| / k, where the true top k includes every model tied with
  the k-th best (leaderboards are full of exact ties), capped at 1.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import weightedtau


def weighted_kendall_tau(true: np.ndarray, predicted: np.ndarray) -> float:
    true, predicted = _check(true, predicted)
    if len(true) < 2 or np.ptp(true) == 0:
        return float("nan")
    if np.ptp(predicted) == 0:
        return 0.0
    return float(weightedtau(true, predicted).statistic)


def ndcg_at_k(true: np.ndarray, predicted: np.ndarray, k: int = 10) -> float:
    true, predicted = _check(true, predicted)
    if len(true) == 0 or np.ptp(true) == 0:
        return float("nan")
    gains = (true - true.min()) / np.ptp(true)
    k = min(k, len(true))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    chosen = np.argsort(-predicted, kind="stable")[:k]
    ideal = np.sort(gains)[::-1][:k]
    return float((gains[chosen] * discounts).sum() / (ideal * discounts).sum())


def recall_at_k(true: np.ndarray, predicted: np.ndarray, k: int = 10) -> float:
    true, predicted = _check(true, predicted)
    if len(true) == 0:
        return float("nan")
    k = min(k, len(true))
    threshold = np.sort(true)[::-1][k - 1]
    relevant = true >= threshold
    chosen = np.argsort(-predicted, kind="stable")[:k]
    return float(min(1.0, relevant[chosen].sum() / k))


def ranking_metrics(true: np.ndarray, predicted: np.ndarray, k: int = 10) -> dict[str, float]:
    return {"wtau": weighted_kendall_tau(true, predicted), f"ndcg@{k}": ndcg_at_k(true, predicted, k),
            f"recall@{k}": recall_at_k(true, predicted, k)}


def _check(true: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if true.shape != predicted.shape or true.ndim != 1:
        raise ValueError(f"true and predicted must be 1-d arrays of one length, got {true.shape} and {predicted.shape}")
    if not np.isfinite(true).all():
        raise ValueError("true scores contain NaN or infinity")
    if not np.isfinite(predicted).all():    # a method with no opinion on some models ranks them last
        finite = predicted[np.isfinite(predicted)]
        predicted = np.where(np.isfinite(predicted), predicted, (finite.min() - 1.0) if len(finite) else 0.0)
    return true, predicted
