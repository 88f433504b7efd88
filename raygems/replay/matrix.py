"""Correctness matrices: which model answered which query correctly (0/1), with ids and an optional models table.

Formats
-------
* long parquet: one row per (model_id, query_id) with `correct` (0/1) and optionally `task`;
* wide `.npy`: uint8 (K x Q), with an optional `index.json` beside it (`models`, `item_ids`, `benchmark`),
  or a folder holding `matrix_models_x_items.npy` + `index.json` (the RouterBench release in ../shared);
* models table (parquet or csv): `model_id, downloads, is_base, ...`; `best-base` needs it. `downloads` must be
  numbers >= 0 and `is_base` a yes/no flag (`checked_models_table`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raygems.errors import one_line
from raygems.popularity import popular_base

LONG_COLUMNS = ("model_id", "query_id", "correct")
NPY_IN_FOLDER = "matrix_models_x_items.npy"


class MatrixError(ValueError):
    """A correctness matrix or models table that cannot be used, with the reason."""


@dataclass(frozen=True, eq=False, repr=False)
class CorrectnessMatrix:
    """K models x Q queries of 0/1 results, with the ids that name rows and columns."""

    values: np.ndarray
    model_ids: tuple[str, ...]
    query_ids: tuple[str, ...]
    tasks: tuple[str, ...] | None = None
    models: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.dtype.kind == "O":               # (numbers in an object array: as numbers; None: as NaN)
            try:
                values = values.astype(np.float64)
            except (TypeError, ValueError):
                raise MatrixError(f"a correctness matrix must hold the numbers 0 and 1, got values such as "
                                  f"{next(v for v in values.flat if not isinstance(v, (int, float, bool)))!r:.50}") \
                    from None
        if values.dtype.kind not in "biuf":        # (a structured or text array: not 0/1 numbers)
            raise MatrixError(f"a correctness matrix must hold the numbers 0 and 1, got an array of dtype {values.dtype}")
        if values.ndim != 2:
            raise MatrixError(f"a correctness matrix must be 2-D (models x queries), got shape {values.shape}")
        if values.dtype.kind == "f" and np.isnan(values).any():
            r, c = np.argwhere(np.isnan(values))[0]
            raise MatrixError(f"correctness matrix has NaN values, e.g. at model {self._name(r, 'model')}, "
                              f"query {self._name(c, 'query')}")
        bad = (values != 0) & (values != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise MatrixError(f"correctness matrix must be binary (0/1): found {values[r, c].item()!r} at model "
                              f"{self._name(r, 'model')}, query {self._name(c, 'query')}")
        k, q = values.shape
        if k < 2:
            raise MatrixError(f"need at least 2 models to search among, got {k}")
        if q < 1:
            raise MatrixError("need at least one query")
        if len(self.model_ids) != k or len(self.query_ids) != q:
            raise MatrixError(f"ids do not match the matrix shape {values.shape}: {len(self.model_ids)} model ids, "
                              f"{len(self.query_ids)} query ids")
        for label, ids in (("model", self.model_ids), ("query", self.query_ids)):
            if len(set(ids)) != len(ids):
                dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
                raise MatrixError(f"duplicate {label} id {dup!r}")
        if self.tasks is not None and len(self.tasks) != q:
            raise MatrixError(f"{len(self.tasks)} task labels for {q} queries")
        object.__setattr__(self, "values", values.astype(np.uint8, copy=False))
        object.__setattr__(self, "model_ids", tuple(str(m) for m in self.model_ids))
        object.__setattr__(self, "query_ids", tuple(str(x) for x in self.query_ids))
        if self.models is not None:
            object.__setattr__(self, "models", align_models_table(self.models, self.model_ids))

    def _name(self, i: int, label: str) -> str:
        ids = self.model_ids if label == "model" else self.query_ids
        return repr(ids[i]) if i < len(ids) else f"#{i}"

    # ------------------------------------------------------------------------------------------ views
    def __repr__(self) -> str:
        """The shape and a few ids (the ids in full run to thousands of queries)."""
        def few(ids: tuple[str, ...]) -> str:
            return ", ".join(map(repr, ids[:3])) + (f", ... ({len(ids)})" if len(ids) > 3 else "")

        tasks = f", tasks=({few(tuple(dict.fromkeys(self.tasks)))})" if self.tasks else ""
        return (f"CorrectnessMatrix({self.num_models} models x {self.num_queries} queries, accuracy "
                f"{float(np.mean(self.values)):.3f}; models=({few(self.model_ids)}){tasks})")

    @property
    def num_models(self) -> int:
        return self.values.shape[0]

    @property
    def num_queries(self) -> int:
        return self.values.shape[1]

    @property
    def accuracies(self) -> np.ndarray:
        """True accuracy of every model on the whole pool."""
        return self.values.mean(axis=1)

    def ranks(self) -> np.ndarray:
        """Rank of every model: 1 + number of models with strictly higher accuracy."""
        return rank_of(self.accuracies, np.arange(self.num_models))

    def popular_base(self) -> int | None:
        """Row of the popular base (`raygems.popularity`: what `best-base` returns, ties aside); None without a
        models table with `downloads`."""
        models = self.models
        if models is None or "downloads" not in models.columns:
            return None
        is_base = models["is_base"].fillna(False).to_numpy(dtype=bool) if "is_base" in models.columns else None
        return popular_base(models["downloads"].to_numpy(dtype=float), is_base)

    def task_accuracies(self) -> pd.DataFrame:
        """Long table (model_id, task, accuracy); task 'all' when the matrix has no task labels."""
        tasks = np.asarray(self.tasks if self.tasks is not None else ["all"] * self.num_queries)
        rows = []
        for task in dict.fromkeys(tasks):
            acc = self.values[:, tasks == task].mean(axis=1)
            rows.append(pd.DataFrame({"model_id": self.model_ids, "task": task, "accuracy": acc}))
        return pd.concat(rows, ignore_index=True)

    def with_models(self, models: pd.DataFrame | None) -> "CorrectnessMatrix":
        return CorrectnessMatrix(self.values, self.model_ids, self.query_ids, self.tasks, models)

    # ---------------------------------------------------------------------------------------- writing
    def to_long(self) -> pd.DataFrame:
        k, q = self.values.shape
        frame = pd.DataFrame({
            "model_id": np.repeat(np.asarray(self.model_ids, dtype=object), q),
            "query_id": np.tile(np.asarray(self.query_ids, dtype=object), k),
            "correct": self.values.ravel(),
        })
        if self.tasks is not None:
            frame.insert(2, "task", np.tile(np.asarray(self.tasks, dtype=object), k))
        return frame

    def to_parquet(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_long().to_parquet(path, index=False)
        return path

    def to_npy(self, path: str | Path) -> Path:
        """Write the wide uint8 array and an index.json beside it (RouterBench layout)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, self.values)
        index = {"models": list(self.model_ids), "item_ids": list(self.query_ids)}
        if self.tasks is not None:
            index["benchmark"] = list(self.tasks)
        (path.parent / "index.json").write_text(json.dumps(index))
        return path


# ------------------------------------------------------------------------------------------------ loading
def load_matrix(path: str | Path, models: str | Path | pd.DataFrame | None = None) -> CorrectnessMatrix:
    """Load a correctness matrix from long parquet, a wide .npy, or a RouterBench-style folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no correctness matrix at {path}")
    if path.is_dir():
        npy = path / NPY_IN_FOLDER
        if not npy.exists():
            candidates = sorted(path.glob("*.npy")) + sorted(path.glob("*.parquet"))
            if len(candidates) != 1:
                raise MatrixError(f"{path} is a folder without {NPY_IN_FOLDER}; pass the matrix file itself")
            npy = candidates[0]
        matrix = load_matrix(npy)
    elif path.suffix == ".npy":
        matrix = _from_npy(path)
    elif path.suffix in (".parquet", ".pq"):
        matrix = from_long(_read_table(path, pd.read_parquet), source=str(path))
    elif path.suffix == ".csv":
        matrix = from_long(_read_table(path, pd.read_csv), source=str(path))
    else:
        raise MatrixError(f"unknown matrix format {path.suffix!r} for {path}: use .parquet (long) or .npy (wide)")
    if models is not None:
        matrix = matrix.with_models(load_models_table(models) if not isinstance(models, pd.DataFrame) else models)
    return matrix


def _read_table(path: Path, reader):
    try:
        return reader(path)
    except (OSError, ValueError) as exc:   # not a table (arrow and pandas raise subclasses of these)
        raise MatrixError(f"{path}: not a readable table ({one_line(exc)})") from None




def _from_npy(path: Path) -> CorrectnessMatrix:
    try:
        values = np.load(path, allow_pickle=False)
    except (EOFError, OSError, ValueError) as exc:   # empty, truncated, not a .npy, or an object (pickled) array
        raise MatrixError(f"{path}: not a readable .npy array ({one_line(exc)})") from None
    if not isinstance(values, np.ndarray):
        raise MatrixError(f"{path}: holds several arrays (.npz); a correctness matrix is one 2-D array")
    index_path = path.parent / "index.json"
    if values.ndim != 2:
        raise MatrixError(f"{path}: expected a 2-D array (models x queries), got shape {values.shape}")
    k, q = values.shape
    model_ids = [f"model_{i}" for i in range(k)]
    query_ids = [f"query_{j}" for j in range(q)]
    tasks = None
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text())
        except ValueError as exc:
            raise MatrixError(f"{index_path}: not valid JSON ({one_line(exc)})") from None
        if not isinstance(index, dict):
            raise MatrixError(f"{index_path}: expected an object with 'models' and 'item_ids', got "
                              f"{type(index).__name__}")
        model_ids = _id_list(index, "models", k, index_path) or model_ids
        query_ids = _id_list(index, "item_ids", q, index_path) or query_ids
        tasks = index.get("benchmark") or index.get("tasks")
        if isinstance(tasks, str):
            tasks = [tasks] * q
        elif tasks is not None and not (isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)):
            raise MatrixError(f"{index_path}: 'benchmark' must be a task name or a list of them, got {tasks!r:.60}")
    try:
        return CorrectnessMatrix(values, tuple(model_ids), tuple(query_ids), tuple(tasks) if tasks else None)
    except MatrixError as error:        # (what is wrong with the values: named with the file)
        raise MatrixError(f"{path}: {error}") from None


def _id_list(index: dict, key: str, expected: int, source: Path) -> list[str] | None:
    """index[key] checked to be a list of `expected` ids (strings or numbers), or None when absent."""
    ids = index.get(key)
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        raise MatrixError(f"{source}: {key!r} must be a list of ids, got {ids!r:.60}")
    if len(ids) != expected:
        raise MatrixError(f"{source}: {len(ids)} {key} for an array with {expected} "
                          f"{'rows' if key == 'models' else 'columns'}")
    return [str(i) for i in ids]


def from_long(frame: pd.DataFrame, source: str = "table") -> CorrectnessMatrix:
    """Pivot a long (model_id, query_id, [task,] correct) table into a matrix, checking completeness. Rows and
    columns are in order of first appearance; the pivot is done on integer codes (a 10,000-model table of 5
    million rows loads in seconds)."""
    missing = [c for c in LONG_COLUMNS if c not in frame.columns]
    if missing:
        raise MatrixError(f"{source}: missing column(s) {missing}; a long matrix needs {list(LONG_COLUMNS)}")
    codes, names = {}, {}
    for column in ("model_id", "query_id"):
        ids = frame[column]
        if ids.dtype == object or isinstance(ids.dtype, pd.ArrowDtype):   # names, not lists or arrays
            odd = ids.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
            if odd.any():
                raise MatrixError(f"{source}: column {column!r} must hold names, got {ids[odd].iloc[0]!r:.80}")
        nameless = ids.isna().to_numpy()
        if nameless.any():
            raise MatrixError(f"{source}: a row without a {column} (row {int(np.flatnonzero(nameless)[0]) + 1})")
        codes[column], uniques = pd.factorize(ids.astype(str))
        names[column] = tuple(str(name) for name in uniques)
    if frame["correct"].isna().any():
        row = frame[frame["correct"].isna()].iloc[0]
        raise MatrixError(f"{source}: NaN in 'correct' for model {row.model_id!r}, query {row.query_id!r}")
    bad = ~frame["correct"].isin([0, 1, True, False])
    if bad.any():
        row = frame[bad].iloc[0]
        raise MatrixError(f"{source}: 'correct' must be 0 or 1, got {getattr(row.correct, 'item', lambda: row.correct)()!r} for model {row.model_id!r}, "
                          f"query {row.query_id!r}")
    model_ids, query_ids = names["model_id"], names["query_id"]
    dup = pd.Series(codes["model_id"].astype(np.int64) * len(query_ids) + codes["query_id"]).duplicated().to_numpy()
    if dup.any():
        row = frame[dup].iloc[0]
        raise MatrixError(f"{source}: duplicate result for model {row.model_id!r}, query {row.query_id!r}")
    absent = 2
    values = np.full((len(model_ids), len(query_ids)), absent, dtype=np.uint8)
    values[codes["model_id"], codes["query_id"]] = frame["correct"].to_numpy().astype(np.uint8)
    lacking = (values == absent).sum(axis=1)
    if lacking.any():
        model = int(np.argmax(lacking))
        raise MatrixError(f"{source}: incomplete matrix: model {model_ids[model]!r} lacks results for "
                          f"{int(lacking[model])} of {len(query_ids)} queries")
    tasks = None
    if "task" in frame.columns:
        first_rows = np.unique(codes["query_id"], return_index=True)[1]     # (codes are 0..q-1, in order)
        tasks = tuple(str(task) for task in frame["task"].to_numpy()[first_rows])
    return CorrectnessMatrix(values, model_ids, query_ids, tasks)


def load_models_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no models table at {path}")
    table = _read_table(path, pd.read_parquet if path.suffix in (".parquet", ".pq") else pd.read_csv)
    return checked_models_table(table, str(path))


#: How a models table may spell `is_base` (strings compared case-insensitively; a missing value is False).
FLAG_SPELLINGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def checked_models_table(table: pd.DataFrame, source: str = "models table") -> pd.DataFrame:
    """The table with `downloads` as numbers >= 0 and `is_base` as booleans (bool, 0/1, true/false, yes/no);
    any other value is refused naming it, its row (counted from 1, the header aside) and its model."""
    if "model_id" not in table.columns:
        raise MatrixError(f"{source}: a models table needs a 'model_id' column, got {list(table.columns)}")
    table = table.copy()
    if "downloads" in table.columns:
        numbers = pd.to_numeric(table["downloads"], errors="coerce")
        bad = (numbers.isna() & table["downloads"].notna()) | (numbers < 0) | np.isinf(numbers)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MatrixError(f"{source}: downloads {table['downloads'].tolist()[i]!r} in row {i + 1} (model "
                              f"{table['model_id'].iloc[i]!r}) is not a number >= 0")
        table["downloads"] = numbers
    if "is_base" in table.columns:
        table["is_base"] = [_flag(value, i, table["model_id"].iloc[i], source)
                            for i, value in enumerate(table["is_base"].tolist())]
    return table


def _flag(value, row: int, model_id, source: str) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in FLAG_SPELLINGS:
        return FLAG_SPELLINGS[value.strip().lower()]
    raise MatrixError(f"{source}: is_base {value!r} in row {row + 1} (model {model_id!r}) is not true/false, "
                      f"yes/no or 1/0")


def align_models_table(models: pd.DataFrame, model_ids) -> pd.DataFrame:
    """The models table's rows in the matrix's model order; every matrix model must be present."""
    models = checked_models_table(models)
    table = models.drop_duplicates("model_id").set_index(models.drop_duplicates("model_id")["model_id"].astype(str))
    absent = [m for m in model_ids if m not in table.index]
    if absent:
        raise MatrixError(f"models table lacks {len(absent)} model(s) of the matrix, e.g. {absent[0]!r}")
    aligned = table.loc[list(model_ids)].reset_index(drop=True)
    if "downloads" in aligned.columns and aligned["downloads"].isna().any():
        missing = list(model_ids)[int(np.flatnonzero(aligned["downloads"].isna().to_numpy())[0])]
        raise MatrixError(f"models table has no downloads for model {missing!r}")
    return aligned


def rank_of(accuracies: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """1 + number of models with strictly higher accuracy than each chosen model (competition rank)."""
    sorted_acc = np.sort(accuracies)
    return 1 + accuracies.size - np.searchsorted(sorted_acc, accuracies[chosen], side="right")
