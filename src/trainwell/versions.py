"""trainwell's version, and the versions of the libraries that a saved model and a run record.

The version lives here rather than in the package's ``__init__`` so that the modules that
record it (a run's fingerprint, a model file's metadata) need not import the whole package.
"""

from __future__ import annotations

import platform

import numpy as np
import torch

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Library versions, recorded with every saved model."""
    return {"trainwell": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}
