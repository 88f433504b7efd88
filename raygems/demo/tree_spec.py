"""What the tiny tree holds: its models, how each one is made, and what it is meant to show.

The same description serves both sides: the builder (`raygems.demo.builder`) trains the models from it, and
the assembler (`raygems.demo.tiny_tree`) writes model cards, hub metadata and broken copies from it around
the shipped weights.

`source` of a model says how it is made:
    ("main", step)                      a checkpoint of the main training run, taken after `step` steps
    ("finetune", parent_id, run)        a full fine-tune of another model of the tree
    ("lora", parent_id, run)            a LoRA adapter (r = 8) on another model of the tree
    ("noise", parent_id, scale)         another model's weights plus Gaussian noise (a ruined fine-tune)
    ("merge", first_id, second_id)      the average of two models' weights
    ("broken", copy_of_id, failure)     a copy of another model, broken in one way a backend must report
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from raygems.demo.builder.training import TrainingRun

#: Bump when the build changes in a way the configuration does not capture (invalidates the shipped files).
BUILDER_VERSION = "3"

BASE = "tiny-org/tiny-base"
INSTRUCT = "tiny-org/tiny-base-instruct"
GEM = "quietmath/tiny-arith-pro"
CHOICE_SPECIALIST = "quizbowl/tiny-closest"
MISSING_TENSOR = "model.layers.0.mlp.up_proj.weight"
UNKNOWN_MODEL_TYPE = "tinyfoo"

#: Intended failure of each broken checkpoint: the start of the CheckpointError reason the backends give.
BROKEN_FAILURES = {
    "hastyuploads/tiny-sft-missing-tensor": f"missing tensor {MISSING_TENSOR}",
    "hastyuploads/tiny-sft-corrupt": "corrupt safetensors file",
    "exotic-arch/tiny-foo": f"unsupported architecture {UNKNOWN_MODEL_TYPE!r}",
    "hastyuploads/tiny-sft-no-tokenizer": "missing tokenizer",
}

#: The main run's batches: three arithmetic examples for one multiple-choice example.
MAIN_MIXTURE = (("arith", 0.75), ("choice", 0.25))

#: The main run's length the branch runs were sized for (shorter test builds scale the branches with it).
REFERENCE_MAIN_STEPS = 800


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny models (about 130k parameters with a ~430-token vocabulary). Qwen3 rather than
    Qwen2: vLLM's CPU attention needs a head size of at least 32, and vLLM's Qwen2 ignores a configured one."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TinyTreeConfig:
    """Everything the builder's output depends on (its hash is recorded with the shipped files)."""

    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    vocab_size: int = 512
    train_items_per_task: int = 3000
    plain_fraction: float = 0.3     # share of training prompts rendered without the system prompt
    batch_size: int = 32
    lr: float = 3e-3
    main_steps: int = REFERENCE_MAIN_STEPS   # the main run; its checkpoints are the quality ladder
    seed: int = 0

    @classmethod
    def from_dict(cls, data: Mapping) -> "TinyTreeConfig":
        """The inverse of `dataclasses.asdict` (as recorded in a MANIFEST.json)."""
        return cls(**{**data, "model": TinyModelConfig(**data["model"])})

    def key(self) -> str:
        payload = json.dumps({"builder": BUILDER_VERSION, "config": asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the tree and how it is made (see the module docstring for `source`)."""

    model_id: str
    parent: str | None
    source: tuple
    downloads: int
    likes: int
    created_at: str
    description: str
    kind: str = "finetune"
    is_base: bool = False
    tags: tuple[str, ...] = ()
    role: str = ""

    @property
    def library(self) -> str:
        return "peft" if self.kind == "adapter" else "transformers"


def tree_specs(config: TinyTreeConfig) -> list[ModelSpec]:
    """The tree: 18 models (11 working full models, 3 LoRA adapters, 4 broken checkpoints)."""
    n = config.main_steps
    scale = n / REFERENCE_MAIN_STEPS
    step = {name: max(1, round(n * share)) for name, share in
            {"base": 0.375, "instruct": 0.45, "v1": 0.55, "sft": 0.625, "arith": 0.75, "gem": 1.0}.items()}
    both = {"arith": 1.0, "choice": 1.0}
    seed = config.seed

    def run(steps: int, lr: float, mixture: Mapping[str, float], run_seed: int) -> TrainingRun:
        return TrainingRun(steps=max(1, round(steps * scale)), lr=lr, mixture=tuple(mixture.items()), seed=run_seed,
                           batch_size=config.batch_size)

    return [
        ModelSpec(BASE, None, ("main", step["base"]), 48210, 412, "2025-01-10T09:00:00Z", kind="base",
                  is_base=True, role="root base (popular, far from the best)",
                  description="The tiny base model. Pretrained on short word problems and quizzes."),
        ModelSpec(INSTRUCT, BASE, ("main", step["instruct"]), 21877, 230, "2025-01-24T09:00:00Z", is_base=True,
                  role="official instruct version (popular)",
                  description="Instruction-tuned version of tiny-base: follows the chat format."),
        ModelSpec("mathwiz/tiny-math-v1", BASE, ("main", step["v1"]), 3412, 41, "2025-02-03T12:00:00Z",
                  tags=("math",), role="ladder", description="Tiny-base fine-tuned for arithmetic word problems."),
        ModelSpec("quickft/tiny-sft", BASE, ("main", step["sft"]), 1105, 17, "2025-02-17T16:30:00Z",
                  role="ladder", description="A supervised fine-tune of tiny-base."),
        ModelSpec("numbersmith/tiny-arith", BASE, ("main", step["arith"]), 640, 9, "2025-03-02T08:15:00Z",
                  tags=("math",), role="ladder", description="Arithmetic fine-tune of tiny-base."),
        ModelSpec(GEM, BASE, ("main", step["gem"]), 12, 0, "2025-03-29T21:40:00Z", tags=("math",),
                  role="hidden gem: best on toy_arith, few downloads",
                  description="Longer arithmetic training run on tiny-base."),
        ModelSpec(CHOICE_SPECIALIST, BASE, ("finetune", BASE, run(150, 3e-3, {"choice": 1.0}, seed + 11)),
                  2309, 25, "2025-02-11T10:00:00Z", tags=("multiple-choice",),
                  role="toy_choice specialist", description="Tiny-base fine-tuned on multiple-choice quizzes."),
        ModelSpec("chatfan/tiny-instruct-chat", INSTRUCT,
                  ("finetune", INSTRUCT, run(60, 1e-3, both, seed + 12)), 760, 8, "2025-03-12T14:00:00Z",
                  role="depth-2 fine-tune of the instruct version",
                  description="Tiny-base-instruct, further tuned on chat data."),
        ModelSpec("mergefan/tiny-sft-closest-merge", "quickft/tiny-sft",
                  ("merge", "quickft/tiny-sft", CHOICE_SPECIALIST), 388, 6, "2025-03-20T18:00:00Z",
                  kind="merge", tags=("merge",), role="merge (weight average) of two fine-tunes",
                  description="Linear merge (0.5/0.5) of quickft/tiny-sft and quizbowl/tiny-closest."),
        ModelSpec("oops/tiny-base-noisy", BASE, ("noise", BASE, 0.35), 890, 2, "2025-02-07T07:00:00Z",
                  role="ruined fine-tune (weights perturbed by noise)",
                  description="Tiny-base fine-tuned with a broken learning-rate schedule."),
        ModelSpec("loraworks/tiny-base-lora-arith", BASE,
                  ("lora", BASE, run(150, 1e-2, {"arith": 0.8, "choice": 0.2}, seed + 13)), 450, 5,
                  "2025-02-21T11:00:00Z", kind="adapter", tags=("lora", "math"), role="good LoRA adapter",
                  description="LoRA (r=8) adapter for tiny-base, trained on arithmetic."),
        ModelSpec("loraworks/tiny-base-lora-quick", BASE,
                  ("lora", BASE, run(40, 1e-2, both, seed + 14)), 1720, 12, "2025-02-14T11:00:00Z",
                  kind="adapter", tags=("lora",), role="mediocre LoRA adapter",
                  description="Quick LoRA (r=8) adapter for tiny-base."),
        ModelSpec("hastyuploads/tiny-sft-missing-tensor", BASE, ("broken", "quickft/tiny-sft", "missing_tensor"),
                  233, 1, "2025-02-18T09:00:00Z", role="broken: missing tensor",
                  description="Re-upload of a fine-tune."),
        ModelSpec("hastyuploads/tiny-sft-corrupt", BASE, ("broken", "quickft/tiny-sft", "corrupt"),
                  97, 0, "2025-02-19T09:00:00Z", role="broken: corrupt safetensors",
                  description="Re-upload of a fine-tune."),
        ModelSpec("exotic-arch/tiny-foo", BASE, ("broken", "numbersmith/tiny-arith", "unsupported_architecture"),
                  54, 1, "2025-03-05T09:00:00Z", role="broken: unsupported architecture",
                  description="Converted to the TinyFoo architecture."),
        ModelSpec("hastyuploads/tiny-sft-no-tokenizer", BASE, ("broken", "quickft/tiny-sft", "missing_tokenizer"),
                  31, 0, "2025-02-20T09:00:00Z", role="broken: missing tokenizer",
                  description="Weights only."),
        ModelSpec("mathwiz/tiny-math-v1-instruct", INSTRUCT,
                  ("finetune", INSTRUCT, run(80, 3e-3, {"arith": 1.0}, seed + 15)), 301, 3,
                  "2025-03-08T10:00:00Z", tags=("math",), role="depth-2 arithmetic fine-tune of the instruct version",
                  description="Tiny-base-instruct fine-tuned for arithmetic."),
        ModelSpec("loraworks/tiny-instruct-lora-closest", INSTRUCT,
                  ("lora", INSTRUCT, run(60, 1e-2, {"choice": 1.0}, seed + 16)), 143, 2,
                  "2025-03-15T11:00:00Z", kind="adapter", tags=("lora", "multiple-choice"),
                  role="LoRA adapter of the instruct version (depth 2)",
                  description="LoRA (r=8) adapter for tiny-base-instruct, trained on quizzes."),
    ]
