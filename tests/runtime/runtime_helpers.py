"""Shared helpers for the runtime tests: a small recorded tree to search live through the replay backend."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from synthetic_matrix import write_matrix  # noqa: F401 - the runtime tests import it from here


def raw_result_keys(out: Path) -> pd.DataFrame:
    """Every row ever written (all parts, no de-duplication): a pair paid twice shows up twice here."""
    columns = ["model_id", "revision", "query_id", "variant"]
    parts = sorted((out / "store" / "results").glob("part-*.parquet"))
    if not parts:   # nothing paid (a method that spends no budget)
        return pd.DataFrame(columns=columns)
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return frame[columns]
