"""Pairs of images for learning "same class or not" (the chapter's exercise 10).

Half the pairs show two images of the same class, half two of different classes,
drawn with a seeded generator so the same seed gives the same pairs. A pair is
stored as one array of shape ``(2, H, W)``, so a batch of pairs is an ordinary
``(N, 2, H, W)`` tensor that the trainer batches like any other input, and a
two-tower model splits it (see :class:`trainwell.model.modules.TwoTower`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from trainwell.checks import check_integer
from trainwell.errors import DataError


def _class_index(y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(f"pairs need at least two classes to make 'different' pairs; the split has only "
                        f"class {classes.tolist()}")
    members = [np.flatnonzero(y == c) for c in classes]
    return classes, members


def make_pairs(x: np.ndarray, y: np.ndarray, n_pairs: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` pairs ``(N, 2, ...)`` and targets (1 = same class, 0 = different), half and half.

    >>> x, y = np.arange(8).reshape(8, 1), np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> pairs, same = make_pairs(x, y, 6, seed=0)
    >>> pairs.shape, int(same.sum())
    ((6, 2, 1), 3)
    >>> all((y[pairs[i, 0, 0]] == y[pairs[i, 1, 0]]) == bool(same[i]) for i in range(6))
    True
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"make_pairs: {len(x)} images but {len(y)} labels")
    check_integer(n_pairs, "make_pairs: n_pairs must be an integer >= 2", minimum=2, numpy=True, error=DataError)
    classes, members = _class_index(y)
    rng = np.random.default_rng(seed)
    n_same = n_pairs // 2
    n_diff = n_pairs - n_same
    if any(len(m) < 2 for m in members):
        raise DataError("make_pairs: every class needs at least two images to make 'same' pairs")
    # Same-class pairs: a random class (weighted by size), then two distinct members of it.
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    same_classes = rng.choice(len(classes), size=n_same, p=sizes / sizes.sum())
    first = np.empty(n_pairs, dtype=np.int64)
    second = np.empty(n_pairs, dtype=np.int64)
    for k, cls in enumerate(same_classes):
        a, b = rng.choice(len(members[cls]), size=2, replace=False)
        first[k], second[k] = members[cls][a], members[cls][b]
    # Different-class pairs: two random images, the second redrawn until its class differs.
    for k in range(n_same, n_pairs):
        a = rng.integers(len(y))
        b = rng.integers(len(y))
        while y[b] == y[a]:
            b = rng.integers(len(y))
        first[k], second[k] = a, b
    targets = np.concatenate([np.ones(n_same, dtype=np.int64), np.zeros(n_diff, dtype=np.int64)])
    order = rng.permutation(n_pairs)
    pairs = np.stack([x[first[order]], x[second[order]]], axis=1)
    return pairs, targets[order]


def pair_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of pair batches, half same-class and half different, seeded.

    >>> batches = pair_batches(np.zeros((4, 3)), np.array([0, 0, 1, 1]), 4, seed=1)
    >>> pairs, same = next(batches)
    >>> pairs.shape, same.tolist().count(1)
    ((4, 2, 3), 2)
    """
    _class_index(np.asarray(y))
    rng = np.random.default_rng(seed)
    while True:
        yield make_pairs(x, y, batch_size, seed=int(rng.integers(2**63)))
