"""Shared fixtures for the trainwell.data tests.

Every test runs in isolation from the machine it runs on: the cache points at a
temporary folder, TRAINWELL_DATA and TRAINWELL_OFFLINE are unset and there are
no system dataset directories. Tests that want the real datasets ask for the
``real_data`` fixture, which restores TRAINWELL_DATA (and skips when it was
never set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tests import their helpers as ``data_helpers``; make that work whatever
# pytest's import mode (the default "prepend" mode does this by itself).
sys.path.insert(0, str(Path(__file__).parent))

from data_helpers import FileServer  # noqa: E402

from trainwell.data import download, locations, registry  # noqa: E402

REAL_DATA = os.environ.get("TRAINWELL_DATA")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, data dirs, system dirs or offline switch; no pause between retries."""
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINWELL_DATA", raising=False)
    monkeypatch.delenv("TRAINWELL_OFFLINE", raising=False)
    monkeypatch.setattr(locations, "SYSTEM_DIRS", ())
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)


@pytest.fixture
def real_data(monkeypatch):
    """Point TRAINWELL_DATA back at the real datasets; skip if it was never set."""
    if not REAL_DATA:
        pytest.skip("TRAINWELL_DATA is not set, so the real datasets are not available")
    monkeypatch.setenv("TRAINWELL_DATA", REAL_DATA)
    return REAL_DATA


@pytest.fixture
def use_spec(monkeypatch):
    """Replace a registered dataset's spec for the duration of a test."""

    def install(spec: registry.DatasetSpec) -> registry.DatasetSpec:
        monkeypatch.setitem(registry.DATASETS, spec.name, spec)
        return spec

    return install


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 (ephemeral port) with scripted answers."""
    srv = FileServer()
    yield srv
    srv.close()
