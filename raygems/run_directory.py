"""A search's run directory (its --out): the files `raygems search` writes there, each named once here.

    search.json         the configuration (a re-run with a different one is refused; --resume reuses it)
    tree.parquet        every listed candidate (one ModelRecord row each; `pruned_by_prior` marks the ones a
                        learned prior dropped); a re-run in the same directory reuses it instead of listing again
    pool.parquet        the query pool (with its content hash)
    store/              the result store: every (model, query, prompt variant) evaluated (parquet parts; its
                        layout and schema: raygems.runtime.store, raygems.results)
    leaderboard.parquet per model: queries evaluated, accuracy (better prompt variant per task), status
    events.parquet      every actor call, slot, round and fetch with its times (raygems.runtime.cost)
    summary.json        the outcome
    .search.lock        held while a search runs in the directory (raygems.runtime.lock)

Written by `raygems.runtime.search`; read by the result reader (`raygems.results`), the gem report, a plan's
calibration and a resumed plan (`raygems.plan`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDirectory:
    """The paths of the files of the run directory `root` (nothing is read or created)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def search(self) -> Path:
        return self.root / "search.json"

    @property
    def tree(self) -> Path:
        return self.root / "tree.parquet"

    @property
    def pool(self) -> Path:
        return self.root / "pool.parquet"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard.parquet"

    @property
    def events(self) -> Path:
        return self.root / "events.parquet"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def lock(self) -> Path:
        return self.root / ".search.lock"
