import numpy as np
import pytest

from trainwell.data.pairs import make_pairs, pair_batches
from trainwell.errors import DataError


def test_half_same_half_different_and_labels_right():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    x = np.arange(500)
    pairs, same = make_pairs(x, y, 1001, seed=3)
    assert pairs.shape == (1001, 2) and same.sum() == 500
    assert np.array_equal(y[pairs[:, 0]] == y[pairs[:, 1]], same.astype(bool))
    assert not np.any((pairs[:, 0] == pairs[:, 1]) & same.astype(bool))  # never an image with itself


def test_seeded_and_reproducible():
    y = np.repeat(np.arange(4), 10)
    a = make_pairs(np.arange(40), y, 50, seed=1)
    b = make_pairs(np.arange(40), y, 50, seed=1)
    c = make_pairs(np.arange(40), y, 50, seed=2)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    first = [next(pair_batches(np.arange(40), y, 8, seed=5))[0] for _ in range(2)]
    assert np.array_equal(first[0], first[1])


def test_a_single_class_is_an_error():
    with pytest.raises(DataError, match="at least two classes"):
        make_pairs(np.arange(5), np.zeros(5, dtype=int), 4, seed=0)
    with pytest.raises(DataError, match="at least two classes"):
        next(pair_batches(np.arange(5), np.zeros(5, dtype=int), 4, seed=0))
    with pytest.raises(DataError, match="n_pairs"):
        make_pairs(np.arange(4), np.array([0, 0, 1, 1]), 1, seed=0)
