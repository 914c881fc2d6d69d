"""The tests of the scripts in benchmarks/: they import them by name (``import suite``, ``import gpu``)."""

import sys
from pathlib import Path

# benchmarks/ is a folder of scripts, not a package: make ``import suite`` work whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
