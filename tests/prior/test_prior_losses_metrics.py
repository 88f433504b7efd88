from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raygems.prior.losses import bpr_loss, plackett_luce_loss, pointwise_loss
from raygems.prior.metrics import ndcg_at_k, ranking_metrics, recall_at_k, weighted_kendall_tau


def test_bpr_prefers_the_true_order_and_ignores_ties_and_padding():
    y = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    good = bpr_loss(torch.tensor([[3.0, 2.0, 1.0, 99.0]]), y, mask)
    bad = bpr_loss(torch.tensor([[1.0, 2.0, 3.0, -99.0]]), y, mask)
    assert good < bad
    # three pairs, each with score gap 1 or 2
    expected = -(2 * math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(-2)))) / 3
    assert good.item() == pytest.approx(expected, rel=1e-5)
    ties = bpr_loss(torch.tensor([[0.0, 5.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[True, True]]))
    assert ties.item() == 0.0


def test_plackett_luce_matches_the_formula():
    s = torch.tensor([[0.5, -1.0, 2.0, 7.0]])
    y = torch.tensor([[2.0, 1.0, 3.0, 0.0]])          # true order: items 2, 0, 1; item 3 is padding
    mask = torch.tensor([[True, True, True, False]])
    ordered = [2.0, 0.5, -1.0]
    nll = sum(math.log(sum(math.exp(v) for v in ordered[i:])) - ordered[i] for i in range(3)) / 3
    assert plackett_luce_loss(s, y, mask).item() == pytest.approx(nll, rel=1e-5)
    assert plackett_luce_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[3.0, 2.0, 1.0]]),
                              torch.ones(1, 3, dtype=torch.bool)) < \
        plackett_luce_loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]),
                           torch.ones(1, 3, dtype=torch.bool))


def test_pointwise_loss_masks():
    predicted = torch.tensor([[1.0, 2.0, 100.0]])
    z = torch.tensor([[0.0, 2.0, 0.0]])
    assert pointwise_loss(predicted, z, torch.tensor([[True, True, False]])).item() == pytest.approx(0.5)


def test_losses_have_gradients():
    s = torch.zeros(2, 5, requires_grad=True)
    y = torch.rand(2, 5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    (bpr_loss(s, y, mask) + plackett_luce_loss(s, y, mask)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_metrics_on_known_rankings():
    true = np.array([0.9, 0.8, 0.5, 0.4, 0.1])
    assert ranking_metrics(true, true, k=2) == {"wtau": 1.0, "ndcg@2": 1.0, "recall@2": 1.0}
    assert weighted_kendall_tau(true, -true) == pytest.approx(-1.0)
    assert recall_at_k(true, -true, k=2) == 0.0
    # picking the 2nd and 1st best in the wrong order: full recall, slightly lower NDCG
    swapped = np.array([0.8, 0.9, 0.5, 0.4, 0.1])
    assert recall_at_k(true, swapped, k=2) == 1.0
    assert 0.9 < ndcg_at_k(true, swapped, k=2) < 1.0
    # ties at the k-th place all count as relevant
    assert recall_at_k(np.array([1.0, 0.5, 0.5, 0.0]), np.array([0, 1, 0.5, 2]), k=2) == 0.5
    assert recall_at_k(np.array([1.0, 0.5, 0.5, 0.0]), np.array([3, 0.5, 1, 0]), k=2) == 1.0
    # a constant prediction carries no information; a prediction with NaN ranks those last
    assert weighted_kendall_tau(true, np.zeros(5)) == 0.0
    assert recall_at_k(true, np.array([np.nan, np.nan, 1, 0, 0]), k=1) == 0.0
    with pytest.raises(ValueError, match="one length"):
        ranking_metrics(true, true[:3])
