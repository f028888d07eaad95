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


# The smallest `vjepa2-ac train` config the training tests share (32 px, 1-layer encoder and predictor).
TINY_TRAIN_AC = {
    "model": {
        "encoder": {
            "img_size": 32,
            "patch_size": 8,
            "num_frames": 6,
            "tubelet_size": 2,
            "embed_dim": 32,
            "depth": 1,
            "num_heads": 2,
        },
        "predictor": {"predictor_embed_dim": 32, "depth": 1, "num_heads": 2, "max_steps": 4},
    },
    "data": {"frames_per_clip": 6, "fps": 15.0, "crop": "none", "batch_size": 4},
    "optim": {"total_steps": 4, "warmup_steps": 1, "anneal_steps": 1, "start_lr": 1e-4, "lr": 2e-3},
    "run": {"checkpoint_every": 2, "tensorboard": False, "bf16": False, "device": "cpu"},
}
