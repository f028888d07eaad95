"""Shared pytest fixtures.

``../shared/`` (next to the repository) holds the official parity fixtures and reference data. Its
location can be overridden with ``VJEPA2_AC_SHARED``. In CI it must exist: tests that need it fail
there instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("VJEPA2_AC_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        msg = f"shared fixtures directory not found at {path} (set VJEPA2_AC_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def parity_dir(shared: Path) -> Path:
    return shared / "fixtures" / "official_parity"
