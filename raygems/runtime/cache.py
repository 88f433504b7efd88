"""The checkpoint cache of one node: which checkpoints are on its disk, and which to delete to make room, under a
byte budget that is never exceeded.

A search of a real tree cannot keep every checkpoint it downloads (400 7B checkpoints are ~6 TB). The cache
admits a checkpoint only when its planned size fits under `limit_bytes` next to everything already there or
being downloaded; to make room it deletes checkpoints nobody needs, in this order:

1. checkpoints of models out of the search (eliminated or failed: `retire`), least recently used first;
2. other checkpoints no slot holds and the driver does not want soon, least recently used first.

Never deleted: a checkpoint a slot holds (`hold`/`release`), one downloaded and not yet taken by a slot (it was
fetched because a slot will need it soon), one being downloaded, and the base of an adapter that is still in
the search (an adapter loads on its base).
When nothing can be deleted, the download waits (`admit` returns None) until something is released; a checkpoint
larger than the whole budget can never fit and fails its model.

This class is the policy and the bookkeeping only (no downloads, no Ray); `raygems.runtime.fetch.FetchWorker`
drives it, one per node. On disk a checkpoint lives in ROOT/<org>/<name>/ (the local hub layout, so an adapter
finds its base beside it).
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from raygems.errors import UsageError
from raygems.files import format_bytes


class TooLarge(Exception):
    """A checkpoint larger than the whole cache budget."""


@dataclass
class Entry:
    model_id: str
    size: int                     # bytes it takes (planned size while downloading, then on disk)
    revision: str = ""
    ready: bool = False           # fully downloaded
    holds: int = 0                # slots holding it
    retired: bool = False         # out of the search
    fresh: bool = False           # downloaded for a slot that has not taken it yet
    last_used: int = 0
    needed_by: set[str] = field(default_factory=set)   # adapters (still in the search) loading on this base

    @property
    def evictable(self) -> bool:
        return self.ready and self.holds == 0 and not self.fresh and not self.needed_by


class CheckpointCache:
    """Bookkeeping of one node's checkpoint folder under a byte budget (see the module docstring)."""

    def __init__(self, root: str | Path, limit_bytes: int):
        if limit_bytes <= 0:
            raise UsageError(f"the checkpoint cache limit must be positive, got {limit_bytes} bytes")
        self.root = Path(root)
        self.limit_bytes = int(limit_bytes)
        self.entries: dict[str, Entry] = {}   # (sizes change through _resize and _remove: used_bytes follows)
        self.peak_bytes = 0
        self._used = 0
        self.evicted: list[str] = []          # model ids deleted to make room, in order
        self._clock = 0

    # ------------------------------------------------------------------------------------------ state
    @property
    def used_bytes(self) -> int:
        return self._used

    def _resize(self, entry: Entry, size: int) -> None:
        self._used += int(size) - entry.size
        entry.size = int(size)
        self.peak_bytes = max(self.peak_bytes, self._used)

    def _remove(self, model_id: str) -> None:
        entry = self.entries.pop(model_id, None)
        if entry is not None:
            self._used -= entry.size

    def folder(self, model_id: str) -> Path:
        return self.root / model_id

    def register(self, model_id: str, size: int, revision: str, ready: bool) -> None:
        """A checkpoint found on disk when the worker starts (complete, or a partial download to resume)."""
        self._remove(model_id)
        entry = self.entries[model_id] = Entry(model_id, 0, revision, ready=ready)
        self._resize(entry, size)

    def _touch(self, entry: Entry) -> None:
        self._clock += 1
        entry.last_used = self._clock

    # ------------------------------------------------------------------------------------------ admission
    def admit(self, model_id: str, size: int, revision: str) -> list[str] | None:
        """Reserve `size` bytes for downloading `model_id` (at `revision`). Returns the model ids whose folders
        the caller must delete first (already removed from the books), or None when it does not fit yet: wait
        for a release and ask again. Raises TooLarge when it can never fit."""
        if size > self.limit_bytes:
            raise TooLarge(f"{model_id} needs {format_bytes(size)}, more than the whole checkpoint cache "
                           f"({format_bytes(self.limit_bytes)}, --cache-limit)")
        existing = self.entries.get(model_id)
        others = self.used_bytes - (existing.size if existing else 0)
        if others + size > self.limit_bytes:
            victims = self._victims(others + size - self.limit_bytes, exclude=model_id)
            if victims is None:
                if not any(e.holds or e.fresh or not e.ready for e in self.entries.values() if e.model_id != model_id):
                    # nothing will ever be released: what holds the space are bases of adapters still searched
                    raise TooLarge(f"{model_id} needs {format_bytes(size)}, but the checkpoint cache "
                                   f"({format_bytes(self.limit_bytes)}, --cache-limit) is held by the bases of "
                                   f"adapters still in the search")
                return None
        else:
            victims = []
        for victim in victims:
            self._remove(victim)
            self.evicted.append(victim)
        entry = existing or self.entries.setdefault(model_id, Entry(model_id, 0))
        entry.revision, entry.ready = revision, False
        self._resize(entry, size)
        self._touch(entry)
        return victims

    def _victims(self, needed: int, exclude: str) -> list[str] | None:
        candidates = [e for e in self.entries.values() if e.evictable and e.model_id != exclude]
        candidates.sort(key=lambda e: (not e.retired, e.last_used))
        chosen, freed = [], 0
        for entry in candidates:
            if freed >= needed:
                break
            chosen.append(entry.model_id)
            freed += entry.size
        return chosen if freed >= needed else None

    def completed(self, model_id: str, size_on_disk: int) -> None:
        """`model_id` is on disk, for a slot to take (kept until one does, or it is retired)."""
        entry = self.entries[model_id]
        entry.ready, entry.fresh = True, not entry.retired
        self._resize(entry, size_on_disk)
        self._touch(entry)

    def abandon(self, model_id: str) -> None:
        """A download that failed: its reservation goes (the caller deletes what was written)."""
        self._remove(model_id)

    # ------------------------------------------------------------------------------------------ usage
    def hold(self, model_id: str) -> None:
        entry = self.entries.get(model_id)
        if entry is not None:
            entry.holds += 1
            entry.fresh = False
            self._touch(entry)

    def release(self, model_id: str) -> None:
        entry = self.entries.get(model_id)
        if entry is not None and entry.holds > 0:
            entry.holds -= 1
            self._touch(entry)

    def retire(self, model_ids: set[str]) -> None:
        """Models out of the search: their checkpoints go first, and bases no longer needed by them."""
        for model_id in model_ids:
            entry = self.entries.get(model_id)
            if entry is not None:
                entry.retired, entry.fresh = True, False
        for entry in self.entries.values():
            entry.needed_by -= model_ids

    def needs_base(self, adapter_id: str, base_id: str) -> None:
        """`adapter_id` loads on `base_id`: the base stays while the adapter is in the search."""
        self.entries[base_id].needed_by.add(adapter_id)


def delete_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


#: The largest size `parse_size` takes (1 EB): sizes are summed in 64-bit integers.
MAX_SIZE_BYTES = 10**18


def parse_size(text: str | int | float, what: str = "cache limit") -> int:
    """Bytes from '500GB', '1.5 TB', '800MiB', '123456' (decimal units are powers of 1000, binary of 1024);
    `what` names the value in the error."""
    if isinstance(text, (int, float)):
        number = float(text)
    else:
        units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                 "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
        cleaned = str(text).strip().upper().replace(" ", "")
        digits = cleaned.rstrip("KMGTIB")
        try:
            number = float(digits) * units[cleaned[len(digits):]]
        except (KeyError, ValueError):
            raise UsageError(f"{what} {text!r}: give a size such as 500GB, 1.5TB or 800MiB") from None
    if not math.isfinite(number) or number > MAX_SIZE_BYTES:
        raise UsageError(f"{what} {text!r}: give a finite size of at most 1 EB")
    value = int(number)
    if value <= 0:
        raise UsageError(f"{what} {text!r}: must be positive")
    return value
