"""Helpers shared by the training tests (imported, not collected)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster on a crowded CPU; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Rows of a run's ``metrics.csv``."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
