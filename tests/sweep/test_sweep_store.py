"""The sweep's tables on disk: written whole, what a killed write left behind is cleared, and a full disk says how
a sweep continues."""
from __future__ import annotations

import pandas as pd
import pytest

from raygems.files import DiskFull
from raygems.sweep import store
from raygems.sweep.store import PER_REP_FILE, RESULT_COLUMNS, RESULTS_FILE, load_results, save


def no_rows() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in RESULT_COLUMNS})


def test_a_save_clears_what_a_killed_save_left_and_nothing_else(tmp_path):
    left = [tmp_path / f".{RESULTS_FILE}.1a2b3c4d.tmp", tmp_path / f".{PER_REP_FILE}.5e6f7a8b.tmp"]
    other = tmp_path / ".trial_state.json.9a0b1c2d.tmp"
    for path in (*left, other):
        path.write_bytes(b"half")
    save(tmp_path, no_rows(), pd.DataFrame())
    assert not any(path.exists() for path in left) and other.exists()
    assert (tmp_path / RESULTS_FILE).is_file() and load_results(tmp_path).empty


def test_a_full_disk_says_to_run_the_same_sweep_again(tmp_path, monkeypatch):
    def disk_full(path, frame):
        raise DiskFull(path.parent)

    monkeypatch.setattr(store, "write_parquet", disk_full)
    with pytest.raises(DiskFull, match=f"no space left to write in {tmp_path} .*run the same sweep again") as raised:
        save(tmp_path, no_rows(), pd.DataFrame())
    assert "--resume" not in str(raised.value)
