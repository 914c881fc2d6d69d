"""Every format read into parts; an IDX folder found by its files' names; shapes read cheaply for a summary."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from file_helpers import write_png  # noqa: E402

from trainwell.data import write_idx  # noqa: E402
from trainwell.data.files import idx_files, input_shape_of, read_inputs, read_parts  # noqa: E402
from trainwell.errors import DataError  # noqa: E402


def test_an_idx_folder_is_read_by_its_files_names_compressed_or_not(tmp_path):
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1], dtype=np.uint8))
    parts = read_parts("idx", tmp_path)
    assert parts.train.x.shape == (2, 3, 3) and parts.test is None and input_shape_of("idx", tmp_path) == (3, 3)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:1])
    with pytest.raises(DataError, match="has test images but no test labels"):
        idx_files(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="has no train-labels IDX file"):
        read_parts("idx", tmp_path)


def test_shapes_for_a_summary_come_from_headers_and_the_first_image(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c,label\n1,2,3,x\n")
    assert input_shape_of("csv", tmp_path / "t.csv", target="label") == (3,)
    assert input_shape_of("csv", tmp_path / "t.csv", target="label", features=["a"]) == (1,)
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 7)), y=np.zeros(5))
    assert input_shape_of("npz", tmp_path / "d.npz") == (7,)
    write_png(tmp_path / "img" / "a" / "1.png", np.zeros((6, 4)))
    assert input_shape_of("image_folder", tmp_path / "img") == (6, 4)
    assert input_shape_of("image_folder", tmp_path / "img", image_size=[2, 2], color_mode="rgb") == (3, 2, 2)


def test_npy_needs_its_target_file_and_new_inputs_are_found_by_suffix(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    with pytest.raises(DataError, match="set data.target_path"):
        read_parts("npy", tmp_path / "x.npy")
    np.save(tmp_path / "y.npy", np.zeros(3))
    with pytest.raises(DataError, match="4 inputs but 3 targets"):
        read_parts("npy", tmp_path / "x.npy", target_path=tmp_path / "y.npy")
    assert read_inputs(tmp_path / "x.npy", trained_format="npz").x.shape == (4, 2)
    with pytest.raises(DataError, match="cannot tell its format from the name"):
        (tmp_path / "x.dat").write_text("")
        read_inputs(tmp_path / "x.dat", trained_format="csv")
