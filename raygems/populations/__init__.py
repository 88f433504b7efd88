"""Model populations to replay searches on: synthetic trees (and, later, semi-real families)."""
from raygems.populations.synthetic import PAPER_TREES, SyntheticTree, TreeConfig, generate_tree

__all__ = ["PAPER_TREES", "SyntheticTree", "TreeConfig", "generate_tree"]
