"""Training the tiny tree's weights, and writing them as the files the package ships.

The models are trained on the toy tasks' training items (`raygems.demo.toy_tasks`), one torch thread per process:
one main run whose checkpoints are the quality ladder, then branches (fine-tunes and LoRA adapters of saved
models) in a second process when there are two cores, then the models made without training (a noisy copy,
a merge). The result is a folder of built files:

    MANIFEST.json                       builder version, configuration, where it was built, sha256 of every file,
                                        and the accuracies measured when it was built (when asked)
    common/                             config.json, generation_config.json and the tokenizer (shared by every
                                        full model)
    models/<org>/<name>/                model.safetensors, or adapter_model.safetensors + adapter_config.json
                                        (the base named by hub id)

`raygems.demo.tiny_tree.install_tiny_tree(files=...)` turns such a folder into the tree. Two builds on one
machine give byte-identical files; builds on CPUs with different float kernels do not (which is why the
package ships one).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from raygems.demo.builder.branches import (
    WORK_DIR,
    BranchJob,
    error_file,
    mark_ready,
    read_progress,
    run_branches,
    write_job_file,
)
from raygems.demo.builder.training import Example, TrainingRun, encode_examples, make_model, train
from raygems.demo.tiny_tree import COMMON_FILES, FILES_MANIFEST, _sha256
from raygems.demo.tree_spec import BUILDER_VERSION, MAIN_MIXTURE, ModelSpec, TinyTreeConfig, tree_specs

ADAPTER_CONFIG = "adapter_config.json"


def build_files(out: str | os.PathLike, config: TinyTreeConfig | None = None, *, workers: int | None = None,
                progress: bool = True) -> Path:
    """Train every model of the tree and write the built files to `out` (created; must not exist or be empty).

    `workers`: 2 trains the branches in a second process while the main run goes on; 1 does everything in
    this process; None picks 2 when the machine has at least 2 cores. Both give the same weights.
    """
    if workers is None:
        workers = 2 if (os.cpu_count() or 1) >= 2 else 1
    if workers not in (1, 2):
        raise ValueError(f"workers must be 1 or 2, got {workers!r}")
    config = config or TinyTreeConfig()
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: build into a new folder")
    staging = out / ".staging"
    started = time.perf_counter()
    _Trainer(staging, config, progress, workers).train()
    export_files(staging, out, config, seconds=time.perf_counter() - started)
    shutil.rmtree(staging)
    return out


def export_files(staging: Path, out: Path, config: TinyTreeConfig, seconds: float) -> None:
    """Write the built-files layout from a folder of trained models in the local hub layout."""
    specs = [s for s in tree_specs(config) if s.source[0] != "broken"]
    full = [s for s in specs if s.kind != "adapter"]
    (out / "common").mkdir(parents=True, exist_ok=True)
    for name in COMMON_FILES:
        first = staging / full[0].model_id / name
        if not first.is_file():
            continue
        for spec in full[1:]:   # one copy is enough only if every full model has the same file
            if (staging / spec.model_id / name).read_bytes() != first.read_bytes():
                raise RuntimeError(f"{name} of {spec.model_id} differs from {full[0].model_id}'s")
        shutil.copyfile(first, out / "common" / name)
    for spec in specs:
        target = out / "models" / spec.model_id
        target.mkdir(parents=True, exist_ok=True)
        source = staging / spec.model_id
        if spec.kind == "adapter":
            shutil.copyfile(source / "adapter_model.safetensors", target / "adapter_model.safetensors")
            adapter = json.loads((source / ADAPTER_CONFIG).read_text())
            adapter["base_model_name_or_path"] = spec.parent   # by hub id, as an upload to the hub names it
            adapter["target_modules"] = sorted(adapter["target_modules"])   # peft keeps a set: any order
            (target / ADAPTER_CONFIG).write_text(json.dumps(adapter, indent=2, sort_keys=True) + "\n")
        else:
            shutil.copyfile(source / "model.safetensors", target / "model.safetensors")
    write_files_manifest(out, config, seconds)


def write_files_manifest(out: Path, config: TinyTreeConfig, seconds: float,
                         accuracy: dict[str, dict[str, float]] | None = None) -> None:
    files = {p.relative_to(out).as_posix(): _sha256(p) for p in sorted(out.rglob("*"))
             if p.is_file() and p.name != FILES_MANIFEST and ".staging" not in p.parts}
    manifest = {"builder_version": BUILDER_VERSION, "config": asdict(config), "key": config.key(),
                "built_on": machine_description(seconds), "accuracy_at_build": accuracy or {}, "files": files}
    (out / FILES_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def machine_description(seconds: float) -> dict[str, Any]:
    """Where and with what a build ran (its weights depend on the CPU's float kernels)."""
    import tokenizers
    import torch
    import transformers

    try:
        import peft
        peft_version = peft.__version__
    except ImportError:  # pragma: no cover
        peft_version = None
    return {"cpu": cpu_model(), "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "peft": peft_version, "build_seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), e.g. 'AMD EPYC' or 'Intel(R) Xeon(R) Platinum 8481C'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class _Trainer:
    """Trains the tree's models into `root` in the local hub layout (one instance per build)."""

    def __init__(self, root: Path, config: TinyTreeConfig, progress: bool, workers: int) -> None:
        self.root, self.config, self.progress, self.workers = root, config, progress, workers
        self.specs = {s.model_id: s for s in tree_specs(config)}
        self.states: dict[str, dict] = {}          # model id -> state dict (main-run checkpoints)

    def folder(self, model_id: str) -> Path:
        return self.root / model_id

    def train(self) -> None:
        import torch
        from tqdm.auto import tqdm
        from transformers.utils import logging as hf_logging

        self.root.mkdir(parents=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the machine is shared
        hf_logging.disable_progress_bar()
        try:
            tokenizer, pools = self._data()
            jobs = [BranchJob(spec.model_id, spec.source[1], spec.source[0], spec.source[2])
                    for spec in self.specs.values() if spec.source[0] in ("finetune", "lora")]
            total = self.config.main_steps + sum(job.run.steps for job in jobs)
            with tqdm(total=total, desc="tiny tree: training", unit="step", disable=not self.progress) as bar:
                worker = self._start_worker(jobs, pools, tokenizer.pad_token_id) if self.workers > 1 else None
                self._main_run(tokenizer, pools, bar, worker)
                if worker is None:
                    run_branches(self.root, jobs, pools, tokenizer.pad_token_id, progress=bar.update)
                else:
                    self._wait_for(worker, bar)
            for spec in self.specs.values():
                if spec.source[0] in ("noise", "merge"):
                    self._derive(spec, tokenizer)
        finally:
            torch.set_num_threads(threads)
            hf_logging.enable_progress_bar()
        shutil.rmtree(self.root / WORK_DIR, ignore_errors=True)

    def _data(self):
        from raygems.demo.builder.tokenizer import chat_text, train_tokenizer
        from raygems.demo.toy_tasks import generate_items, ideal_completion

        n, seed = self.config.train_items_per_task, self.config.seed
        items = {"arith": generate_items("toy_arith", n, seed), "choice": generate_items("toy_choice", n, seed)}
        texts = [chat_text(item["messages"][0]["content"], ideal_completion(item), system=system)
                 for pool in items.values() for k, item in enumerate(pool)
                 for system in ([None, ""] if k % 4 == 0 else [None])]
        tokenizer = train_tokenizer(texts, self.config.vocab_size)
        pools = {name: encode_examples(tokenizer, pool, ideal_completion, self.config.plain_fraction, seed + k)
                 for k, (name, pool) in enumerate(items.items())}
        return tokenizer, pools

    def _start_worker(self, jobs, pools, pad_id: int) -> subprocess.Popen:
        """The branch trainings in a second process (a second core), started now: each branch begins as
        soon as the main run has saved the model it starts from."""
        import raygems

        job_file = write_job_file(self.root, jobs, pools, pad_id)
        package_parent = str(Path(raygems.__file__).resolve().parents[1])
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
        log = open(self.root / WORK_DIR / "branches.log", "wb")
        try:
            return subprocess.Popen([sys.executable, "-m", "raygems.demo.builder.branches", str(job_file)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def _wait_for(self, worker: subprocess.Popen, bar) -> None:
        done_main = bar.n
        while worker.poll() is None:
            bar.n = done_main + read_progress(self.root)
            bar.refresh()
            time.sleep(0.2)
        bar.n = done_main + read_progress(self.root)
        bar.refresh()
        if worker.returncode != 0:
            error = error_file(self.root)
            log = self.root / WORK_DIR / "branches.log"
            detail = error.read_text() if error.exists() else log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"tiny tree: the branch worker failed (exit {worker.returncode}):\n{detail}")

    def _main_run(self, tokenizer, pools: dict[str, list[Example]], bar, worker) -> None:
        config = self.config
        wanted: dict[int, list[str]] = {}
        for spec in self.specs.values():
            if spec.source[0] == "main":
                wanted.setdefault(spec.source[1], []).append(spec.model_id)
        model = make_model(config.model, tokenizer, config.seed)
        run = TrainingRun(steps=config.main_steps, lr=config.lr, mixture=MAIN_MIXTURE,
                          batch_size=config.batch_size, seed=config.seed)

        def on_step(step: int) -> None:
            for model_id in wanted.get(step, ()):
                self.states[model_id] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self._save_full(model, tokenizer, model_id)
                mark_ready(self.root, model_id)
            bar.update(1)
            if worker is not None and step % 10 == 0:
                bar.n = step + read_progress(self.root)
                bar.refresh()

        train(model, pools, run, tokenizer.pad_token_id, on_step=on_step)
        self.template = model  # a module of the right shape, reused to save derived state dicts

    def _derive(self, spec: ModelSpec, tokenizer) -> None:
        """Models made from others without training: a noisy copy, a merge."""
        kind = spec.source[0]
        if kind == "noise":
            _, parent, scale = spec.source
            state = _noisy(self._state(parent), scale, self.config.seed + 7)
        else:
            _, first, second = spec.source
            a, b = self._state(first), self._state(second)
            state = {k: (v + b[k]) / 2 for k, v in a.items()}
        self.template.load_state_dict(state)
        self._save_full(self.template, tokenizer, spec.model_id)

    def _state(self, model_id: str) -> dict:
        """A saved full model's weights (tied output embedding filled in)."""
        if model_id not in self.states:
            from safetensors.torch import load_file

            state = load_file(str(self.folder(model_id) / "model.safetensors"))
            if "lm_head.weight" in self.template.state_dict() and "lm_head.weight" not in state:
                state["lm_head.weight"] = state["model.embed_tokens.weight"]
            self.states[model_id] = state
        return self.states[model_id]

    def _save_full(self, model, tokenizer, model_id: str) -> None:
        folder = self.folder(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def _noisy(state: dict, scale: float, seed: int) -> dict:
    """Every weight matrix plus Gaussian noise of `scale` times its own standard deviation."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    noisy = {}
    for name, tensor in state.items():
        if tensor.dim() >= 2 and tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            noisy[name] = tensor + scale * tensor.std() * noise
        else:
            noisy[name] = tensor.clone()
    return noisy
