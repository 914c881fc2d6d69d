"""Small, deterministic ways to cut and scale image arrays.

Plain NumPy in, NumPy out, so they work the same for any model code. Nothing
here draws randomness without a ``seed`` argument: the same call always gives
the same arrays, which makes experiments repeatable and tests exact.

Bad arguments raise :class:`~trainwell.errors.DataError` saying what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from trainwell.checks import check_integer, check_number
from trainwell.errors import DataError

__all__ = [
    "Split",
    "validation_split",
    "Standardizer",
    "standardize",
    "scale_unit",
    "filter_classes",
    "take_per_class",
    "take_first",
]


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim != 1:
        raise DataError(f"Expected images x of shape (N, ...) and labels y of shape (N,), got {x.shape} and {y.shape}.")
    if len(x) != len(y):
        raise DataError(f"x and y must have the same length, got {len(x)} images and {len(y)} labels.")
    return x, y


class Split(NamedTuple):
    """A training part and a validation part; unpacks as ``x_train, y_train, x_valid, y_valid``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray


def validation_split(x: np.ndarray, y: np.ndarray, size: int = 5000) -> Split:
    """Hold out the *first* ``size`` examples for validation, keep the rest for training.

    This is the split the book uses for Fashion-MNIST (the first 5,000 training
    images validate, the other 55,000 train). The data is already shuffled, so
    no randomness is needed. The parts are views of the inputs, not copies.

    >>> import numpy as np
    >>> x_tr, y_tr, x_va, y_va = validation_split(np.arange(10), np.arange(10), size=3)
    >>> x_va, x_tr
    (array([0, 1, 2]), array([3, 4, 5, 6, 7, 8, 9]))
    """
    x, y = _check_pair(x, y)
    check_integer(size, f"validation size must be an integer from 0 to {len(x) - 1} (fewer than the {len(x)} examples)",
                  minimum=0, maximum=len(x) - 1, numpy=True, error=DataError, end=".")
    return Split(x[size:], y[size:], x[:size], y[:size])


class Standardizer:
    """Per-pixel standardization: ``(x - mean) / std``, fitted on training data only.

    Fitting on the training part alone keeps the validation and test parts
    honest: they are scaled with statistics they did not contribute to.

    A pixel with standard deviation 0 (e.g. a corner that is black in every
    training image) is divided by 1 instead, as scikit-learn's StandardScaler
    does: such a pixel then maps to 0 on the training data and to its plain
    difference from the mean elsewhere. Adding an epsilon instead would divide
    by a tiny number and blow up any test pixel that differs, and dividing by
    0 would give inf/nan.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, x_train: np.ndarray, *, chunk: int = 8192) -> Standardizer:
        """Compute the per-pixel mean and std (zero std replaced by 1) of ``x_train``.

        Works through ``chunk`` images at a time in float64, so that large
        uint8 arrays need neither a full float copy nor lose precision.
        """
        x_train = np.asarray(x_train)
        if x_train.ndim < 1 or len(x_train) == 0:
            raise DataError(f"Cannot fit a Standardizer on an empty array (shape {x_train.shape}).")
        n = len(x_train)
        total = np.zeros(x_train.shape[1:], dtype=np.float64)
        for start in range(0, n, chunk):
            total += x_train[start : start + chunk].sum(axis=0, dtype=np.float64)
        mean = total / n
        squares = np.zeros_like(mean)
        for start in range(0, n, chunk):
            squares += ((x_train[start : start + chunk] - mean) ** 2).sum(axis=0)
        std = np.sqrt(squares / n)
        return cls(mean, np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardize ``x`` (same per-example shape as the training data) into float32."""
        x = np.asarray(x)
        if x.shape[1:] != self.mean.shape:
            raise DataError(
                f"Cannot standardize arrays of shape {x.shape}: fitted on examples of shape {self.mean.shape}."
            )
        return ((x.astype(np.float32) - self.mean) / self.std).astype(np.float32, copy=False)


def standardize(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardize ``x_train`` and ``others`` with statistics of ``x_train`` only.

    Returns a tuple of float32 arrays, ``x_train``'s first:
    ``x_tr, x_va, x_te = standardize(x_tr, x_va, x_te)``. See
    :class:`Standardizer` for how constant pixels are handled.
    """
    scaler = Standardizer.fit(x_train)
    return tuple(scaler.transform(x) for x in (x_train, *others))


def scale_unit(x: np.ndarray, pixel_max: float) -> np.ndarray:
    """Scale pixel values into ``[0, 1]`` by dividing by ``pixel_max``, as float32.

    >>> scale_unit(np.array([0, 51, 255], dtype=np.uint8), 255)
    array([0. , 0.2, 1. ], dtype=float32)
    """
    check_number(pixel_max, "pixel_max must be a positive number (255 for MNIST, 16 for digits)", above=0, numpy=True,
                 error=DataError, end=".")
    return np.asarray(x, dtype=np.float32) / np.float32(pixel_max)


def filter_classes(
    x: np.ndarray, y: np.ndarray, classes: Sequence[int], *, relabel: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the examples of ``classes``, in their original order.

    With ``relabel=True`` the labels become ``0..k-1`` in the order ``classes``
    are given, so ``classes=[5, 6, 7, 8, 9]`` turns 5 into 0 and 9 into 4 --
    ready for a fresh k-way output layer (e.g. digits 0-4 for one task and 5-9
    for another).

    >>> filter_classes(np.arange(6), np.array([0, 1, 2, 0, 1, 2]), [2, 0])
    (array([0, 2, 3, 5]), array([1, 0, 1, 0]))
    """
    x, y = _check_pair(x, y)
    try:
        classes = [int(c) for c in classes]
    except (TypeError, ValueError):
        raise DataError(f"classes must be a sequence of integer labels, got {classes!r}.") from None
    if not classes:
        raise DataError("filter_classes needs at least one class.")
    if len(set(classes)) != len(classes):
        raise DataError(f"filter_classes got a class more than once: {classes}.")
    present = set(np.unique(y).tolist())
    absent = [c for c in classes if c not in present]
    if absent:
        raise DataError(
            f"Class{'es' if len(absent) > 1 else ''} {', '.join(map(str, absent))} "
            f"{'do' if len(absent) > 1 else 'does'} not occur in y; present: {sorted(present)}."
        )
    keep = np.isin(y, classes)
    y_kept = y[keep].astype(np.int64)
    if relabel:
        new_labels = np.empty_like(y_kept)
        for new, old in enumerate(classes):
            new_labels[y_kept == old] = new
        y_kept = new_labels
    return x[keep], y_kept


def take_per_class(x: np.ndarray, y: np.ndarray, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``k`` random examples of every class in ``y``, reproducibly.

    The same ``seed`` always picks the same examples; the result keeps the
    original order of the examples (it is sorted by index, not grouped by
    class). Useful for "train with only 100 images per class" experiments.
    """
    x, y = _check_pair(x, y)
    check_integer(k, "k (examples per class) must be a positive integer", minimum=1, numpy=True, error=DataError, end=".")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        indices = np.flatnonzero(y == label)
        if len(indices) < k:
            raise DataError(f"Class {label} has only {len(indices)} examples, fewer than k={k}.")
        chosen.append(rng.choice(indices, size=k, replace=False))
    order = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    return x[order], y[order]


def take_first(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` examples (views, not copies); for quick runs on a slice of the data."""
    x, y = _check_pair(x, y)
    check_integer(n, f"n must be an integer from 0 to {len(x)} (the number of examples)", minimum=0, maximum=len(x),
                  numpy=True, error=DataError, end=".")
    return x[:n], y[:n]
