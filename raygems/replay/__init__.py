"""Replays: search methods run against recorded correctness matrices, R repetitions at a time."""
import sys
import types

from raygems.replay.engine import ReplayResult, replay, replay_budgets, replay_grid
from raygems.replay.environment import Environment, MatrixEnvironment
from raygems.replay.matrix import CorrectnessMatrix, MatrixError, from_long, load_matrix, load_models_table, rank_of

__all__ = ["CorrectnessMatrix", "Environment", "MatrixEnvironment", "MatrixError", "ReplayResult", "from_long",
           "load_matrix", "load_models_table", "rank_of", "replay", "replay_budgets", "replay_grid"]


class _CallablePackage(types.ModuleType):
    """`raygems.replay` is this package and, as the public API exports it (`from raygems import replay`), the
    `replay` function. Python binds a subpackage to its parent's attribute of the same name when it is first
    imported (here by `raygems.load_matrix`, say), replacing the function there; so the package, called, is
    the function, whichever of the two `raygems.replay` names."""

    def __call__(self, *args, **kwargs) -> ReplayResult:
        return replay(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
