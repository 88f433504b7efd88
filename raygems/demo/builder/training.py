"""Training the tiny tree's models: a tiny Qwen3 trained on the toy tasks, answer-only loss, one thread.

The models are real transformers checkpoints (`Qwen3ForCausalLM`) so that every backend loads them like
hub models (why Qwen3: `raygems.demo.tree_spec.TinyModelConfig`).

Training examples are the toy tasks' training items rendered exactly as the search renders evaluation
queries (`raygems.tasks.prompting.render_variant`, both the "system" and the "plain" variant), followed
by the ideal completion and the end-of-turn token. The loss covers the completion tokens only, and the
language-model head is applied to those positions only (a quarter of the compute saved).
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raygems.demo.tree_spec import TinyModelConfig

#: A training example: prompt token ids, completion token ids (ending with the end-of-turn token).
Example = tuple[list[int], list[int]]


def make_model(config: TinyModelConfig, tokenizer, seed: int):
    """A randomly initialised tiny `Qwen3ForCausalLM` for `tokenizer` (tied input/output embeddings)."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    model_config = Qwen3Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
        **config.to_dict(),
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(model_config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        do_sample=False,
    )
    return model


def encode_examples(tokenizer, items: Sequence[Mapping], completion: Callable[[Mapping], str],
                    plain_fraction: float, seed: int) -> list[Example]:
    """Render each item's prompt ("plain" variant for a `plain_fraction` of them, "system" otherwise) and
    tokenize prompt and completion separately (so the loss mask is exact)."""
    from raygems.tasks.prompting import render_variant

    rng = random.Random(seed)
    end = tokenizer.eos_token
    examples = []
    for item in items:
        variant = "plain" if rng.random() < plain_fraction else "system"
        prompt = render_variant(tokenizer, item["messages"], variant)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion(item) + end, add_special_tokens=False)["input_ids"]
        examples.append((prompt_ids, completion_ids))
    return examples


@dataclass(frozen=True)
class TrainingRun:
    """One training run: `steps` AdamW steps over a mixture of example pools.

    mixture: pool name -> weight (each batch draws its examples from the pools with these weights).
    schedule: "one_cycle" (linear warm-up over `warmup` of the steps, then cosine down to 0 at `steps`)
    or "constant" (after the warm-up).
    """

    steps: int
    lr: float
    mixture: tuple[tuple[str, float], ...]
    batch_size: int = 32
    warmup: float = 0.1
    schedule: str = "one_cycle"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"bad training run {self}")
        if self.schedule not in ("one_cycle", "constant"):
            raise ValueError(f"schedule must be 'one_cycle' or 'constant', got {self.schedule!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate for step `step` (1-based)."""
        warm = max(1, int(self.warmup * self.steps))
        if step <= warm:
            return self.lr * step / warm
        if self.schedule == "constant":
            return self.lr
        progress = (step - warm) / max(1, self.steps - warm)
        return self.lr * 0.5 * (1 + math.cos(math.pi * progress))


def answer_loss(causal_lm, input_ids, attention_mask, targets):
    """Cross-entropy on the completion positions only (`targets` = -100 elsewhere); `causal_lm` is the
    `*ForCausalLM` module (under a peft wrapper, the wrapped one)."""
    import torch.nn.functional as F

    hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = targets != -100
    logits = causal_lm.lm_head(hidden[mask])
    return F.cross_entropy(logits, targets[mask])


def collate(examples: Sequence[Example], pad_id: int):
    """Right-padded input ids, attention mask, and next-token targets on the completion positions."""
    import torch

    width = max(len(p) + len(c) for p, c in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    targets = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (prompt, completion) in enumerate(examples):
        sequence = prompt + completion
        input_ids[row, :len(sequence)] = torch.tensor(sequence)
        attention[row, :len(sequence)] = 1
        # position t predicts token t+1: the last prompt position predicts the first completion token
        targets[row, len(prompt) - 1:len(sequence) - 1] = torch.tensor(completion)
    return input_ids, attention, targets


def train(model, pools: Mapping[str, Sequence[Example]], run: TrainingRun, pad_id: int,
          on_step: Callable[[int], None] | None = None, progress=None) -> None:
    """Train `model` in place (a plain causal LM, or a peft model whose trainable parameters are the
    adapter's). `on_step(step)` runs after each step (used to save checkpoints along the way)."""
    import torch

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=run.lr, betas=(0.9, 0.98), weight_decay=0.0)
    rng = random.Random(run.seed)
    names = [name for name, _ in run.mixture]
    weights = [weight for _, weight in run.mixture]
    for name in names:
        if not pools.get(name):
            raise ValueError(f"training pool {name!r} is empty or missing")
    model.train()
    for step in range(1, run.steps + 1):
        counts = {name: 0 for name in names}
        for name in rng.choices(names, weights=weights, k=run.batch_size):
            counts[name] += 1
        batch = [example for name, k in counts.items() for example in rng.sample(pools[name], k)]
        for group in optimizer.param_groups:
            group["lr"] = run.lr_at(step)
        loss = answer_loss(causal_lm, *collate(batch, pad_id))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if progress is not None:
            progress.update(1)
        if on_step is not None:
            on_step(step)
    model.eval()
