"""Where model trees come from: the Hugging Face hub, or a local directory laid out like it.

Both sources answer the same four questions (`TreeSource`):

* `model(model_id)`: the model's own record (downloads, likes, revision, ...);
* `children(model_id, kinds)`: its direct descendants of the given relations (finetune, adapter,
  quantized, merge), as the hub's `base_model:<relation>:<parent>` tags (or the local cards) say;
* `model_card(model_id)`: its parsed README.md;
* `fetch(model)`: a local folder holding its files.

The hub source talks to the hub through `huggingface_hub.HfApi` only, so tests can point it at a local
server (`HfApi(endpoint=...)`) that serves recorded responses: the real client code then parses them.
"""
from __future__ import annotations

import json
import logging
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from raygems.errors import HubUnreachable, UsageError
from raygems.hub.cards import ModelCard, ModelCardError, parse_model_card, salvage_base_models
from raygems.hub.retry import RetryPolicy, cached_or_unreachable, call_with_retries, check_reachable, http_status
from raygems.hub.types import MODEL_KINDS, ModelRecord
from raygems.registry import as_names

logger = logging.getLogger(__name__)

#: Relations a child can have to its parent (the hub's `base_model:<relation>:<parent>` tags).
RELATIONS: tuple[str, ...] = tuple(k for k in MODEL_KINDS if k != "base")

#: Metadata file the local layout keeps beside a model's files (what the hub knows, the repo does not).
LOCAL_HUB_FILE = ".raygems_hub.json"

#: Files a checkpoint download skips by default: formats no raygems backend loads (TF/Flax/ONNX/...),
#: and Meta's `original/` consolidated checkpoints that duplicate the safetensors weights.
DEFAULT_FETCH_IGNORE = ("*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data", "*.tflite", "*.mlmodel",
                        "original/*", "onnx/*", "openvino/*", "coreml/*")


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    kinds = as_names(kinds)
    bad = [k for k in kinds if k not in RELATIONS]
    if bad:
        raise ValueError(f"unknown relation(s) {bad}: choose from {RELATIONS}")
    return kinds


class TreeSource(ABC):
    """A place that knows models and their base-model links."""

    @abstractmethod
    def model(self, model_id: str) -> ModelRecord:
        """The record of `model_id` itself (kind 'base', depth 0: callers place it in a tree)."""

    @abstractmethod
    def children(self, model_id: str, kinds: Sequence[str] = RELATIONS) -> list[ModelRecord]:
        """Direct descendants of `model_id` whose relation is one of `kinds`, with `base_model=model_id`.

        A record's `extra["children_count"]`, when present, says how many descendants it has itself
        (0 lets a tree walk skip asking).
        """

    @abstractmethod
    def model_card(self, model_id: str, revision: str | None = None) -> ModelCard:
        """The parsed README.md of `model_id` (an empty card when the repository has none)."""

    @abstractmethod
    def fetch(self, model: ModelRecord) -> Path:
        """A local folder with the model's files at `model.revision`."""


# ---------------------------------------------------------------------------------------------- hub
class HubTreeSource(TreeSource):
    """Model trees from the Hugging Face hub.

    Parameters
    ----------
    token: hub access token (None: huggingface_hub's saved token, if any).
    api: an `HfApi` (or a compatible object) to use instead of `HfApi(endpoint=endpoint, token=token)`.
    retries, backoff, max_backoff: the back-off on 429/5xx/connection errors (see `raygems.hub.retry`).
    endpoint: hub URL (None: huggingface_hub's default, `HF_ENDPOINT`).
    cache_dir: download cache for cards and checkpoints (None: huggingface_hub's cache).
    fetch_ignore: glob patterns `fetch` does not download.
    sleep: how to wait between retries (tests pass a recorder).
    """

    #: ModelInfo properties a listing asks for. `childrenModelCount` lets the walk skip leaves.
    EXPAND = ("createdAt", "downloads", "likes", "pipeline_tag", "library_name", "sha", "tags",
              "childrenModelCount")

    def __init__(self, token: str | None = None, api: Any = None, retries: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, endpoint: str | None = None, cache_dir: str | Path | None = None,
                 fetch_ignore: Sequence[str] = DEFAULT_FETCH_IGNORE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.token = token
        self.api = api
        self.policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self.endpoint = endpoint
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.fetch_ignore = tuple(fetch_ignore)
        self.sleep = sleep
        self._expand: tuple[str, ...] | None = None  # EXPAND, minus what the hub refused
        self._cards_answered = False                  # the hub answered a card request once (see model_card)

    # -------------------------------------------------------------- plumbing
    @property
    def _api(self) -> Any:
        if self.api is None:
            from huggingface_hub import HfApi
            self.api = HfApi(endpoint=self.endpoint, token=self.token)
        return self.api

    def _retrying(self, call: Callable[[], Any], what: str) -> Any:
        self._check_reachable()
        return call_with_retries(call, self.policy, what=what, sleep=self.sleep)

    def _check_reachable(self) -> None:
        endpoint = getattr(self._api, "endpoint", None)   # (a stand-in API object may have none)
        if isinstance(endpoint, str):
            check_reachable(endpoint)

    def _expanded(self, call: Callable[[tuple[str, ...]], Any]) -> Any:
        """Run `call(expand)`; if the hub rejects `childrenModelCount` (HTTP 400), go on without it."""
        expand = self._expand or self.EXPAND
        try:
            result = call(expand)
        except Exception as exc:  # noqa: BLE001
            if http_status(exc) != 400 or "childrenModelCount" not in expand:
                raise
            logger.warning("the hub refused expand=childrenModelCount; listing every node's children")
            expand = tuple(e for e in expand if e != "childrenModelCount")
            result = call(expand)
        self._expand = expand
        return result

    # -------------------------------------------------------------- TreeSource
    def model(self, model_id: str) -> ModelRecord:
        try:
            info = self._retrying(
                lambda: self._expanded(lambda expand: self._api.model_info(model_id, expand=list(expand))),
                f"model_info({model_id})")
        except Exception as exc:  # noqa: BLE001 - the hub's "no such repository" becomes a one-line error
            if type(exc).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
                raise UsageError(f"{model_id}: not found on the hub (or not accessible with this token), and "
                                 f"no local directory of that name") from None
            raise
        return replace(_record_from_info(info, kind="base", parent=None), is_base=True)

    def children(self, model_id: str, kinds: Sequence[str] = RELATIONS) -> list[ModelRecord]:
        records: list[ModelRecord] = []
        for relation in _check_kinds(kinds):
            tag = f"base_model:{relation}:{model_id}"
            infos = self._retrying(
                lambda: self._expanded(lambda expand: list(self._api.list_models(filter=tag, expand=list(expand)))),
                f"list_models(filter={tag})")
            records.extend(_record_from_info(info, kind=relation, parent=model_id) for info in infos)
        return records

    def model_card(self, model_id: str, revision: str | None = None) -> ModelCard:
        """The parsed README.md: an empty card when the hub says there is none; HubUnreachable (or the last
        error) when it could not be asked. Before the first card, one metadata request checks that the hub
        answers HTTP within the retry deadline (`raygems.hub.retry`): huggingface_hub's download retries a
        failing connection for about 25 s on its own, per card."""
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        def download() -> str | None:
            try:
                return self._api.hf_hub_download(model_id, "README.md", revision=revision, cache_dir=self.cache_dir)
            except LocalEntryNotFoundError:   # (a subclass) no answer and no cached copy: not "no README"
                raise
            except EntryNotFoundError:
                return None

        try:
            self._check_reachable()
        except HubUnreachable as error:   # a card cached by an earlier download still serves
            path = cached_or_unreachable(model_id, "README.md", error, revision=revision, cache_dir=self.cache_dir)
            return parse_model_card(Path(path).read_text(encoding="utf-8", errors="replace"), model_id)
        if not self._cards_answered:
            self._check_cards_answer(model_id, revision)
        path = self._retrying(download, f"README.md of {model_id}")
        if path is None:
            return ModelCard(model_id=model_id)
        return parse_model_card(Path(path).read_text(encoding="utf-8", errors="replace"), model_id)

    def _check_cards_answer(self, model_id: str, revision: str | None) -> None:
        from huggingface_hub import constants, hf_hub_url

        from raygems.hub.retry import is_retryable, unreachable

        api = self._api
        if constants.HF_HUB_OFFLINE or not hasattr(api, "get_hf_file_metadata"):
            return
        url = hf_hub_url(model_id, "README.md", revision=revision, endpoint=getattr(api, "endpoint", None))

        def probe() -> None:
            try:
                api.get_hf_file_metadata(url=url)
            except Exception as exc:  # noqa: BLE001 - any answer (a 404, a gated repository) will do
                if unreachable(exc) is not None or is_retryable(exc):
                    raise

        self._retrying(probe, f"README.md of {model_id}")
        self._cards_answered = True

    def fetch(self, model: ModelRecord) -> Path:
        folder = self._retrying(
            lambda: self._api.snapshot_download(model.model_id, revision=model.revision, cache_dir=self.cache_dir,
                                                ignore_patterns=list(self.fetch_ignore) or None),
            f"download of {model.model_id}@{model.revision}")
        return Path(folder)


def _record_from_info(info: Any, kind: str, parent: str | None) -> ModelRecord:
    """A ModelRecord from a `huggingface_hub.ModelInfo` (fields the hub did not send stay at defaults)."""
    created = getattr(info, "created_at", None)
    extra: dict[str, Any] = {}
    count = getattr(info, "children_model_count", None)
    if count is not None:
        extra["children_count"] = count
    tags = getattr(info, "tags", None)
    if tags is not None:
        extra["tags"] = list(tags)
    return ModelRecord(
        model_id=info.id,
        kind=kind,
        base_model=parent,
        revision=getattr(info, "sha", None) or "main",
        downloads=int(getattr(info, "downloads", None) or 0),
        likes=int(getattr(info, "likes", None) or 0),
        created_at=created.isoformat() if isinstance(created, datetime) else (str(created) if created else None),
        pipeline_tag=getattr(info, "pipeline_tag", None),
        library_name=getattr(info, "library_name", None),
        extra=extra,
    )


# ---------------------------------------------------------------------------------------------- local
class LocalTreeSource(TreeSource):
    """Model trees from a directory in the local hub layout (docs/architecture.md):

    ROOT/<org>/<name>/README.md (front matter: base_model, base_model_relation, pipeline_tag, library_name,
    tags, model-index), the model files, and `.raygems_hub.json` ({"downloads", "likes", "created_at",
    "revision"}). A card without `base_model_relation` gets the relation the hub would infer from its files:
    adapter (adapter_config.json), quantized (*.gguf files or a quantization_config in config.json), merge
    (several base models or a `merge` tag), otherwise finetune.

    One bad upload does not stop the listing. Metadata that cannot be read (a README.md whose front matter is
    not valid YAML, a `base_model_relation` that is not a relation, a `base_model` that is not a model id, a
    `.raygems_hub.json` that is not JSON or holds values of the wrong type) is listed with what can still be
    read, and marked: `record.unreadable = "<file>: <reason>"`. The search fails such a model at stage
    "metadata" without evaluating it. Where it sits in the tree:

    * its parents are the `base_model` ids of its card; from an unreadable card, the ids its `base_model`
      lines still give (`salvage_base_models`);
    * a model with no parent in the directory roots a tree (`roots()`), except a leaf whose card names base
      models that are all absent (a stray) or whose card is unreadable and names none: such models are
      listed as children of the directory's root when it has exactly one (the directory holds one tree), so
      a search sees them; their relation is the declared or inferred one. An adapter adopted this way whose
      base is nowhere fails at load, naming the base.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"local tree root {str(root)!r} is not a directory")
        self._models: dict[str, _LocalModel] | None = None

    # -------------------------------------------------------------- index
    def _index(self) -> dict[str, "_LocalModel"]:
        """model_id -> what its folder says, placed in the tree; built on first use."""
        if self._models is None:
            models: dict[str, _LocalModel] = {}
            for folder in sorted(p for p in self.root.glob("*/*") if p.is_dir()):
                if any((folder / f).exists() for f in ("README.md", "config.json", "adapter_config.json",
                                                       LOCAL_HUB_FILE)):
                    model_id = f"{folder.parent.name}/{folder.name}"
                    models[model_id] = _read_local_model(folder, model_id)
            _place(models)
            for model_id, model in models.items():
                if model.problems:
                    logger.warning("%s: %s (listed; a search does not evaluate it)", model_id,
                                   "; ".join(model.problems))
            self._models = models
        return self._models

    def _entry(self, model_id: str) -> "_LocalModel":
        try:
            return self._index()[model_id]
        except KeyError:
            raise ValueError(f"model {model_id!r} is not in the local tree at {self.root}") from None

    def _record(self, model_id: str, kind: str, parent: str | None) -> ModelRecord:
        entry = self._entry(model_id)
        meta, card = entry.meta, entry.card
        return ModelRecord(
            model_id=model_id,
            kind=kind,
            base_model=parent,
            revision=meta.get("revision") or "main",
            downloads=meta.get("downloads") or 0,
            likes=meta.get("likes") or 0,
            created_at=meta.get("created_at"),
            pipeline_tag=card.pipeline_tag,
            library_name=card.library_name,
            path=str(entry.folder.resolve()),
            unreadable="; ".join(entry.problems) or None,
            extra={"children_count": entry.children_count},
        )

    # -------------------------------------------------------------- TreeSource
    def model_ids(self) -> list[str]:
        return list(self._index())

    def roots(self) -> list[str]:
        """Models that root a tree here (see the class docstring)."""
        return [m for m, e in self._index().items() if e.is_root]

    def model(self, model_id: str) -> ModelRecord:
        return replace(self._record(model_id, "base", None), is_base=True)

    def children(self, model_id: str, kinds: Sequence[str] = RELATIONS) -> list[ModelRecord]:
        kinds = _check_kinds(kinds)
        self._entry(model_id)
        return [self._record(child, e.relation, model_id) for child, e in self._index().items()
                if model_id in e.parents and e.relation in kinds]

    def model_card(self, model_id: str, revision: str | None = None) -> ModelCard:
        """The parsed card; ModelCardError (a ValueError) when its front matter cannot be read."""
        entry = self._entry(model_id)
        if entry.card_error is not None:
            raise entry.card_error
        return entry.card

    def base_models(self, model_id: str) -> list[str]:
        """The base model ids the model's card names (read line by line from a card that is not valid YAML),
        present in this directory or not."""
        return list(self._entry(model_id).base_models)

    def folder(self, model_id: str) -> Path:
        """The folder holding the model's files."""
        return self._entry(model_id).folder

    def relation(self, model_id: str) -> str:
        """How the model derives from the base model(s) its card names: the card's `base_model_relation`, or
        the relation the hub would infer from its files (see the class docstring)."""
        return self._entry(model_id).relation

    def fetch(self, model: ModelRecord) -> Path:
        return self.folder(model.model_id).resolve()


@dataclass
class _LocalModel:
    """What one folder of the local layout says about its model, and where the model sits in the tree."""

    folder: Path
    card: ModelCard
    card_error: ModelCardError | None         # the card's front matter could not be read
    base_models: list[str]                    # what its card names (or what could be salvaged)
    meta: dict[str, Any]                      # the readable fields of .raygems_hub.json
    relation: str
    problems: list[str]                       # "<file>: <reason>" for each piece that could not be read
    parents: list[str] = field(default_factory=list)   # base models present in the directory (or its adopter)
    children_count: int = 0
    is_root: bool = False


#: `.raygems_hub.json` fields: what each must be, and a test for it.
_HUB_FILE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "downloads": ("a whole number >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "likes": ("a whole number >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "created_at": ("an ISO 8601 time (a string)", lambda v: isinstance(v, str)),
    "revision": ("a commit id (a string)", lambda v: isinstance(v, str) and bool(v)),
}


def _read_local_model(folder: Path, model_id: str) -> _LocalModel:
    """Read a model folder, keeping whatever can be read and naming the file of each problem."""
    problems: list[str] = []
    readme = folder / "README.md"
    card, card_error, base_models = ModelCard(model_id=model_id), None, []
    if readme.exists():
        try:
            text = readme.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = ""
            card_error = ModelCardError(model_id, f"cannot be read ({exc.strerror or exc})")
        else:
            try:
                card = parse_model_card(text, model_id)
            except ModelCardError as exc:
                card_error = exc
        if card_error is not None:
            problems.append(f"{readme}: {card_error.reason}")
            base_models = salvage_base_models(text)
        else:
            named = card.base_models
            base_models = [p for p in named if isinstance(p, str)]
            if len(base_models) != len(named):
                problems.append(f"{readme}: base_model must be a model id or a list of them, got "
                                f"{card.metadata.get('base_model')!r:.80}")
    declared, inferred = card.base_model_relation, _inferred_relation(folder, base_models, card.tags)
    if declared and declared not in RELATIONS:
        problems.append(f"{readme}: base_model_relation {declared!r:.40} is not one of {', '.join(RELATIONS)}")
    meta, meta_problems = _read_hub_file(folder / LOCAL_HUB_FILE)
    return _LocalModel(folder=folder, card=card, card_error=card_error, base_models=base_models, meta=meta,
                       relation=declared if declared in RELATIONS else inferred,
                       problems=problems + meta_problems)


def _read_hub_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The fields of `.raygems_hub.json` that hold what they should, and a problem for each that does not."""
    if not path.exists():
        return {}, []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, [f"{path}: not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"]
    if not isinstance(raw, dict):
        return {}, [f"{path}: expected an object with {', '.join(_HUB_FILE_FIELDS)}, got {type(raw).__name__}"]
    meta, problems = {}, []
    for key, (wanted, valid) in _HUB_FILE_FIELDS.items():
        value = raw.get(key)
        if value is None:
            continue
        if valid(value):
            meta[key] = value
        else:
            problems.append(f"{path}: {key} {value!r:.40} is not {wanted}")
    return meta, problems


def _place(models: dict[str, _LocalModel]) -> None:
    """Parents, roots, adoption by the single root, and children counts (the rules of LocalTreeSource)."""
    for model_id, model in models.items():
        model.parents = [p for p in dict.fromkeys(model.base_models) if p in models and p != model_id]
    for model in models.values():
        for parent in model.parents:
            models[parent].children_count += 1
    unplaced = [m for m in models if not models[m].parents]
    # an unreadable card that names no base: a parent it might have named is unknown, so it roots nothing
    # unless models here name it as their base
    candidates = [m for m in unplaced if models[m].card_error is None or models[m].base_models
                  or models[m].children_count]
    strays = [m for m in candidates if models[m].base_models and models[m].children_count == 0]
    roots = [m for m in candidates if m not in strays] or candidates
    for model_id in roots:
        models[model_id].is_root = True
    if len(roots) == 1:
        root = roots[0]
        for model_id in unplaced:
            if model_id != root:
                models[model_id].parents = [root]
                models[root].children_count += 1
                if not models[model_id].problems:
                    logger.warning("%s: its card names base model(s) %s, none of them in %s; listed under the root "
                                   "%s", model_id, models[model_id].base_models, models[root].folder.parent.parent,
                                   root)


def _inferred_relation(folder: Path, base_models: list[str], tags: list[str]) -> str:
    """The relation the hub would infer from the model's files and card."""
    if (folder / "adapter_config.json").exists():
        return "adapter"
    if any(folder.glob("*.gguf")) or _has_quantization_config(folder / "config.json"):
        return "quantized"
    if len(base_models) > 1 or "merge" in tags:
        return "merge"
    return "finetune"


def _has_quantization_config(config_file: Path) -> bool:
    if not config_file.exists():
        return False
    try:
        return "quantization_config" in json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


#: What a hub model id looks like: `org/name` (letters, digits, '.', '_', '-').
HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def open_tree_source(spec: str | Path, **hub_options: Any) -> TreeSource:
    """A directory -> LocalTreeSource(spec); 'hub' or a hub model id -> HubTreeSource(**hub_options).
    Anything else (a mistyped path) is a UsageError naming it."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return LocalTreeSource(path)
    if str(spec) == "hub" or HUB_MODEL_ID.fullmatch(str(spec)):
        return HubTreeSource(**hub_options)
    if path.exists():
        raise UsageError(f"{spec}: is a file, not a directory of models in the local hub layout")
    raise UsageError(f"{spec}: no such directory (and not a hub model id such as 'org/name')")
