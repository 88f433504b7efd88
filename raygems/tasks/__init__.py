"""Tasks: registry, loaders, prompts, answer extraction, the code sandbox and query pools.

    from raygems.tasks import get_task
    task = get_task("gsm8k", data_dir="../shared/data/benchmarks")
    queries = task.load()
    task.score(queries[0], "... #### 18")

See docs/tasks.md for formats, prompts and scoring rules.
"""
from raygems.tasks.base import QUERY_KEYS, Task, as_query, make_query
from raygems.tasks.prompting import PROMPT_VARIANTS, model_system_prompt, render_prompt
from raygems.tasks.registry import get_task, list_tasks, register_task

__all__ = ["PROMPT_VARIANTS", "QUERY_KEYS", "Task", "as_query", "get_task", "list_tasks", "make_query",
           "model_system_prompt", "register_task", "render_prompt"]
