"""The ModelLens scoring network: multi-view model and task representations, a structural prior over
(size bucket, family), a residual interaction MLP, and a pointwise auxiliary head.

    score(model, task) = (prior(size, family) + residual(model, task)) / (softplus(temperature) + eps)
    z_hat(model, task) = pointwise head on the same backbone

Index 0 of every id embedding is the shared [UNK] vector. During training, ids are replaced by [UNK] with
probability `id_dropout_model` / `id_dropout_task`, so the same weights serve seen models (memorisation
through the id) and unseen ones (names, metadata, descriptions).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raygems.prior.features import NUM_NUMERIC, NUM_SIZE_BUCKETS


@dataclass(frozen=True)
class NetworkShape:
    """Vocabulary sizes (each including the unknown slot) and widths."""

    num_model_ids: int
    num_name_tokens: int
    num_base_tokens: int
    num_families: int
    num_types: int
    num_licenses: int
    num_tasks: int
    num_metrics: int
    num_task_tokens: int
    embedding_dim: int = 32
    hidden_dim: int = 128
    text_dim: int = 0          # 0 = no text embeddings


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _bag_mean(embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
    """Mean of the token embeddings of each row, ignoring padding (index 0); zeros for an empty bag."""
    vectors = embedding(tokens)                               # (n, T, d); padding rows are zero
    counts = (tokens > 0).sum(1, keepdim=True).clamp(min=1).to(vectors.dtype)
    return vectors.sum(1) / counts


class ModelLensNet(nn.Module):
    def __init__(self, shape: NetworkShape, dropout: float = 0.1) -> None:
        super().__init__()
        self.shape = shape
        d = shape.embedding_dim
        self.model_id = nn.Embedding(shape.num_model_ids, d)
        self.name_tokens = nn.Embedding(shape.num_name_tokens, d, padding_idx=0)
        self.base_tokens = nn.Embedding(shape.num_base_tokens, d, padding_idx=0)
        self.size = nn.Embedding(NUM_SIZE_BUCKETS, d)
        self.family = nn.Embedding(shape.num_families, d)
        self.model_type = nn.Embedding(shape.num_types, d)
        self.license = nn.Embedding(shape.num_licenses, d)
        self.numeric = nn.Linear(NUM_NUMERIC, d)
        self.task_id = nn.Embedding(shape.num_tasks, d)
        self.metric = nn.Embedding(shape.num_metrics, d)
        self.task_tokens = nn.Embedding(shape.num_task_tokens, d, padding_idx=0)
        text = shape.text_dim > 0
        self.model_text = nn.Linear(shape.text_dim, d) if text else None
        self.task_text = nn.Linear(shape.text_dim, d) if text else None
        model_parts = 9 if text else 8
        task_parts = 4 if text else 3
        self.model_projection = nn.Linear(model_parts * d, d)
        self.task_projection = nn.Linear(task_parts * d, d)
        self.structural_prior = _mlp([2 * d, shape.hidden_dim // 2, 1], dropout=0.0)
        self.backbone = _mlp([(model_parts + task_parts + 1) * d, shape.hidden_dim, shape.hidden_dim], dropout)
        self.backbone_activation = nn.GELU()
        self.rank_head = nn.Linear(shape.hidden_dim, 1)
        self.point_head = nn.Linear(shape.hidden_dim, 1)
        self.raw_temperature = nn.Parameter(torch.tensor(0.5413))   # softplus(0.5413) = 1.0
        self.eps = 1e-2
        for embedding in (self.model_id, self.name_tokens, self.base_tokens, self.size, self.family, self.model_type,
                          self.license, self.task_id, self.metric, self.task_tokens):
            nn.init.normal_(embedding.weight, std=0.05)
            if embedding.padding_idx is not None:
                with torch.no_grad():
                    embedding.weight[embedding.padding_idx].zero_()

    def model_parts(self, m: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        size, family = self.size(m["size"]), self.family(m["family"])
        parts = [self.model_id(m["model_id"]), _bag_mean(self.name_tokens, m["name_tokens"]),
                 _bag_mean(self.base_tokens, m["base_tokens"]), size, family, self.model_type(m["type"]),
                 self.license(m["license"]), self.numeric(m["numeric"])]
        if self.model_text is not None:
            parts.append(self.model_text(m["description"]))
        return parts, size, family

    def task_parts(self, t: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        parts = [self.task_id(t["task_id"]), self.metric(t["metric"]), _bag_mean(self.task_tokens, t["tokens"])]
        if self.task_text is not None:
            parts.append(self.task_text(t["description"]))
        return parts

    def forward(self, m: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores for row-aligned (model, task) pairs: returns (ranking score, pointwise z prediction)."""
        model_parts, size, family = self.model_parts(m)
        task_parts = self.task_parts(t)
        model_vector = torch.cat(model_parts, dim=-1)
        task_vector = torch.cat(task_parts, dim=-1)
        interaction = self.model_projection(model_vector) * self.task_projection(task_vector)
        hidden = self.backbone_activation(self.backbone(torch.cat([model_vector, task_vector, interaction], -1)))
        prior = self.structural_prior(torch.cat([size, family], -1)).squeeze(-1)
        residual = self.rank_head(hidden).squeeze(-1)
        temperature = nn.functional.softplus(self.raw_temperature) + self.eps
        return (prior + residual) / temperature, self.point_head(hidden).squeeze(-1)
