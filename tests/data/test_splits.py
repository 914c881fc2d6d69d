"""Splitting, scaling and sub-setting arrays."""

import numpy as np
import pytest

from trainwell.data import (
    Standardizer,
    filter_classes,
    scale_unit,
    standardize,
    take_first,
    take_per_class,
    validation_split,
)
from trainwell.errors import DataError


def _data(n=100, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, 3), dtype=np.uint8)
    y = np.arange(n) % classes
    return x, y


def test_validation_split_takes_the_first_examples():
    x, y = _data()
    x_train, y_train, x_valid, y_valid = validation_split(x, y, size=30)
    np.testing.assert_array_equal(x_valid, x[:30])
    np.testing.assert_array_equal(y_valid, y[:30])
    np.testing.assert_array_equal(x_train, x[30:])
    np.testing.assert_array_equal(y_train, y[30:])
    assert validation_split(x, y, size=0).x_valid.shape == (0, 3, 3)


@pytest.mark.parametrize("size", [100, 101, -1, 2.5, True])
def test_validation_split_rejects_bad_sizes(size):
    x, y = _data()
    with pytest.raises(DataError, match="from 0 to 99"):
        validation_split(x, y, size=size)


def test_length_mismatch_is_an_error():
    x, y = _data()
    with pytest.raises(DataError, match="100 images and 99 labels"):
        validation_split(x, y[:-1], size=10)


def test_standardize_fits_on_the_training_part_only():
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(50, 4, 4)).astype(np.uint8)
    x_test = rng.integers(0, 256, size=(20, 4, 4)).astype(np.uint8)
    s_train, s_test = standardize(x_train, x_test)
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    assert s_train.dtype == s_test.dtype == np.float32
    np.testing.assert_allclose(s_train, (x_train - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s_test, (x_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(s_train.std(axis=0), 1, atol=1e-5)


def test_standardize_constant_pixels_give_no_nan():
    x_train = np.zeros((10, 2, 2), dtype=np.uint8)
    x_train[:, 0, 0] = np.arange(10)
    x_test = np.full((3, 2, 2), 5, dtype=np.uint8)
    s_train, s_test = standardize(x_train, x_test)
    assert np.isfinite(s_train).all() and np.isfinite(s_test).all()
    assert (s_train[:, 1:, :] == 0).all()
    np.testing.assert_array_equal(s_test[:, 1, 1], 5.0)  # divided by 1: the plain difference from the mean
    scaler = Standardizer.fit(x_train)
    assert scaler.std[1, 1] == 1 and scaler.std[0, 0] > 0


def test_standardize_chunks_agree_with_one_pass():
    x, _ = _data(n=1000)
    small = Standardizer.fit(x, chunk=7)
    whole = Standardizer.fit(x, chunk=10_000)
    np.testing.assert_allclose(small.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(small.std, whole.std, rtol=1e-6)


def test_standardize_errors():
    with pytest.raises(DataError, match="empty"):
        standardize(np.zeros((0, 2, 2)))
    scaler = Standardizer.fit(np.ones((3, 2, 2)))
    with pytest.raises(DataError, match=r"fitted on examples of shape \(2, 2\)"):
        scaler.transform(np.ones((3, 4, 4)))


def test_scale_unit():
    x = np.array([[0, 8, 16]], dtype=np.uint8)
    scaled = scale_unit(x, 16)
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, [[0.0, 0.5, 1.0]])
    for bad in (0, -1, "255", None):
        with pytest.raises(DataError, match="pixel_max must be a positive number"):
            scale_unit(x, bad)


def test_filter_classes_relabels_in_the_given_order():
    x, y = _data(n=30)
    x_kept, y_kept = filter_classes(x, y, [7, 5, 6, 8, 9])
    keep = y >= 5
    np.testing.assert_array_equal(x_kept, x[keep])
    np.testing.assert_array_equal(y_kept, np.array([1, 2, 0, 3, 4] * 3))
    assert y_kept.dtype == np.int64
    _, original = filter_classes(x, y, [5, 6, 7, 8, 9], relabel=False)
    np.testing.assert_array_equal(original, y[keep])


def test_filter_classes_errors():
    x, y = _data(n=30, classes=5)
    with pytest.raises(DataError, match="Class 7 does not occur in y; present: \\[0, 1, 2, 3, 4\\]"):
        filter_classes(x, y, [0, 7])
    with pytest.raises(DataError, match="more than once"):
        filter_classes(x, y, [1, 1])
    with pytest.raises(DataError, match="at least one class"):
        filter_classes(x, y, [])
    with pytest.raises(DataError, match="integer labels"):
        filter_classes(x, y, ["a"])


def test_take_per_class_is_deterministic_per_seed():
    x, y = _data(n=200)
    x1, y1 = take_per_class(x, y, 5, seed=42)
    x2, y2 = take_per_class(x, y, 5, seed=42)
    x3, _ = take_per_class(x, y, 5, seed=43)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert np.bincount(y1).tolist() == [5] * 10


def test_take_per_class_keeps_the_original_order():
    x = np.arange(200)
    y = np.arange(200) % 10
    picked, labels = take_per_class(x, y, 3, seed=0)
    assert (np.diff(picked) > 0).all()
    np.testing.assert_array_equal(labels, y[picked])


def test_take_per_class_errors():
    x, y = _data(n=25)  # classes 0..4 have 3 examples, 5..9 have 2
    with pytest.raises(DataError, match="Class 5 has only 2 examples, fewer than k=3"):
        take_per_class(x, y, 3, seed=0)
    with pytest.raises(DataError, match="positive integer"):
        take_per_class(x, y, 0, seed=0)


def test_take_first():
    x, y = _data()
    x5, y5 = take_first(x, y, 5)
    np.testing.assert_array_equal(x5, x[:5])
    np.testing.assert_array_equal(y5, y[:5])
    assert take_first(x, y, 100)[0].shape[0] == 100
    with pytest.raises(DataError, match="from 0 to 100"):
        take_first(x, y, 101)
    with pytest.raises(DataError, match="from 0 to 100"):
        take_first(x, y, -1)
