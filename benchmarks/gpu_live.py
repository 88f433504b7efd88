"""Live evaluation speed on a GPU: checkpoint load, decode step, tokens/s, and whole rounds, through Ray.

What it measures, per model size (random-weight checkpoints of real Qwen2.5 shapes, built here from
configs: weight values do not change throughput), for the transformers backend with the fast path off
(dynamic cache, a fresh module per checkpoint) and on (static cache, compiled decoding, weights swapped
into the kept module; raygems/backends/static_decoding.py, weight_swap.py):

* load: seconds to load a checkpoint (a full load, and on the fast path the in-place swap of the next
  checkpoint of the same architecture); page cache dropped first where the machine allows it;
* decode: milliseconds per decode step and generated tokens/s at each batch size, from the difference of
  two `generate` calls with different `max_new_tokens` (prefill and fixed costs cancel); the first call's
  time (compilation on the fast path) is reported apart; the floor is weight bytes / memory bandwidth;
* round: the wall time of a whole round, K checkpoints x n queries (both prompt variants: 2n generations
  each), on A real `ModelActor`s sharing the GPU (`num_gpus=1/A`; on CPU `num_cpus`), once with cold actors
  (compilation included) and once more with warm ones, against the bound max(K x load, decode floor).

The decode and load probes run in a Ray actor derived from `raygems.runtime.actors.ModelActor` that drives
the backend the way the actor's evaluator does (`raygems.backends.reuse.process_backend`); rounds run on
`ModelActor` itself (assign, evaluate, results written to a ResultStore).

Random weights would end rows at random end tokens; the special tokens' embedding and output rows are
zeroed, so their logit is exactly 0 and never the largest of ~150k: every row runs to `max_new_tokens`.

    python benchmarks/gpu_live.py --smoke                    # CPU, tiny model, < 2 minutes
    python benchmarks/gpu_live.py --sizes 0.5b --out DIR     # on the GPU machine (docs/performance.md)

Writes DIR/gpu_live.json (every number, the machine, the command) and DIR/gpu_live.md (tables), after every
measurement, so a run stopped by its time limit still leaves what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from raygems.runtime.actors import ModelActor  # noqa: E402

#: Qwen2.5 shapes (the configs of Qwen/Qwen2.5-{0.5B,1.5B,3B,7B}); vocabulary and all.
QWEN25_SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True),
}
COMMON_CONFIG = dict(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu",
                     use_sliding_window=False)
#: Default (round checkpoints K, actors A) per size: K copies must fit the 64 GiB disk, A models the GPU.
ROUND_DEFAULTS = {"0.5b": (8, 4), "1.5b": (6, 4), "3b": (4, 2), "7b": (3, 1), "tiny": (4, 2)}
FAST_SETTINGS = {"off": {"fast_decode": "off"}, "on": {"fast_decode": "static"}}


@dataclass
class BenchConfig:
    """What to measure. Times in seconds; `budget_s` stops starting new measurements after that long."""

    sizes: tuple[str, ...] = ("0.5b",)
    batches: tuple[int, ...] = (1, 32, 128, 256)
    fast: tuple[str, ...] = ("off", "on")
    device: str = "cuda"
    dtype: str = "bfloat16"
    prompt_tokens: int = 256
    short_tokens: int = 8
    long_tokens: int = 72
    repeats: int = 2
    load_checkpoints: int = 3
    round_checkpoints: int | None = None      # None: ROUND_DEFAULTS
    round_actors: int | None = None
    round_queries: int = 64
    round_new_tokens: int = 64
    round_batch: int = 64
    rounds: bool = True
    bandwidth_tbs: float = 2.6
    drop_caches: bool = True
    cache_bucket: int = 256
    compile: str = "auto"
    budget_s: float = 540.0
    work_dir: str = "/tmp/raygems-gpu-live"     # checkpoints and result stores (removed at the end)
    keep_work: bool = False
    out: str = "benchmarks/results/gpu_live"
    smoke: bool = False

    @classmethod
    def smoke_config(cls, out: str, budget_s: float = 110.0, work_dir: str | None = None) -> "BenchConfig":
        """CPU, a tiny model, everything small: the whole pipeline in well under 2 minutes."""
        return cls(sizes=("tiny",), batches=(1, 8), fast=("off", "on"), device="cpu", dtype="float32",
                   prompt_tokens=24, short_tokens=2, long_tokens=18, repeats=2, load_checkpoints=2,
                   round_checkpoints=3, round_actors=2, round_queries=4, round_new_tokens=8, round_batch=8,
                   drop_caches=False, cache_bucket=64, budget_s=budget_s, out=out,
                   work_dir=work_dir or str(Path(tempfile.gettempdir()) / "raygems-gpu-live-smoke"),
                   keep_work=work_dir is not None, smoke=True)


# -- checkpoints ------------------------------------------------------------------------------------------
def filler_tokenizer():
    """The tiny tree's kind of tokenizer (byte-level BPE, Qwen chat template), trained in a blink on
    filler text: no download. Its ids are a small subset of any vocabulary above."""
    from raygems.demo.builder.tokenizer import chat_text, train_tokenizer

    texts = [chat_text(" ".join(_words(k, 40))) for k in range(200)]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    tokenizer.model_max_length = 1 << 20
    return tokenizer


WORDS = ("apple river stone cloud seven market quiet engine garden number yellow bridge window letter "
         "summer paper silver forest planet answer doctor winter island coffee orange camera music").split()


def _words(seed: int, count: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [rng.choice(WORDS) for _ in range(count)]


def filler_text(tokenizer, seed: int, tokens: int) -> str:
    """Random words, about `tokens` tokens long."""
    words = _words(seed, max(1, tokens))
    while len(words) > 1 and len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) > tokens:
        words = words[: max(1, int(len(words) * 0.9))]
    return " ".join(words)


def model_config(size: str):
    from transformers import Qwen2Config

    shape = QWEN25_SHAPES[size]
    extra = {"max_position_embeddings": 4096} if size == "tiny" else {}
    return Qwen2Config(**{**COMMON_CONFIG, **shape, **extra}, bos_token_id=None, eos_token_id=None,
                       pad_token_id=None)


def build_checkpoints(size: str, count: int, folder: Path, dtype: str, device: str, tokenizer) -> list[Path]:
    """`count` random-weight checkpoints of `size` (different seeds), each a full local model folder."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, GenerationConfig

    config = model_config(size)
    config.dtype = dtype
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(p.shape) for name, p in skeleton.named_parameters()}   # tied weights once
    special = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens]
    make_on = device if device.startswith("cuda") else "cpu"
    folders = []
    for index in range(count):
        target = folder / f"{size}-{index}"
        if (target / "model.safetensors").is_file():
            folders.append(target)
            continue
        target.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator(device=make_on).manual_seed(1000 + index)
        tensors = {}
        for name, shape in shapes.items():
            if name.endswith("norm.weight"):
                tensor = torch.ones(shape, dtype=getattr(torch, dtype), device=make_on)
            else:
                tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=make_on)
                tensor.normal_(0.0, 0.02, generator=generator)
            if name.endswith(("embed_tokens.weight", "lm_head.weight")):
                tensor[special] = 0      # special tokens: logit exactly 0, never chosen (no early end)
            tensors[name] = tensor.cpu().contiguous()
        save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        config.save_pretrained(target)
        GenerationConfig(do_sample=False, eos_token_id=None, pad_token_id=None).save_pretrained(target)
        tokenizer.save_pretrained(target)
        folders.append(target)
    return folders


def weight_bytes(size: str, dtype: str) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model_config(size))
    element = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    return sum(p.numel() for p in skeleton.parameters()) * element


def drop_page_cache() -> bool:
    """Drop the OS page cache (root on Linux) so that a load reads the disk; False when not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


# -- the probe actor: a ModelActor that also times its backend ----------------------------------------------
class ProbeActor(ModelActor):
    """A model actor with two timing probes on the backend the evaluator would use in this process."""

    def probe_loads(self, settings: dict, folders: list[str], drop_caches: bool) -> list[dict]:
        """Load each checkpoint in turn: seconds and how (full / swap), page cache dropped first."""
        from raygems.backends.reuse import process_backend
        from raygems.hub.types import ModelRecord

        backend = process_backend("transformers", settings)
        loads = []
        for index, folder in enumerate(folders):
            dropped = drop_page_cache() if drop_caches else False
            _synchronize()
            started = time.perf_counter()
            backend.load(ModelRecord(model_id=f"bench/{Path(folder).name}", path=folder))
            _synchronize()
            loads.append({"checkpoint": index, "seconds": time.perf_counter() - started,
                          "how": backend.last_load.get("how"), "page_cache_dropped": dropped})
        return loads

    def probe_decode(self, settings: dict, folder: str, prompts: list[str], short_tokens: int, long_tokens: int,
                     repeats: int) -> dict:
        """Per-step time from two generate calls (`short_tokens`, `long_tokens` new tokens) on one batch."""
        from raygems.backends import GenerationRequest
        from raygems.backends.reuse import process_backend
        from raygems.hub.types import ModelRecord

        backend = process_backend("transformers", settings)
        backend.load(ModelRecord(model_id=f"bench/{Path(folder).name}", path=folder))

        def timed(new_tokens: int) -> tuple[float, list]:
            requests = [GenerationRequest(p, new_tokens) for p in prompts]
            _synchronize()
            started = time.perf_counter()
            outputs = backend.generate(requests)
            _synchronize()
            return time.perf_counter() - started, outputs

        first_s, _ = timed(long_tokens)                  # includes compilation on the fast path
        timed(short_tokens)                              # its shape too (same cache bucket: no new graph)
        graphs = _dynamo_graphs()
        short = min(timed(short_tokens)[0] for _ in range(repeats))
        long_runs = [timed(long_tokens) for _ in range(repeats)]
        long = min(seconds for seconds, _ in long_runs)
        outputs = long_runs[0][1]
        return {"first_call_s": first_s, "short_s": short, "long_s": long,
                "graphs_compiled_while_timing": _dynamo_graphs() - graphs,
                "completion_tokens": [o.completion_tokens for o in outputs],
                "prompt_tokens": [o.prompt_tokens for o in outputs], "settings": backend.settings(),
                "gpu_memory_gib": _gpu_memory_gib()}


    def release_backend(self) -> None:
        """Free this process's kept backend (so that a round starts cold, as a new slot would)."""
        from raygems.backends.reuse import release_process_backend

        self.unload()
        release_process_backend()


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _dynamo_graphs() -> int:
    """Graphs dynamo has compiled in this process (a rise while timing means a recompilation was timed)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _gpu_memory_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


# -- the benchmark -----------------------------------------------------------------------------------------
@dataclass
class Results:
    config: dict
    machine: dict
    command: str
    sizes: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_live.json").write_text(json.dumps(asdict(self), indent=1, default=str))
        (out / "gpu_live.md").write_text(markdown(self))


class Benchmark:
    def __init__(self, config: BenchConfig):
        self.config = config
        self.out = Path(config.out)
        self.work = Path(config.work_dir)
        self.started = time.perf_counter()
        self.results = Results(config=asdict(config), machine=machine_info(config), command=" ".join(sys.argv))
        self.tokenizer = None

    # -- bookkeeping
    def left_s(self) -> float:
        return self.config.budget_s - (time.perf_counter() - self.started)

    def allowed(self, what: str, needs_s: float = 0.0) -> bool:
        if self.left_s() > needs_s:
            return True
        self.results.skipped.append(f"{what}: time budget ({self.config.budget_s:.0f} s) spent")
        print(f"skipped {what}: time budget spent", flush=True)
        return False

    def save(self) -> None:
        for entry in self.results.sizes.values():
            update_bounds(entry, self.config)
        self.results.write(self.out)

    def resources(self, actors: int) -> dict:
        if self.config.device.startswith("cuda"):
            return {"num_gpus": 1.0 / actors, "num_cpus": 1}
        return {"num_cpus": 0.5}

    def settings(self, fast: str, batch: int) -> dict:
        c = self.config
        return {"device": c.device, "dtype": c.dtype, "batch_size": batch, "cache_bucket": c.cache_bucket,
                "compile": c.compile, "use_stop_strings": False, **FAST_SETTINGS[fast]}

    # -- main
    def run(self) -> Results:
        import ray

        self.tokenizer = filler_tokenizer()
        self.pool = self.query_pool()
        self.pool_ref = ray.put(self.pool)
        if ProbeActor.__module__ != "__main__":   # imported (tests): ship the probe class to the workers by value
            ray.cloudpickle.register_pickle_by_value(sys.modules[ProbeActor.__module__])
        for size in self.config.sizes:
            if not self.allowed(f"size {size}"):
                break
            self.results.sizes[size] = entry = {"weight_bytes": weight_bytes(size, self.config.dtype)}
            entry["floor_ms_per_step"] = entry["weight_bytes"] / (self.config.bandwidth_tbs * 1e12) * 1e3
            k, _ = self.round_shape(size)
            count = max(self.config.load_checkpoints, k if self.config.rounds else 0, 2)
            started = time.perf_counter()
            folders = build_checkpoints(size, count, self.work / "checkpoints", self.config.dtype,
                                        self.config.device, self.tokenizer)
            entry["build_checkpoints_s"] = time.perf_counter() - started
            print(f"[{size}] {count} checkpoints built in {entry['build_checkpoints_s']:.1f} s", flush=True)
            self.save()
            self.measure(size, entry, folders)
            shutil.rmtree(self.work / "checkpoints", ignore_errors=True)   # the GPU machine's disk holds 64 GiB
        self.results.finished = time.time()
        self.save()
        if not self.config.keep_work:   # only what this run made: checkpoints/ and store-*/
            for made in [self.work / "checkpoints", *self.work.glob("store-*")]:
                shutil.rmtree(made, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.work.rmdir()
        return self.results

    def round_shape(self, size: str) -> tuple[int, int]:
        k, actors = ROUND_DEFAULTS[size]
        return self.config.round_checkpoints or k, self.config.round_actors or actors

    def query_pool(self):
        """n queries of filler text (~prompt_tokens tokens) with the round's token limit, no stop strings."""
        import pandas as pd

        from raygems.tasks.pool import POOL_COLUMNS, QueryPool

        rows = []
        for index in range(self.config.round_queries):
            content = filler_text(self.tokenizer, 10_000 + index, self.config.prompt_tokens)
            rows.append({"query_id": f"bench/{index:04d}", "task": "toy_arith", "source_id": str(index),
                         "messages": json.dumps([{"role": "user", "content": content}]), "reference": "0",
                         "max_new_tokens": self.config.round_new_tokens, "stop": "[]", "extra": "{}"})
        return QueryPool(pd.DataFrame(rows, columns=list(POOL_COLUMNS)), tasks=("bench",))

    def actors(self, fast: str, count: int) -> list:
        """`count` probe-capable model actors sharing the device, built for fast path setting `fast`."""
        import ray

        from raygems.runtime.evaluation import EvaluatorSpec

        c = self.config
        spec = EvaluatorSpec(backend="transformers", settings=self.settings(fast, c.round_batch))
        store = str(self.work / f"store-{fast}")
        actor_class = ray.remote(max_restarts=0)(ProbeActor)
        slots = [actor_class.options(**self.resources(count)).remote(spec, self.pool_ref, store, 1 if c.smoke else 4)
                 for _ in range(count)]
        ray.get([slot.pid.remote() for slot in slots])
        return slots

    def measure(self, size: str, entry: dict, folders: list[Path]) -> None:
        """Per fast path setting, in fresh actor processes (no compiled state shared between settings):
        load and decode probes on the first actor, then the rounds on all of them."""
        import ray

        from raygems.tasks.prompting import render_prompt

        c = self.config
        for key in ("load", "decode", "round"):
            entry.setdefault(key, [])
        k, count = self.round_shape(size)
        prompts = [render_prompt(self.tokenizer, [{"role": "user", "content": filler_text(
            self.tokenizer, seed, c.prompt_tokens)}], None) for seed in range(max(c.batches))]
        for fast in c.fast:
            if not self.allowed(f"[{size}] fast={fast}", 30):
                continue
            started = time.perf_counter()
            slots = self.actors(fast, count if c.rounds else 1)
            actor_start_s = time.perf_counter() - started
            try:
                self.probe(size, entry, fast, slots[0], folders, prompts)
                if c.rounds:
                    ray.get([slot.release_backend.remote() for slot in slots])
                    self.round(size, entry, fast, slots, folders[:k], actor_start_s)
            except ray.exceptions.GetTimeoutError:
                self.results.skipped.append(f"[{size}] fast={fast}: timed out")
            finally:
                for slot in slots:
                    ray.kill(slot)

    def probe(self, size: str, entry: dict, fast: str, actor, folders: list[Path], prompts: list[str]) -> None:
        import ray

        c = self.config
        paths = [str(f) for f in folders[: c.load_checkpoints]]
        loads = ray.get(actor.probe_loads.remote(self.settings(fast, max(c.batches)), paths, c.drop_caches),
                        timeout=max(60.0, self.left_s()))
        for load in loads:
            entry["load"].append({"fast": fast, **load})
            print(f"[{size}] load fast={fast} #{load['checkpoint']} {load['how']}: {load['seconds']:.2f} s", flush=True)
        self.save()
        for batch in c.batches:
            if not self.allowed(f"[{size}] decode fast={fast} batch={batch}", 20):
                break
            probe = ray.get(actor.probe_decode.remote(self.settings(fast, batch), str(folders[0]), prompts[:batch],
                                                      c.short_tokens, c.long_tokens, c.repeats),
                            timeout=max(60.0, self.left_s()))
            row = decode_row(fast, batch, probe, c, entry["floor_ms_per_step"])
            entry["decode"].append(row)
            print(f"[{size}] decode fast={fast} batch={batch}: {_fmt(row['step_ms'], '.2f')} ms/step, "
                  f"{_fmt(row['tokens_per_s'], ',.0f')} tok/s, first call {row['first_call_s']:.1f} s", flush=True)
            self.save()

    def round(self, size: str, entry: dict, fast: str, slots: list, folders: list[Path], actor_start_s: float) -> None:
        from raygems.hub.types import ModelRecord

        import ray

        records = [ModelRecord(model_id=f"bench/{f.name}", path=str(f)) for f in folders]
        for label, order in (("cold", records), ("warm", records[1:] + records[:1])):
            if not self.allowed(f"[{size}] round fast={fast} {label}", 30):
                break
            before = ray.get([slot.stats.remote() for slot in slots])
            wall = run_round(slots, order, self.pool.query_ids, timeout=max(60.0, self.left_s()))
            after = ray.get([slot.stats.remote() for slot in slots])
            row = round_row(fast, label, wall, len(records), len(slots), entry, self.config, before, after)
            row["actor_start_s"] = actor_start_s
            entry["round"].append(row)
            update_bounds(entry, self.config)
            print(f"[{size}] round fast={fast} {label}: K={row['checkpoints']} x n={row['queries']} on {len(slots)} "
                  f"actors: {wall:.1f} s (bound so far {row['bound_s']:.2f} s, x{_fmt(row['wall_over_bound'], '.1f')})", flush=True)
            self.save()


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def run_round(slots, records, query_ids: list[str], timeout: float) -> float:
    """Every checkpoint answers every query; a free actor takes the next checkpoint (as the driver does).
    Returns the wall time."""
    import ray

    started = time.perf_counter()
    queue = list(records)
    running = {}
    for slot in slots:
        if queue:
            slot.assign.remote(queue.pop(0))
            running[slot.evaluate.remote(query_ids)] = slot
    while running:
        done, _ = ray.wait(list(running), num_returns=1, timeout=max(1.0, timeout - (time.perf_counter() - started)))
        if not done:
            raise ray.exceptions.GetTimeoutError("round timed out")
        slot = running.pop(done[0])
        ray.get(done[0])
        if queue:
            slot.assign.remote(queue.pop(0))
            running[slot.evaluate.remote(query_ids)] = slot
    return time.perf_counter() - started


def decode_row(fast: str, batch: int, probe: dict, config: BenchConfig, floor_ms: float) -> dict:
    """Step time from the difference of the two calls (None when noise made the longer call no slower)."""
    steps = config.long_tokens - config.short_tokens
    step_s = (probe["long_s"] - probe["short_s"]) / steps if probe["long_s"] > probe["short_s"] else None
    generated = sum(probe["completion_tokens"])
    return {"fast": fast, "batch": batch, "step_ms": step_s * 1e3 if step_s else None,
            "tokens_per_s": batch / step_s if step_s else None,
            "end_to_end_tokens_per_s": generated / probe["long_s"], "first_call_s": probe["first_call_s"],
            "short_s": probe["short_s"], "long_s": probe["long_s"],
            "x_floor": step_s * 1e3 / floor_ms if step_s else None,
            "all_rows_full_length": min(probe["completion_tokens"]) == config.long_tokens,
            "mean_prompt_tokens": sum(probe["prompt_tokens"]) / len(probe["prompt_tokens"]),
            "graphs_compiled_while_timing": probe["graphs_compiled_while_timing"],
            "gpu_memory_gib": probe["gpu_memory_gib"], "settings": probe["settings"]}


def round_row(fast: str, label: str, wall: float, k: int, actors: int, entry: dict, config: BenchConfig,
              before: list[dict], after: list[dict]) -> dict:
    """One round's measurement (its bound is filled in by `update_bounds`)."""
    generations = 2 * config.round_queries            # both prompt variants (the model has a system prompt)
    steps = k * math.ceil(generations / config.round_batch) * config.round_new_tokens
    return {"fast": fast, "rounds_label": label, "checkpoints": k, "queries": config.round_queries,
            "generations_per_checkpoint": generations, "new_tokens": config.round_new_tokens,
            "batch": config.round_batch, "decode_steps": steps, "actors": actors, "wall_s": wall,
            "generated_tokens_per_s": k * generations * config.round_new_tokens / wall,
            "actor_loads": [b["loads"] - a["loads"] for a, b in zip(before, after)],
            "actor_load_s": [round(b["load_seconds"] - a["load_seconds"], 2) for a, b in zip(before, after)]}


def update_bounds(entry: dict, config: BenchConfig) -> None:
    """Each round's bound: max(K x the fastest checkpoint load measured for this size on any path, decode
    floor), the decode floor being the weight bytes read once per decode step, at the memory bandwidth, for
    every batch of every checkpoint (actors sharing one GPU share its bandwidth)."""
    loads = [load["seconds"] for load in entry.get("load", [])]
    for row in entry.get("round", []):
        row["decode_floor_s"] = row["decode_steps"] * entry["weight_bytes"] / (config.bandwidth_tbs * 1e12)
        row["load_bound_s"] = row["checkpoints"] * min(loads) if loads else 0.0
        row["bound_s"] = max(row["load_bound_s"], row["decode_floor_s"])
        row["wall_over_bound"] = row["wall_s"] / row["bound_s"] if row["bound_s"] else None


def machine_info(config: BenchConfig) -> dict:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def markdown(results: Results) -> str:
    m = results.machine
    lines = [f"# gpu_live: {m.get('gpu', 'CPU')} ({m.get('cpus')} CPUs), torch {m.get('torch')}, "
             f"transformers {m.get('transformers')}, ray {m.get('ray')}", "",
             f"Command: `{results.command}`", ""]
    for size, entry in results.sizes.items():
        lines += [f"## {size}: {entry['weight_bytes'] / 2**30:.2f} GiB of weights, "
                  f"floor {entry['floor_ms_per_step']:.2f} ms per decode step", ""]
        if entry.get("load"):
            lines += ["| fast path | checkpoint | how | load s | page cache dropped |", "|---|---|---|---|---|"]
            lines += [f"| {r['fast']} | {r['checkpoint']} | {r['how']} | {r['seconds']:.2f} | {r['page_cache_dropped']} |"
                      for r in entry["load"]]
            lines.append("")
        if entry.get("decode"):
            lines += ["| fast path | batch | ms / step | x floor | tokens/s (decode) | tokens/s (end to end) | "
                      "first call s | all rows full length | graphs compiled while timing |",
                      "|---|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['fast']} | {r['batch']} | {_fmt(r['step_ms'], '.2f')} | {_fmt(r['x_floor'], '.1f')} | "
                      f"{_fmt(r['tokens_per_s'], ',.0f')} | "
                      f"{r['end_to_end_tokens_per_s']:,.0f} | {r['first_call_s']:.1f} | {r['all_rows_full_length']} | "
                      f"{r['graphs_compiled_while_timing']} |"
                      for r in entry["decode"]]
            lines.append("")
        if entry.get("round"):
            lines += ["| fast path | actors | round | K x n (x2 variants) | wall s | bound s (load, decode floor) | "
                      "wall / bound | tokens/s |", "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['fast']} | {r['actors']} | {r['rounds_label']} | {r['checkpoints']} x {r['queries']} | "
                      f"{r['wall_s']:.1f} | {r['bound_s']:.1f} ({r['load_bound_s']:.1f}, {r['decode_floor_s']:.2f}) | "
                      f"{_fmt(r['wall_over_bound'], '.1f')} | {r['generated_tokens_per_s']:,.0f} |" for r in entry["round"]]
            lines.append("")
    if results.skipped:
        lines += ["Skipped:", ""] + [f"* {s}" for s in results.skipped] + [""]
    return "\n".join(lines)


def ensure_ray(config: BenchConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                              "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled",
                                                           "PYTHONPATH": os.pathsep.join(
                                                               p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                                               if p)}}}
    if config.smoke:
        kwargs["num_cpus"] = 2
    ray.init(**kwargs)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, < 2 minutes")
    parser.add_argument("--sizes", default="0.5b", help=f"comma-separated, of {sorted(QWEN25_SHAPES)}")
    parser.add_argument("--batches", default="1,32,128,256")
    parser.add_argument("--fast", default="off,on", help="fast path settings to compare: off,on")
    parser.add_argument("--no-rounds", action="store_true", help="decode and load probes only")
    parser.add_argument("--round-checkpoints", type=int, default=None, help="K (default per size)")
    parser.add_argument("--round-actors", type=int, default=None, help="A actors sharing the GPU (default per size)")
    parser.add_argument("--round-queries", type=int, default=64)
    parser.add_argument("--round-new-tokens", type=int, default=64)
    parser.add_argument("--round-batch", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--load-checkpoints", type=int, default=3, help="checkpoints loaded in turn by the load probe")
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="start no new measurement after this many seconds (a run call allows 600)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--no-drop-caches", action="store_true")
    parser.add_argument("--work-dir", default="/tmp/raygems-gpu-live")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results/gpu_live[_smoke])")
    args = parser.parse_args(argv)
    if args.smoke:
        return BenchConfig.smoke_config(args.out or str(REPO / "benchmarks" / "results" / "gpu_live_smoke"))
    sizes = tuple(s.strip().lower() for s in args.sizes.split(",") if s.strip())
    unknown = [s for s in sizes if s not in QWEN25_SHAPES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; expected some of {sorted(QWEN25_SHAPES)}")
    fast = tuple(f.strip() for f in args.fast.split(",") if f.strip())
    if not fast or any(f not in FAST_SETTINGS for f in fast):
        parser.error(f"--fast must list some of {sorted(FAST_SETTINGS)}, got {args.fast!r}")
    batches = tuple(int(b) for b in args.batches.split(","))
    if any(b < 1 for b in batches):
        parser.error(f"--batches must be positive integers, got {args.batches!r}")
    import torch

    if not torch.cuda.is_available():
        parser.error("the full benchmark needs a CUDA GPU; use --smoke on CPU")
    return BenchConfig(sizes=sizes, batches=batches, fast=fast, rounds=not args.no_rounds,
                       round_checkpoints=args.round_checkpoints, round_actors=args.round_actors,
                       round_queries=args.round_queries, round_new_tokens=args.round_new_tokens,
                       round_batch=args.round_batch, prompt_tokens=args.prompt_tokens, budget_s=args.budget_s,
                       load_checkpoints=max(2, args.load_checkpoints),
                       compile=args.compile, drop_caches=not args.no_drop_caches, work_dir=args.work_dir,
                       out=args.out or str(REPO / "benchmarks" / "results" / "gpu_live"))


def main(argv: list[str] | None = None) -> Results:
    config = parse_args(argv)
    import torch

    torch.set_num_threads(1 if config.smoke else 4)
    ensure_ray(config)
    results = Benchmark(config).run()
    print(f"wrote {Path(config.out) / 'gpu_live.json'} and gpu_live.md", flush=True)
    return results


if __name__ == "__main__":
    main()
