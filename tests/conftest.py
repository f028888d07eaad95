"""Shared pytest fixtures.

``tests/fixtures/`` holds the official parity tensors (``official_parity/``, produced by Meta's code, MIT)
and real robot data (``data/``); both are part of the repository, so a fresh clone runs every test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The fixture folder: ``official_parity/`` and ``data/``."""
    return FIXTURES


@pytest.fixture(scope="session")
def parity_dir(shared: Path) -> Path:
    return shared / "official_parity"
