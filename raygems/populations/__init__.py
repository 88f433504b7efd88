"""Model populations to replay searches on: synthetic trees, and the population families of the statistics
study (docs/statistics.md): calibrated to the paper, a dense near-best band, semi-real leaderboard trees and
the real RouterBench matrix."""
from raygems.populations.families import (
    FAMILIES,
    PAPER_TREE_STATS,
    CalibratedConfig,
    DenseBandConfig,
    generate_calibrated,
    generate_dense_band,
    generate_family,
    load_routerbench,
    write_family,
)
from raygems.populations.leaderboard import LeaderboardConfig, generate_leaderboard_tree
from raygems.populations.population import FamilyTree
from raygems.populations.synthetic import PAPER_TREES, SyntheticTree, TreeConfig, generate_tree

__all__ = ["FAMILIES", "PAPER_TREES", "PAPER_TREE_STATS", "CalibratedConfig", "DenseBandConfig", "FamilyTree",
           "LeaderboardConfig", "SyntheticTree", "TreeConfig", "generate_calibrated", "generate_dense_band",
           "generate_family", "generate_leaderboard_tree", "generate_tree", "load_routerbench", "write_family"]
