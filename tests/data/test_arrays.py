"""The edge where arrays enter: the finiteness check looks at every chunk, and names the first bad sample;
any NumPy view (reversed ones too) is read as its values."""

from __future__ import annotations

import pytest
import torch

from trainwell.data.arrays import _all_finite, check_finite
from trainwell.errors import ArrayError


@pytest.mark.parametrize("row", [0, 63, 64, 999])
def test_a_non_finite_value_is_found_in_any_chunk(row):
    x = torch.zeros(1000, 8)
    assert _all_finite(x, chunk_bytes=64 * 8 * 4)  # 64 rows a chunk
    x[row, 3] = float("inf")
    assert not _all_finite(x, chunk_bytes=64 * 8 * 4)
    with pytest.raises(ArrayError, match=rf"x: 1 value is NaN or infinite \(sample {row}\)"):
        check_finite(x, "x")


def test_scalars_and_integers():
    assert _all_finite(torch.tensor(1.0)) and not _all_finite(torch.tensor(float("nan")))
    check_finite(torch.arange(10), "y")  # integers are always finite


def test_only_training_data_is_told_about_skip_nonfinite():
    from trainwell.data.arrays import model_inputs

    bad = torch.tensor([[1.0, float("nan")]])
    with pytest.raises(ArrayError, match="skip_nonfinite"):
        model_inputs(bad, dtype=torch.float32, what="training data x")
    with pytest.raises(ArrayError, match=r"finite inputs$"):
        model_inputs(bad, dtype=torch.float32, what="evaluation data x")


def test_a_reversed_numpy_view_is_read_as_its_values():
    import numpy as np

    from trainwell.data.arrays import as_tensor

    x = np.arange(12.0).reshape(4, 3)
    assert torch.equal(as_tensor(x[::-1], "x"), torch.as_tensor(x[::-1].copy()))
    assert torch.equal(as_tensor(x[:, ::-2], "x"), torch.as_tensor(x[:, ::-2].copy()))


def test_huge_finite_values_whose_sum_overflows_are_finite():
    x = torch.full((1000, 8), 3e38)  # each finite; their float32 sum is infinite
    assert not torch.isfinite(x.sum()) and _all_finite(x, chunk_bytes=64 * 8 * 4)
    check_finite(x, "x")
    x[500, 0], x[501, 0] = float("inf"), float("-inf")  # a sum of NaN: still found, and where
    with pytest.raises(ArrayError, match=r"x: 2 values are NaN or infinite \(sample 500\)"):
        check_finite(x, "x")
