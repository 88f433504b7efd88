"""The live search on Ray: model actors, the broadcast driver, the result store.

The names below are imported when first used: a Ray worker that runs one part (a fetch worker, a model actor)
imports that part's module, not the driver, the search methods and their dependencies."""
from raygems.lazy_exports import lazy_exports

_EXPORTS = {
    "DriverSettings": "raygems.runtime.driver", "SearchDriver": "raygems.runtime.driver",
    "EvaluationError": "raygems.runtime.evaluation", "EvaluatorSpec": "raygems.runtime.evaluation",
    "SearchConfig": "raygems.runtime.config", "SearchResult": "raygems.runtime.search",
    "run_search": "raygems.runtime.search", "Failure": "raygems.runtime.store", "ResultStore": "raygems.runtime.store",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
