"""Fixtures shared by all tests: fixed seeds, tiny synthetic data, the real datasets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers as `helpers`

REAL_DATA = os.environ.get("TRAINWELL_DATA")


@pytest.fixture(autouse=True)
def fixed_seeds():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def blobs():
    """A small 3-class problem a linear model learns in a few epochs: (x, y) as float32/int64 arrays."""
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    y = rng.integers(0, 3, size=600)
    x = centers[y] + rng.normal(scale=0.5, size=(600, 4))
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture
def needs_real_data():
    """Skip when TRAINWELL_DATA is unset (CI sets it, so these tests run there)."""
    if not REAL_DATA:
        pytest.skip("TRAINWELL_DATA is not set; the real datasets are not available")
    return REAL_DATA
