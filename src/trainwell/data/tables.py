"""Tables of the user's own (CSV, Parquet): named columns in, a feature matrix and a target column out.

A CSV is read with the standard library's :mod:`csv` (a header row of column names, then one
row per example); a Parquet file with pyarrow, an optional dependency (``pip install
pyarrow``). Either becomes a :class:`Table`, and :func:`table_arrays` picks the features (every
column but the target, unless named) as float32 and the target as it is (strings stay strings;
:mod:`~trainwell.data.labels` encodes them).

Every problem is one :class:`~trainwell.errors.DataError` naming the file and where in it:
an empty file, a ragged row, a missing column, a value that is not a number::

    wine.csv: column 'alcohol', row 3 (line 4): 'high' is not a number; every feature must be numeric
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trainwell.errors import DataError, shown

__all__ = ["Table", "read_table", "read_csv", "read_parquet", "table_arrays", "table_columns"]


@dataclass(frozen=True)
class Table:
    """A table's columns, by name, each a list of its values (strings for a CSV); ``source`` names the file.

    ``lines`` are the line numbers of the data rows in the file (a CSV's; None for Parquet), for messages.
    """

    source: str
    columns: dict[str, list]
    rows: int
    lines: tuple[int, ...] | None = None

    def where(self, row: int) -> str:
        """``row 3 (line 4)``: a data row (from 1) and its line in the file."""
        return f"row {row + 1}" + (f" (line {self.lines[row]})" if self.lines else "")


def read_csv(path: str | os.PathLike) -> Table:
    """A CSV file with a header row as a :class:`Table`; DataError on an empty file or a ragged row."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot be read as a CSV file ({error})") from None
    lines = [(number, row) for number, row in enumerate(rows, start=1) if row]  # blank lines are skipped
    if not lines:
        raise DataError(f"{path}: the file is empty; a CSV needs a header row of column names and one row per example")
    (_, header), body = lines[0], lines[1:]
    names = [name.strip() for name in header]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: the header names column {shown(duplicates[0])} more than once")
    if not body:
        raise DataError(f"{path}: the file has a header ({len(names)} columns) but no rows")
    for index, (number, row) in enumerate(body):
        if len(row) != len(names):
            raise DataError(f"{path}: row {index + 1} (line {number}) has {len(row)} fields, but the header has "
                            f"{len(names)} columns")
    columns = {name: [row[i] for _, row in body] for i, name in enumerate(names)}
    return Table(str(path), columns, len(body), tuple(number for number, _ in body))


def read_parquet(path: str | os.PathLike) -> Table:
    """A Parquet file as a :class:`Table` (needs pyarrow: ``pip install pyarrow``)."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(f"{path}: reading Parquet files needs pyarrow: pip install pyarrow "
                        "(or pip install 'trainwell[parquet]')") from None
    try:
        table = parquet.read_table(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as error:  # pyarrow raises its own ArrowInvalid, OSError...: say which file
        raise DataError(f"{path}: cannot be read as a Parquet file ({str(error).splitlines()[0]})") from None
    if table.num_columns == 0:
        raise DataError(f"{path}: the file is empty (no columns)")
    if table.num_rows == 0:
        raise DataError(f"{path}: the file has columns but no rows")
    return Table(str(path), {name: table.column(name).to_pylist() for name in table.column_names}, table.num_rows)


def read_table(path: str | os.PathLike, format: str) -> Table:
    """``format`` "csv" or "parquet"."""
    return read_parquet(path) if format == "parquet" else read_csv(path)


def table_columns(path: str | os.PathLike, format: str) -> list[str]:
    """The column names alone (a CSV's header line; a Parquet file's schema), without reading the rows."""
    if format == "parquet":
        try:
            import pyarrow.parquet as parquet
        except ImportError:
            raise DataError(f"{path}: reading Parquet files needs pyarrow: pip install pyarrow") from None
        try:
            return list(parquet.read_schema(str(path)).names)
        except Exception as error:
            raise DataError(f"{path}: cannot be read as a Parquet file ({str(error).splitlines()[0]})") from None
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            header = next((row for row in csv.reader(handle) if row), None)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot be read as a CSV file ({error})") from None
    if header is None:
        raise DataError(f"{path}: the file is empty; a CSV needs a header row of column names and one row per example")
    return [name.strip() for name in header]


def _missing(table: Table, names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in table.columns:
            separated = next((sep for sep in (";", "\t", "|") if len(table.columns) == 1 and sep in next(iter(
                table.columns))), None)
            hint = (f"; the header looks {'tab' if separated == chr(9) else repr(separated)}-separated, and trainwell "
                    "reads comma-separated CSV (save the file with commas)" if separated else "")
            raise DataError(f"{table.source}: has no column {shown(name)} ({what}); its columns: "
                            f"{', '.join(table.columns)}{hint}")


FLOAT32_MAX = float(np.finfo(np.float32).max)  # the features become float32: a larger value would be inf


def _numbers(table: Table, name: str) -> np.ndarray:
    """Column ``name`` as float64; DataError naming the first value that is not a finite number."""
    values = table.columns[name]
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or abs(number) > FLOAT32_MAX or isinstance(value, bool):
            text = "an empty value" if value is None or (isinstance(value, str) and not value.strip()) else shown(value)
            what = (f"is beyond float32's range (±{FLOAT32_MAX:.4g}), which the model computes in"
                    if math.isfinite(number) and not isinstance(value, bool) else "is not a number")
            raise DataError(f"{table.source}: column {shown(name)}, {table.where(row)}: {text} {what}; "
                            "every feature must be a finite number (leave other columns out with data.features)")
        out[row] = number
    return out


def table_arrays(table: Table, *, target: str | None, features: Sequence[str] | None,
                 target_needed: bool = True) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """``(x, y, features)``: the features as float32 ``(rows, features)``, the target column as an array of its
    values (``None`` when the table has no such column and ``target_needed`` is false, as for new data to
    predict) and the feature names used, in order.

    ``features`` default to every column but the target, in the file's order.
    """
    has_target = target is not None and target in table.columns
    if target is not None and target_needed and not has_target:
        _missing(table, [target], "data.target")
    if features is None:
        features = [name for name in table.columns if name != target]
        if not features:
            raise DataError(f"{table.source}: has no column besides the target {shown(target)}; the model needs features")
    else:
        _missing(table, features, "in data.features")
        if target in features:
            raise DataError(f"{table.source}: data.features lists the target column {shown(target)}")
    x = np.stack([_numbers(table, name) for name in features], axis=1).astype(np.float32)
    y = None
    if has_target:
        values = table.columns[target]
        y = np.asarray([value.strip() if isinstance(value, str) else value for value in values], dtype=object)
        empty = next((row for row, value in enumerate(y) if value is None or value == ""), None)
        if empty is not None:
            raise DataError(f"{table.source}: column {shown(target)} (the target), {table.where(empty)}: "
                            "the value is empty; every row needs a target")
    return x, y, list(features)
