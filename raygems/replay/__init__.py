"""Replays: search methods run against recorded correctness matrices, R repetitions at a time."""
from raygems.replay.engine import ReplayResult, replay, replay_budgets, replay_grid
from raygems.replay.environment import Environment, MatrixEnvironment
from raygems.replay.matrix import CorrectnessMatrix, MatrixError, from_long, load_matrix, load_models_table, rank_of

__all__ = ["CorrectnessMatrix", "Environment", "MatrixEnvironment", "MatrixError", "ReplayResult", "from_long",
           "load_matrix", "load_models_table", "rank_of", "replay", "replay_budgets", "replay_grid"]
