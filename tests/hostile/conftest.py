"""Hostile inputs: every case must end in a clear error or be handled exactly (see outcomes.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # outcomes.py and the scans, for every module here
