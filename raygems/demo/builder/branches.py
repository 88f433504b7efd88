"""The tiny tree's branch trainings: full fine-tunes and LoRA adapters of models already saved in the tree.

They run after the main training run, either in the builder's own process or, to use a second core, in a
worker process started as ``python -m raygems.demo.builder.branches JOB_FILE`` (a plain subprocess, so that it
never re-imports the caller's ``__main__`` as multiprocessing's spawn would). The worker starts each
branch as soon as the builder has saved the model it starts from (a marker file per saved model) and
reports its progress in a small file. Both ways give the same weights: one torch thread, fixed seeds, and
the parent's weights read back from the same safetensors file.
"""
from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from raygems.demo.builder.training import Example, TrainingRun, train

WORK_DIR = ".work"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_RANK = 8


@dataclass(frozen=True)
class BranchJob:
    """Train `model_id` from the saved model `parent`: a full fine-tune ("finetune") or a LoRA adapter
    ("lora") with `run`."""

    model_id: str
    parent: str
    kind: str
    run: TrainingRun


def ready_marker(root: Path, model_id: str) -> Path:
    """The file whose existence says that `model_id` is completely saved under `root`."""
    return root / WORK_DIR / "ready" / model_id.replace("/", "__")


def mark_ready(root: Path, model_id: str) -> None:
    marker = ready_marker(root, model_id)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def run_branch(root: Path, job: BranchJob, pools: Mapping[str, Sequence[Example]], pad_id: int,
               progress: Callable[[int], None] | None = None) -> None:
    """Train one branch and save it to root/<model_id>/ (tokenizer included for full models only:
    an adapter folder without a tokenizer makes loaders use the base model's)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(job.run.seed)  # LoRA's initialisation: same weights in-process or in the worker
    parent_dir = (root / job.parent).resolve()  # absolute: peft writes it into adapter_config.json as given
    target = root / job.model_id
    model = AutoModelForCausalLM.from_pretrained(str(parent_dir), dtype="float32")
    if job.kind == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0, bias="none",
                            task_type="CAUSAL_LM", target_modules=list(LORA_TARGETS))
        model = get_peft_model(model, config)
    elif job.kind != "finetune":
        raise ValueError(f"branch {job.model_id}: kind must be 'finetune' or 'lora', got {job.kind!r}")
    train(model, pools, job.run, pad_id, on_step=(lambda step: progress(1)) if progress else None)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    if job.kind == "finetune":
        for name in TOKENIZER_FILES:
            if (parent_dir / name).is_file():
                shutil.copy2(parent_dir / name, target / name)
    mark_ready(root, job.model_id)


def run_branches(root: Path, jobs: Sequence[BranchJob], pools: Mapping[str, Sequence[Example]], pad_id: int,
                 progress: Callable[[int], None] | None = None, wait_seconds: float = 3600.0) -> None:
    """Run `jobs` in order, each once its parent is saved (its ready marker exists)."""
    for job in jobs:
        deadline = time.monotonic() + wait_seconds
        while not ready_marker(root, job.parent).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"branch {job.model_id}: parent {job.parent} was never saved")
            time.sleep(0.1)
        run_branch(root, job, pools, pad_id, progress)


# ----------------------------------------------------------------------------------------------------
# worker process
# ----------------------------------------------------------------------------------------------------
def write_job_file(root: Path, jobs: Sequence[BranchJob], pools: Mapping[str, Sequence[Example]],
                   pad_id: int) -> Path:
    path = root / WORK_DIR / "branches.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump({"root": str(root), "jobs": list(jobs), "pools": dict(pools), "pad_id": pad_id}, handle)
    return path


def progress_file(root: Path) -> Path:
    return root / WORK_DIR / "branches.progress"


def error_file(root: Path) -> Path:
    return root / WORK_DIR / "branches.error"


def read_progress(root: Path) -> int:
    try:
        return int(progress_file(root).read_text() or 0)
    except (OSError, ValueError):
        return 0


def _worker(job_file: str) -> int:
    import torch

    torch.set_num_threads(1)
    with open(job_file, "rb") as handle:
        payload = pickle.load(handle)
    root = Path(payload["root"])
    done = [0]
    last_write = [0.0]

    def progress(steps: int) -> None:
        done[0] += steps
        now = time.monotonic()
        if now - last_write[0] > 0.25:
            progress_file(root).write_text(str(done[0]))
            last_write[0] = now

    try:
        run_branches(root, payload["jobs"], payload["pools"], payload["pad_id"], progress)
    except BaseException:
        error_file(root).write_text(traceback.format_exc())
        return 1
    progress_file(root).write_text(str(done[0]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(_worker(sys.argv[1]))

