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

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from raygems.errors import UsageError, one_line

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
        from raygems.errors import HubUnreachable, SetupError
        from raygems.hub.retry import (RetryPolicy, cached_or_unreachable, call_with_retries, check_reachable,
                                       http_status)

        download = self.downloader
        if download is None:
            from huggingface_hub import hf_hub_download as download

            try:
                check_reachable()
            except HubUnreachable as error:   # a copy cached by an earlier download still serves
                return Path(cached_or_unreachable(repo_id, filename, error, repo_type="dataset",
                                                  revision=self.revision))
        try:
            return Path(call_with_retries(
                lambda: download(repo_id=repo_id, filename=filename, repo_type="dataset", revision=self.revision),
                RetryPolicy(retries=3), what=f"download of {repo_id}/{filename}"))
        except HubUnreachable:
            raise
        except Exception as exc:  # noqa: BLE001 - the hub answered, but not with the file: say which file
            status = http_status(exc)
            if status is None:
                raise
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise SetupError(f"benchmark file {filename} of dataset {repo_id} could not be downloaded (HTTP {status}"
                             f"{': ' + lines[1] if len(lines) > 1 else ''}); give --data-dir a folder of benchmark "
                             f"files (docs/tasks.md)") from None


def read_parquet_rows(path: Path, fields: Mapping | None = None) -> list[dict]:
    """The rows of a parquet file; with ``fields`` (see ``check_fields``), each row checked against them
    (a bad row is a UsageError naming the file and the row, from 0)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:   # pyarrow raises ArrowInvalid, OSError, ... on a file that is not parquet
        raise UsageError(f"{path}: not a readable parquet file ({one_line(exc)})") from None
    if fields is not None:
        for number, row in enumerate(rows):
            check_fields(row, fields, f"{path}, row {number}")
    return rows


# --------------------------------------------------------------------------------------------------
# Checking the rows of benchmark files: every loader reads its rows through these, so that a malformed
# file is one clear error naming the file, the line (or row) and what is wrong, not a KeyError.
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Maybe:
    """A field that may be missing or null; when present, it must match ``spec``."""

    spec: object


def check_fields(value: object, spec: object, where: str, _field: str = "") -> object:
    """Check ``value`` against ``spec`` and return it; raise UsageError naming ``where`` (and the field, as
    ``question.choices[0].label``) otherwise.

    ``spec`` is a type or a tuple of types (``bool`` does not count as ``int``), a dict of field name ->
    spec (a JSON object with at least those fields; ``Maybe(spec)`` for optional ones), or a one-element
    list ``[spec]`` (a list whose every element matches ``spec``).
    """
    at = f"{where}: field {_field!r}" if _field else where
    if isinstance(spec, Maybe):
        return value if value is None else check_fields(value, spec.spec, where, _field)
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise UsageError(f"{at}: expected an object with fields {', '.join(map(repr, spec))}, "
                             f"got {_describe(value)}")
        for name, field_spec in spec.items():
            inner = f"{_field}.{name}" if _field else name
            if name not in value and not isinstance(field_spec, Maybe):
                raise UsageError(f"{where}: missing field {inner!r}")
            check_fields(value.get(name), field_spec, where, inner)
        return value
    if isinstance(spec, list):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{at}: expected a list, got {_describe(value)}")
        for index, element in enumerate(value):
            check_fields(element, spec[0], where, f"{_field}[{index}]")
        return value
    kinds = spec if isinstance(spec, tuple) else (spec,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UsageError(f"{at}: expected {' or '.join(_KIND_NAMES.get(k, k.__name__) for k in kinds)}, "
                         f"got {_describe(value)}")
    return value


_KIND_NAMES = {str: "text", int: "an integer", float: "a number", dict: "an object", list: "a list",
               bool: "true/false"}


def _describe(value: object) -> str:
    """A short description of a JSON value for error messages: `5 (an integer)`, `a list`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list, tuple)):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({_KIND_NAMES.get(type(value), type(value).__name__)})"


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of every line of a UTF-8 text file that is not blank."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a UTF-8 text file ({exc.reason})") from None


def read_jsonl(path: Path, fields: Mapping | None = None) -> list[tuple[str, dict]]:
    """The non-blank lines of a JSON Lines file as (where, object) pairs, where = "PATH, line N". Each line
    must be a JSON object (with ``fields``: matching them, see ``check_fields``); otherwise a UsageError
    names the file, the line and what is wrong."""
    rows = []
    for number, line in text_lines(path):
        where = f"{path}, line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                             "expected one JSON object per line") from None
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a JSON object, got {_describe(value)}")
        if fields is not None:
            check_fields(value, fields, where)
        rows.append((where, value))
    return rows
