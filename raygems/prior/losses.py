"""The three training objectives of ModelLens, on (groups, list) shaped batches.

Every tensor is (G, L): G evaluation groups (task, metric), L sampled models per group; `mask` marks
the real entries (groups smaller than L are padded). Scores only matter within a group.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, tie_tolerance: float = 1e-6) -> torch.Tensor:
    """Pairwise (BPR): -log sigmoid(s_i - s_j) over every within-group pair where i truly beats j.

    Exact ties (re-uploads are common on leaderboards) give no pair.
    """
    diff_true = targets.unsqueeze(2) - targets.unsqueeze(1)               # (G, L, L): y_i - y_j
    valid = (diff_true > tie_tolerance) & mask.unsqueeze(2) & mask.unsqueeze(1)
    if not valid.any():
        return scores.sum() * 0.0
    diff_pred = scores.unsqueeze(2) - scores.unsqueeze(1)
    return -F.logsigmoid(diff_pred[valid]).mean()


def plackett_luce_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Listwise (Plackett-Luce): negative log-likelihood of the true order, averaged per item.

    With items sorted best first, -log P = sum_i [ logsumexp(s_i, ..., s_n) - s_i ].
    """
    neg_inf = torch.finfo(scores.dtype).min
    sort_key = torch.where(mask, targets, torch.full_like(targets, float("-inf")))
    order = torch.argsort(sort_key, dim=1, descending=True)
    s = torch.gather(scores, 1, order)
    m = torch.gather(mask, 1, order)
    s_masked = torch.where(m, s, torch.full_like(s, neg_inf))
    # logsumexp of the suffix starting at i: reverse, cumulative logsumexp, reverse back.
    suffix = torch.flip(torch.logcumsumexp(torch.flip(s_masked, [1]), dim=1), [1])
    terms = torch.where(m, suffix - s, torch.zeros_like(s))
    counts = m.sum(1).clamp(min=1)
    per_group = terms.sum(1) / counts
    has_pairs = m.sum(1) > 1
    if not has_pairs.any():
        return scores.sum() * 0.0
    return per_group[has_pairs].mean()


def pointwise_loss(predicted: torch.Tensor, z_targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pointwise: squared error against the score z-scored within its group."""
    if not mask.any():
        return predicted.sum() * 0.0
    return ((predicted - z_targets)[mask] ** 2).mean()
