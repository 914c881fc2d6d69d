"""Class labels as the user's files hold them (names like ``"class_0"``, or numbers) and as a model takes them.

A classifier's targets are indices ``0..K-1``; a file's are whatever it holds. :func:`encode_labels`
sorts the training labels' distinct values (numerically when they all are numbers, so ``2``
comes before ``10``) and numbers them; the names are saved in the model file, so predictions
print ``"class_2"`` rather than ``2``, and :func:`apply_labels` maps a validation or test set's
labels with the same names, refusing one that training never saw.

>>> codes, names = encode_labels(np.array(["b", "a", "b"], dtype=object))
>>> codes.tolist(), names
([1, 0, 1], ('a', 'b'))
>>> apply_labels(np.array(["a", "c"], dtype=object), names, where="test.csv").tolist()
Traceback (most recent call last):
...
trainwell.errors.DataError: test.csv: label 'c' (row 2) was not seen in training; the training labels: a, b
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from trainwell.errors import DataError, shown

__all__ = ["encode_labels", "apply_labels", "label_name", "numeric_targets"]


def label_name(value) -> str:
    """How a label is written as a class name: ``3.0`` and ``"3.0"`` as ``"3"`` (so a CSV's, a Parquet file's and
    an array's labels name the same classes), other strings as they are.

    >>> label_name(3.0), label_name(" 3.0 "), label_name("cat"), label_name(0.5)
    ('3', '3', 'cat', '0.5')
    """
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        return text if not math.isfinite(number) else label_name(number)
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _sort_key(name: str):
    try:
        number = float(name)
    except ValueError:
        return (1, 0.0, name)
    return (0, number, name) if math.isfinite(number) else (1, 0.0, name)


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes, class_names)``: ``y``'s values as indices ``0..K-1`` into their sorted distinct names."""
    names = [label_name(value) for value in np.ravel(y)]
    classes = tuple(sorted(set(names), key=_sort_key))
    index = {name: code for code, name in enumerate(classes)}
    return np.asarray([index[name] for name in names], dtype=np.int64), classes


def apply_labels(y: np.ndarray, class_names: Sequence[str], *, where: str) -> np.ndarray:
    """``y``'s values as indices into ``class_names`` (a model's); DataError naming a label not among them."""
    index = {name: code for code, name in enumerate(class_names)}
    codes = np.empty(len(y), dtype=np.int64)
    for row, value in enumerate(np.ravel(y)):
        name = label_name(value)
        if name not in index:
            raise DataError(f"{where}: label {shown(name)} (row {row + 1}) was not seen in training; the training "
                            f"labels: {', '.join(class_names)}")
        codes[row] = index[name]
    return codes


def numeric_targets(y: np.ndarray, *, where: str) -> np.ndarray:
    """Regression targets as float32 ``(N, width)``; DataError naming the first value that is not a number."""
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        flat = np.ravel(np.asarray(y, dtype=object))
        for row, value in enumerate(flat):
            try:
                float(value)
            except (TypeError, ValueError):
                raise DataError(f"{where}: target {shown(value)} (row {row + 1}) is not a number; a regression "
                                "loss needs numeric targets") from None
        raise
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
        raise DataError(f"{where}: target of row {row + 1} is not a finite number")
    values = values.astype(np.float32)
    return values.reshape(len(values), -1) if values.ndim != 2 else values
