"""npz and npy files: which keys are read, shapes from the headers alone, and errors naming the file."""

import numpy as np
import pytest

from trainwell.data.numpy_files import npy_shape, npz_input_key, npz_shape, read_npz
from trainwell.errors import DataError


def test_keras_keys_and_plain_keys_are_read_with_the_optional_parts(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    np.savez_compressed(tmp_path / "k.npz", x_train=x, y_train=np.arange(6), x_test=x[:2], y_test=np.arange(2))
    parts = read_npz(tmp_path / "k.npz")
    assert set(parts) == {"train", "test"} and parts["test"][0].shape == (2, 2, 2)
    np.savez(tmp_path / "p.npz", x=x, y=np.arange(6), x_val=x[:1], y_val=np.arange(1))
    assert set(read_npz(tmp_path / "p.npz")) == {"train", "validation"}
    assert npz_shape(tmp_path / "k.npz", "x_train") == (6, 2, 2) and npz_shape(tmp_path / "k.npz", "x") is None
    assert npz_input_key(tmp_path / "k.npz") == ("x_test", "y_test")
    np.save(tmp_path / "a.npy", x)
    assert npy_shape(tmp_path / "a.npy") == (6, 2, 2)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((2, 1))}, "holds 'x' but not 'y'"),
    ({"a": np.zeros(2)}, "holds no training arrays; expected keys x and y"),
    ({"x": np.zeros((2, 1)), "y": np.zeros(3)}, "'x' has 2 examples but 'y' has 3"),
    ({"x": np.array([{}, {}], dtype=object), "y": np.zeros(2)}, "save numbers, not Python objects"),
])
def test_a_bad_archive_is_named(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        read_npz(tmp_path / "bad.npz")


def test_bytes_that_are_no_numpy_file_are_named_so_without_numpy_s_unpickling_hint(tmp_path):
    (tmp_path / "g.npz").write_text("garbage\n")
    with pytest.raises(DataError) as caught:
        read_npz(tmp_path / "g.npz")
    assert str(caught.value) == (f"{tmp_path / 'g.npz'}: is not a NumPy file (an .npz archive of arrays or an .npy "
                                 "array, as numpy.savez and numpy.save write them)")
    assert "pickle" not in str(caught.value)
