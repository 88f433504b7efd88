"""Where benchmark files come from: a local directory in the original release formats, or the
Hugging Face hub.

``data_dir=None`` means ``$RAYGEMS_DATA_DIR`` when that is set, else the hub. A local directory has
one folder per task (the layout of ``shared/data/benchmarks``)::

    arc_challenge/ARC-Challenge-Test.jsonl
    gsm8k/test.jsonl
    mbpp/mbpp.jsonl
    mmlu/test/<subject>_test.csv
    winogrande/dev.jsonl, winogrande/dev-labels.lst

On the hub each task reads the parquet files of its dataset repository (see each task's
``hub_repo``/``hub_files``) through ``huggingface_hub.hf_hub_download``; any function with the same
signature can stand in for it (tests serve local files that way).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "RAYGEMS_DATA_DIR"

Downloader = Callable[..., str]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local benchmark directory to read, or None for the hub."""
    if data_dir is None:
        from_env = os.environ.get(DATA_DIR_ENV, "").strip()
        return Path(from_env).expanduser() if from_env else None
    return Path(data_dir).expanduser()


def task_folder(root: Path, folder: str, required: tuple[str, ...]) -> Path:
    """``root/folder``, checked to hold ``required`` (paths relative to it; globs allowed)."""
    path = root / folder
    missing = [name for name in required if not (any(path.glob(name)) if "*" in name else (path / name).exists())]
    if not path.is_dir() or missing:
        raise FileNotFoundError(
            f"benchmark data for {folder!r} not found: expected {', '.join(required)} under {path} "
            f"(data_dir={root}; see docs/tasks.md for the layout)"
        )
    return path


@dataclass
class HubFetcher:
    """Downloads dataset files from the hub (cached by huggingface_hub) and returns local paths.

    ``downloader`` defaults to ``huggingface_hub.hf_hub_download``; ``revision`` pins a commit.
    """

    downloader: Downloader | None = None
    revision: str | None = None

    def __call__(self, repo_id: str, filename: str) -> Path:
        from raygems.hub.retry import RetryPolicy, call_with_retries

        download = self.downloader
        if download is None:
            from huggingface_hub import hf_hub_download as download
        return Path(call_with_retries(
            lambda: download(repo_id=repo_id, filename=filename, repo_type="dataset", revision=self.revision),
            RetryPolicy(retries=3), what=f"download of {repo_id}/{filename}"))


def read_parquet_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
