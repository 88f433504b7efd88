"""Model trees: records, tree sources (the hub, a local directory), the tree walk, the paper's selection,
and a local hub server.

Names are imported on first use, so `import raygems.hub.types` stays light.
"""
from __future__ import annotations

from raygems.lazy_exports import lazy_exports

_EXPORTS = {
    "ModelRecord": "raygems.hub.types",
    "MODEL_KINDS": "raygems.hub.types",
    "TreeSource": "raygems.hub.sources",
    "HubTreeSource": "raygems.hub.sources",
    "LocalTreeSource": "raygems.hub.sources",
    "open_tree_source": "raygems.hub.sources",
    "list_tree": "raygems.hub.listing",
    "save_tree": "raygems.hub.listing",
    "read_tree": "raygems.hub.listing",
    "tree_records": "raygems.hub.listing",
    "paper_selection": "raygems.hub.selection",
    "HubServer": "raygems.hub.serve",
    "DirectoryCatalog": "raygems.hub.catalog",
    "ModelCard": "raygems.hub.cards",
    "parse_model_card": "raygems.hub.cards",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
