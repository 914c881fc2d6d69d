"""load() and verify(): the real datasets, scikit-learn's digits, and damaged files."""

import hashlib

import numpy as np
import pytest
from data_helpers import FILENAMES, gz, idx_bytes, spec_for, synthetic_arrays, write_set

from trainwell.data import Dataset, load, verify
from trainwell.errors import DataError

# --- the real datasets (TRAINWELL_DATA must point at them; CI sets it) ---


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_real_dataset_shapes(real_data, name):
    data = load(name, offline=True)
    assert isinstance(data, Dataset) and data.name == name
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.x_train.dtype == data.x_test.dtype == np.uint8
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.y_train.dtype == data.y_test.dtype == np.int64
    assert data.y_train.min() == 0 and data.y_train.max() == 9
    assert set(np.unique(data.y_test)) == set(range(10))
    assert data.pixel_max == 255 and data.num_classes == 10 and data.image_shape == (28, 28)
    assert "TRAINWELL_DATA" in data.source


def test_real_mnist_class_counts(real_data):
    counts = np.bincount(load("mnist", offline=True).y_train)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_fashion_mnist_pixel_statistics(real_data):
    data = load("fashion_mnist", offline=True)
    pixels = data.x_train / 255.0
    assert pixels.mean() == pytest.approx(0.2860, abs=5e-5)
    assert pixels.std() == pytest.approx(0.3530, abs=5e-5)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_real_files_verify(real_data, name):
    checks = verify(name)
    assert len(checks) == 4
    assert all(ok for _file, ok, _detail in checks), checks
    load(name, offline=True, verify=True)


# --- scikit-learn's digits: offline, fixed split ---


def test_digits_offline_with_documented_split(monkeypatch):
    from sklearn.datasets import load_digits

    monkeypatch.setenv("TRAINWELL_OFFLINE", "1")
    data = load("digits")
    assert data.x_train.shape == (1500, 8, 8) and data.x_test.shape == (297, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.pixel_max == 16 and data.x_train.max() == 16
    assert data.class_names == tuple("0123456789")
    reference = load_digits()
    np.testing.assert_array_equal(data.x_train, reference.images[:1500])
    np.testing.assert_array_equal(data.y_test, reference.target[1500:])
    assert verify("digits") == []


# --- the in-process cache hands out copies ---


def test_repeated_loads_cannot_corrupt_each_other(tmp_path):
    arrays = synthetic_arrays()
    write_set(tmp_path / "mnist", arrays)
    first = load("mnist", path=tmp_path, verify=False)
    first.x_train[:] = 0
    first.y_train[:] = 7
    second = load("mnist", path=tmp_path, verify=False)
    np.testing.assert_array_equal(second.x_train, arrays["train_images"])
    np.testing.assert_array_equal(second.y_train, arrays["train_labels"])
    assert second.x_train.flags.writeable


def test_a_replaced_file_is_read_again(tmp_path):
    write_set(tmp_path / "mnist", synthetic_arrays(n_train=12))
    assert load("mnist", path=tmp_path, verify=False).x_train.shape[0] == 12
    write_set(tmp_path / "mnist", synthetic_arrays(n_train=15))
    assert load("mnist", path=tmp_path, verify=False).x_train.shape[0] == 15


# --- damaged or mismatched files ---


def test_verify_reports_a_changed_file(tmp_path, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays))
    folder = write_set(tmp_path / "mnist", arrays)
    changed = arrays["test_labels"].copy()
    changed[0] = 9
    (folder / FILENAMES["test_labels"]).write_bytes(gz(idx_bytes(changed)))

    checks = {file.name: (ok, detail) for file, ok, detail in verify("mnist", path=tmp_path)}
    assert [name for name, (ok, _) in checks.items() if not ok] == [FILENAMES["test_labels"]]
    detail = checks[FILENAMES["test_labels"]][1]
    assert hashlib.sha256(idx_bytes(changed)).hexdigest() in detail

    load("mnist", path=tmp_path, verify=False)  # without verify the (well-formed) file loads
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz does not have the expected content"):
        load("mnist", path=tmp_path, verify=True)
    with pytest.raises(DataError, match="does not have the expected content"):
        load("mnist", path=tmp_path)  # checked by default: a damaged file is never used silently


def test_verify_reports_an_unreadable_file(tmp_path, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays))
    folder = write_set(tmp_path / "mnist", arrays)
    path = folder / FILENAMES["train_images"]
    path.write_bytes(path.read_bytes()[:-10])
    checks = verify("mnist", path=tmp_path)
    assert [ok for _, ok, _ in checks] == [False, True, True, True]
    assert "truncated gzip" in checks[0].detail


def test_verify_needs_the_files(tmp_path):
    with pytest.raises(DataError, match="verify never downloads"):
        verify("mnist")


def test_truncated_file_on_load_names_it(tmp_path):
    folder = write_set(tmp_path / "mnist", synthetic_arrays())
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(synthetic_arrays()["train_images"])[:-5])
    (folder / FILENAMES["train_images"]).unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load("mnist", path=tmp_path)


def test_images_and_labels_must_match(tmp_path):
    arrays = synthetic_arrays()
    arrays["test_labels"] = arrays["test_labels"][:-1]
    write_set(tmp_path / "mnist", arrays)
    with pytest.raises(DataError, match="5 images but 4 labels"):
        load("mnist", path=tmp_path)


def test_labels_must_be_class_indices(tmp_path):
    arrays = synthetic_arrays()
    arrays["train_labels"][3] = 12
    write_set(tmp_path / "mnist", arrays)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz holds labels from 0 to 12"):
        load("mnist", path=tmp_path)


def test_images_must_be_three_dimensional(tmp_path):
    arrays = synthetic_arrays()
    arrays["train_images"] = arrays["train_images"].reshape(12, 16)
    write_set(tmp_path / "mnist", arrays)
    with pytest.raises(DataError, match=r"uint8 images of shape \(N, height, width\)"):
        load("mnist", path=tmp_path)
