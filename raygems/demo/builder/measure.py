"""Measuring the tiny tree's quality ladder: a model's accuracy on a toy task through a generation backend,
rendered and scored the way the live search does it."""
from __future__ import annotations

from raygems.hub.types import ModelRecord

#: Items per task for the ladder (the toy tasks' evaluation items; 150 gives steps of 0.0067).
LADDER_ITEMS = 150
LADDER_TASKS = ("toy_arith", "toy_choice")


def toy_accuracy(backend, model: ModelRecord, task_name: str, num_items: int = 300, variant: str = "system",
                 load: bool = True) -> float:
    """Share of the first `num_items` evaluation items of toy task `task_name` that `model` answers correctly,
    prompts rendered with the model's tokenizer in prompt variant `variant`."""
    from raygems.backends.base import GenerationRequest
    from raygems.tasks import get_task
    from raygems.tasks.prompting import render_variant

    task = get_task(task_name)
    queries = task.load()[:num_items]
    if load:
        backend.load(model)
    requests = [GenerationRequest(render_variant(backend.tokenizer, q["messages"], variant),
                                  task.max_new_tokens, tuple(task.stop)) for q in queries]
    outputs = backend.generate(requests)
    return sum(task.score(q, out.text) for q, out in zip(queries, outputs)) / len(queries)


def ladder_accuracies(tree, num_items: int = LADDER_ITEMS) -> dict[str, dict[str, float]]:
    """Accuracy of every working model of an installed tiny tree on each toy task (transformers backend, CPU)."""
    import torch

    from raygems.backends import get_backend

    torch.set_num_threads(1)
    backend = get_backend("transformers", batch_size=64, device="cpu")
    try:
        return {record.model_id: {task: round(toy_accuracy(backend, record, task, num_items), 4)
                                  for task in LADDER_TASKS}
                for record in tree.working()}
    finally:
        backend.unload()
