"""``BenchmarkTask``: a task whose items come from a real dataset, read from a local directory in
the original release format or from the Hugging Face hub (``raygems.tasks.sources``)."""
from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path

from raygems.errors import UsageError, one_line
from raygems.tasks.base import Task
from raygems.tasks.sources import Downloader, HubFetcher, resolve_data_dir, task_folder

#: The key of an item dict that says where the item was read ("PATH, line N"), for error messages.
LOCATION = "location"

# Appended to every task's stop strings: the turn marker of the fallback prompt format for models
# without a chat template (raygems.tasks.prompting), where a base model would go on with a new turn.
FALLBACK_TURN_STOP = "\nUser:"


class BenchmarkTask(Task):
    """A task read from ``data_dir`` (original release files) or, when it is None and
    ``RAYGEMS_DATA_DIR`` is unset, from the hub repository ``hub_repo``.

    Subclasses name their files (``local_folder``, ``local_files``, ``hub_repo``, ``hub_files``), read
    them into plain item dicts (``items_from_local`` / ``items_from_hub``, same item shape from both)
    and turn an item into a query record (``to_query``).
    """

    local_folder: str = ""
    local_files: tuple[str, ...] = ()
    hub_repo: str = ""
    hub_files: tuple[str, ...] = ()

    def __init__(self, data_dir: str | os.PathLike | None = None, *, downloader: Downloader | None = None,
                 revision: str | None = None) -> None:
        self.data_dir = data_dir
        self.downloader = downloader
        self.revision = revision
        self._queries: list[dict] | None = None

    @property
    def source(self) -> str:
        """Where ``load`` reads from, for logs and pool metadata."""
        root = resolve_data_dir(self.data_dir)
        if root is None:
            return f"hub:{self.hub_repo}@{self.revision or 'main'}"
        return f"local:{root / self.local_folder}"

    def load(self) -> list[dict]:
        if self._queries is None:
            root = resolve_data_dir(self.data_dir)
            if root is None:
                fetch = HubFetcher(self.downloader, self.revision)
                paths = [fetch(self.hub_repo, name) for name in self.hub_files]
                items = self._read(lambda: self.items_from_hub(paths))
            else:
                folder = task_folder(root, self.local_folder, self.local_files)
                items = self._read(lambda: self.items_from_local(folder))
            queries = [self._query(item, index) for index, item in enumerate(items)]
            ids = [q["query_id"] for q in queries]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{self.name}: duplicate query ids in {self.source}")
            self._queries = queries
        return [dict(q) for q in self._queries]

    # Loaders check their rows as they read them (raygems.tasks.sources.read_jsonl, check_fields); these two
    # catch what a check missed, so that a malformed file is still one line naming it, never a traceback.
    _DATA_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)

    def _read(self, read) -> list[dict]:
        try:
            return read()
        except UsageError:
            raise
        except self._DATA_ERRORS as exc:
            raise UsageError(f"{self.name}: malformed benchmark data in {self.source} ({one_line(exc)})") from None

    def _query(self, item: dict, index: int) -> dict:
        try:
            return self.to_query(item)
        except UsageError:
            raise
        except self._DATA_ERRORS as exc:
            where = item.get(LOCATION) if isinstance(item, dict) else None
            where = where or f"{self.source}, item {index}"
            reason = str(exc).strip() if type(exc) is ValueError else one_line(exc)
            raise UsageError(f"{where}: {reason or type(exc).__name__}") from None

    @abstractmethod
    def items_from_local(self, folder: Path) -> list[dict]:
        """The test split's items from the original release files in ``folder``."""

    @abstractmethod
    def items_from_hub(self, paths: list[Path]) -> list[dict]:
        """The test split's items from the downloaded ``hub_files`` (same order)."""

    @abstractmethod
    def to_query(self, item: dict) -> dict:
        """One item as a query record (``raygems.tasks.base.make_query``)."""
