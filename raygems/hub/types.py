"""What raygems knows about one model of a tree, wherever it came from (the hub or a local directory)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: How a model relates to its parent, as the hub's `base_model:<relation>:<parent>` tags say.
MODEL_KINDS = ("base", "finetune", "adapter", "quantized", "merge")
#: The relations a tree is listed through unless told otherwise (the paper's trees: fine-tunes and adapters).
DEFAULT_KINDS = ("finetune", "adapter")
#: The paper's selection per kind (App. C; `raygems.hub.selection`): its most popular models, then this many
#: random others.
PAPER_TOP_MODELS = 300
PAPER_RANDOM_MODELS = 100


@dataclass(frozen=True)
class ModelRecord:
    """One node of a model tree: a hub repository (or a local folder laid out like one)."""

    model_id: str
    kind: str = "finetune"              # one of MODEL_KINDS
    base_model: str | None = None       # parent model id (None for the root)
    revision: str = "main"              # commit sha when known; results are keyed by it
    downloads: int = 0
    likes: int = 0
    created_at: str | None = None       # ISO 8601
    pipeline_tag: str | None = None
    library_name: str | None = None
    depth: int = 0                      # 0 = the root base model, 1 = its children, ...
    is_base: bool = False               # an official release of the root (base or its instruct version)
    path: str | None = None             # local folder holding the files, when there is one
    unreadable: str | None = None       # "<file>: <reason>" when its metadata could not be read: listed, never
                                        # evaluated (the search fails it at stage "metadata")
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model {self.model_id!r}: kind {self.kind!r} is not one of {MODEL_KINDS}")

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("extra")
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "ModelRecord":
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: _none_if_missing(v) for k, v in row.items() if k in names}
        known = {k: v for k, v in known.items() if v is not None or k in _NULLABLE}
        extra = {k: v for k, v in row.items() if k not in names}
        return cls(**known, extra=extra)


_NULLABLE = {"base_model", "created_at", "pipeline_tag", "library_name", "path", "unreadable"}


def _none_if_missing(value: Any) -> Any:
    """pandas gives NaN for missing cells; the record wants None."""
    return None if isinstance(value, float) and value != value else value
