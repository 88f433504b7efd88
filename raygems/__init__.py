"""raygems: find the best fine-tuned checkpoint for a task among many, under a fixed evaluation budget.

The public API, re-exported here (imported lazily, so `import raygems` needs neither Ray nor torch):

    from raygems import make_algorithm, list_methods          # search methods (ask/tell)
    from raygems import load_matrix, replay, replay_grid       # replays on recorded correctness matrices
    from raygems import generate_tree                          # synthetic model trees
    from raygems import get_task, build_query_pool             # tasks and query pools
    from raygems import SearchConfig, run_search, ResultStore  # the live search on Ray
    from raygems import read_results, RunDirectory             # a search's answers (pandas) and its files
    from raygems import list_tree, find_gems                   # model trees from the hub, gem reports

Plug-ins: each kind has one registry (`raygems.registry.Registry`), filled by a decorator:

    @register_method("mine", label="Mine")    # a BanditAlgorithm: ask() -> Pulls, tell(successes)
    class Mine(BanditAlgorithm): ...
    @register_task("my_task")                 # a Task: load() -> queries, score(query, completion)
    class MyTask(Task): ...
    @register_backend("my_backend")           # a Backend: generate([GenerationRequest]) -> [Generation]
    class MyBackend(Backend): ...             # (or register_backend(name, "package.module:Class"): lazy)
    prior = ModelPrior.load(path)             # a fitted prior: ranking scores and beliefs for a search

A live search runs in Ray workers: name the module that registers your plug-ins, `SearchConfig(...,
plugins=("mymodule",))` (`--plugins`), so that they import it too (`raygems.plugins`). A complete example of each
kind: tests/plugins/raygems_example_plugins.py.
"""
from __future__ import annotations

from raygems.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # bandits
    "BanditAlgorithm": "raygems.bandits", "Pulls": "raygems.bandits", "make_algorithm": "raygems.bandits",
    "list_methods": "raygems.bandits", "get_method": "raygems.bandits", "repetition_keys": "raygems.bandits",
    "MethodSpec": "raygems.bandits", "register_method": "raygems.bandits", "make_pulls": "raygems.bandits",
    "aggressive_schedule": "raygems.bandits", "karnin_schedule": "raygems.bandits",
    # replay
    "CorrectnessMatrix": "raygems.replay", "load_matrix": "raygems.replay", "replay": "raygems.replay",
    "replay_budgets": "raygems.replay", "replay_grid": "raygems.replay",
    # populations
    "generate_tree": "raygems.populations", "TreeConfig": "raygems.populations", "PAPER_TREES": "raygems.populations",
    # tasks
    "get_task": "raygems.tasks", "list_tasks": "raygems.tasks", "register_task": "raygems.tasks",
    "Task": "raygems.tasks",
    "PROMPT_VARIANTS": "raygems.tasks", "build_query_pool": "raygems.tasks.pool", "QueryPool": "raygems.tasks.pool",
    # hub
    "ModelRecord": "raygems.hub.types", "HubTreeSource": "raygems.hub.sources",
    "LocalTreeSource": "raygems.hub.sources", "list_tree": "raygems.hub.listing",
    "paper_selection": "raygems.hub.selection",
    # backends
    "get_backend": "raygems.backends", "CheckpointError": "raygems.backends", "register_backend": "raygems.backends",
    "Backend": "raygems.backends", "GenerationRequest": "raygems.backends", "Generation": "raygems.backends",
    # learned priors
    "ModelPrior": "raygems.prior",
    # runtime
    "SearchConfig": "raygems.runtime", "run_search": "raygems.runtime", "ResultStore": "raygems.runtime",
    "read_results": "raygems.results", "RunDirectory": "raygems.run_directory",
    # analysis and sweeps
    "find_gems": "raygems.analysis.gems",
    "SweepConfig": "raygems.sweep", "run_sweep": "raygems.sweep",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__
