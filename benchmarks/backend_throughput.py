"""Benchmark: generation throughput of a backend on the tiny tree (300 toy_arith prompts, system prompt).

    python benchmarks/backend_throughput.py transformers '{"batch_size": 64}'
    .venv-vllm/bin/python benchmarks/backend_throughput.py vllm '{"max_model_len": 256, "max_lora_rank": 8}'

For the hidden gem (a full model) and the good LoRA adapter of the base, prints one JSON line each: load
seconds (the first includes importing the libraries; vLLM's includes starting its engine), generation
seconds, generated tokens per second and accuracy. Results measured on the project's machines are
recorded in docs/backends.md.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    import torch

    from raygems.backends import GenerationRequest, get_backend
    from raygems.demo import install_tiny_tree
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    torch.set_num_threads(1)
    name, settings = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    tree = install_tiny_tree(os.environ.get("RAYGEMS_TINY_TREE_DIR"))
    backend = get_backend(name, **settings)
    task = get_task("toy_arith")
    queries = task.load()
    for model_id in (tree.hidden_gem, "loraworks/tiny-base-lora-arith"):
        started = time.perf_counter()
        backend.load(tree.record(model_id))
        load_seconds = time.perf_counter() - started
        requests = [GenerationRequest(render_variant(backend.tokenizer, q["messages"], "system"),
                                      task.max_new_tokens, tuple(task.stop)) for q in queries]
        backend.generate(requests[:8])  # warm-up
        started = time.perf_counter()
        outputs = backend.generate(requests)
        seconds = time.perf_counter() - started
        tokens = sum(o.completion_tokens for o in outputs)
        accuracy = sum(task.score(q, o.text) for q, o in zip(queries, outputs)) / len(outputs)
        print(json.dumps({"backend": name, "model": model_id, "settings": settings,
                          "load_seconds": round(load_seconds, 2), "prompts": len(requests),
                          "seconds": round(seconds, 2), "completion_tokens": tokens,
                          "tokens_per_second": round(tokens / seconds), "accuracy": round(accuracy, 3),
                          "load_average": [round(x, 1) for x in os.getloadavg()]}), flush=True)
    backend.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
