"""The live search on Ray: model actors, the broadcast driver, the result store."""
from raygems.runtime.driver import DriverSettings, SearchDriver
from raygems.runtime.evaluation import EvaluationError, EvaluatorSpec
from raygems.runtime.search import SearchConfig, SearchResult, run_search
from raygems.runtime.store import Failure, ResultStore

__all__ = ["DriverSettings", "EvaluationError", "EvaluatorSpec", "Failure", "ResultStore", "SearchConfig",
           "SearchDriver", "SearchResult", "run_search"]
