"""Analysis of model trees: the hidden-gem report and the paper's figures.

Names are imported on first use (matplotlib only when a plot is drawn).
"""
from __future__ import annotations

from raygems.lazy_exports import lazy_exports

_EXPORTS = {
    "GemReport": "raygems.analysis.gems",
    "find_gems": "raygems.analysis.gems",
    "accuracy_from_results": "raygems.analysis.gems",
    "accuracy_from_matrix": "raygems.analysis.gems",
    "tree_atlas": "raygems.analysis.plots",
    "radial_layout": "raygems.analysis.plots",
    "cumulative_accuracy": "raygems.analysis.plots",
    "rank_vs_budget": "raygems.analysis.plots",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
