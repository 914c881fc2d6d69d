"""Fixtures of the trainwell.train tests; their plain helpers (fused_helpers) are imported by name."""

import sys
from pathlib import Path

import pytest
import torch

# The tests import their helpers as ``fused_helpers``; make that work whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def images():
    """Small 8x8 'images' with a learnable rule, and a validation split."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 8, 8, generator=g)
    y = (x[:, :4, :].sum(dim=(1, 2)) > 0).long() + 2 * (x[:, 4:, :4].sum(dim=(1, 2)) > 0).long()
    return x[:640], y[:640], x[640:], y[640:]
