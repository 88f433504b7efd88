"""The training loop: sample evaluation groups, a list of models per group, and optimise the three losses.

Each step draws `groups_per_step` evaluation groups (task, metric) and up to `list_size` of each group's
training records, replaces model ids by [UNK] with probability `id_dropout_model` (per record) and task ids
with probability `id_dropout_task` (per group), and minimises
    pairwise_weight * BPR + listwise_weight * Plackett-Luce + pointwise_weight * MSE(z)
with AdamW and a cosine learning-rate decay.
"""
from __future__ import annotations

import numpy as np
import torch

from raygems.prior.features import ModelFeatures, TaskFeatures
from raygems.prior.losses import bpr_loss, plackett_luce_loss, pointwise_loss


def model_tensors(features: ModelFeatures) -> dict[str, torch.Tensor]:
    out = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in vars(features).items() if value is not None}
    return out


def task_tensors(features: TaskFeatures, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Task features repeated for each row (`rows` index the contexts)."""
    return {name: torch.from_numpy(np.ascontiguousarray(value[rows])) for name, value in vars(features).items()
            if value is not None}


def train_network(network: torch.nn.Module, config, model_features: ModelFeatures, task_features: TaskFeatures,
                  record_model: np.ndarray, record_context: np.ndarray, scores: np.ndarray, z: np.ndarray,
                  rng: np.random.Generator) -> list[dict]:
    """Optimise `network` in place; returns a short log (loss every ~10% of the steps)."""
    from tqdm.auto import tqdm

    groups = [np.flatnonzero(record_context == c) for c in range(len(task_features))]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        raise ValueError("no evaluation group has two or more training records")
    all_models = model_tensors(model_features)
    scores_t = torch.from_numpy(scores.astype(np.float32))
    z_t = torch.from_numpy(z.astype(np.float32))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _warmup_cosine(step, config.steps))
    g_count = min(config.groups_per_step, len(groups))
    width = config.list_size
    log: list[dict] = []
    running = np.zeros(4)
    network.train()
    bar = tqdm(range(config.steps), desc="training prior", disable=not config.progress, leave=False)
    for step in bar:
        chosen = rng.choice(len(groups), size=g_count, replace=False)
        index = np.zeros((g_count, width), dtype=np.int64)
        mask = np.zeros((g_count, width), dtype=bool)
        for row, g in enumerate(chosen):
            members = groups[g]
            take = members if len(members) <= width else rng.choice(members, size=width, replace=False)
            index[row, : len(take)] = take
            mask[row, : len(take)] = True
        flat = torch.from_numpy(index.reshape(-1))
        m = {name: value[torch.from_numpy(record_model[index.reshape(-1)])] for name, value in all_models.items()}
        drop = torch.from_numpy(rng.random(len(flat)) < config.id_dropout_model)
        m["model_id"] = torch.where(drop, torch.zeros_like(m["model_id"]), m["model_id"])
        if config.token_dropout > 0:
            for bag in ("name_tokens", "base_tokens"):
                hide = torch.from_numpy(rng.random(tuple(m[bag].shape)) < config.token_dropout)
                m[bag] = torch.where(hide, torch.zeros_like(m[bag]), m[bag])
        contexts = record_context[index[:, 0]]
        t = task_tensors(task_features, np.repeat(contexts, width))
        task_drop = torch.from_numpy(np.repeat(rng.random(g_count) < config.id_dropout_task, width))
        t["task_id"] = torch.where(task_drop, torch.zeros_like(t["task_id"]), t["task_id"])
        s, z_hat = network(m, t)
        s, z_hat = s.view(g_count, width), z_hat.view(g_count, width)
        y = scores_t[flat].view(g_count, width)
        zt = z_t[flat].view(g_count, width)
        mask_t = torch.from_numpy(mask)
        losses = [
            bpr_loss(s, y, mask_t) if config.pairwise_weight else s.sum() * 0,
            plackett_luce_loss(s, y, mask_t) if config.listwise_weight else s.sum() * 0,
            pointwise_loss(z_hat, zt, mask_t) if config.pointwise_weight else s.sum() * 0,
        ]
        loss = (config.pairwise_weight * losses[0] + config.listwise_weight * losses[1]
                + config.pointwise_weight * losses[2])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimiser.step()
        schedule.step()
        running += np.array([loss.item(), *(part.item() for part in losses)])
        every = max(1, config.steps // 10)
        if (step + 1) % every == 0 or step + 1 == config.steps:
            count = (step % every) + 1
            entry = dict(zip(("loss", "bpr", "plackett_luce", "pointwise"), (running / count).round(4).tolist()))
            entry["step"] = step + 1
            log.append(entry)
            bar.set_postfix(loss=entry["loss"])
            running[:] = 0
    network.eval()
    return log


def _warmup_cosine(step: int, total: int, warmup_share: float = 0.05, floor: float = 0.02) -> float:
    """Learning-rate factor: linear warm-up over the first 5% of the steps, then cosine decay to `floor`."""
    warmup = max(1, int(warmup_share * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress))
