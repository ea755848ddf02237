"""Shared test set-up: Qt without a screen, and the shared reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything can import Qt: no display on CI, and no plugin chatter from QtMultimedia.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia*=false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared reference data is not at {SHARED_DATA}")
    return SHARED_DATA
