"""``train`` faults: divergence, run folders that hold another run, stale embedding caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from train_helpers import TINY_TRAIN_AC, one_thread  # noqa: F401 (one_thread is a fixture)

from vjepa2_ac.experiments.cli import main
from vjepa2_ac.training.synthetic import write_blob_episodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("faults_train")
    data = root / "data"
    write_blob_episodes(data, num_episodes=4, steps=12, image_size=32, seed=0, max_move=0.05)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_TRAIN_AC))
    return data, config


def _train(setup, out: Path, *extra: str) -> int:
    data, config = setup
    return main(["train", "--config", str(config), "--data", str(data), "--out", str(out), *extra])


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    lines = [ln for ln in lines if ln.startswith("vjepa2-ac ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_divergence_stops_at_the_first_non_finite_loss(setup, tmp_path, capsys):
    out = tmp_path / "run"
    code = _train(setup, out, "--set", "optim.lr=1e30", "--set", "optim.start_lr=1e30", "--steps", "6")
    assert code == 10
    assert _err(capsys) == (
        "vjepa2-ac train: loss is nan at step 2: training diverged (optim.lr=1e+30, optim.grad_clip=0.0); "
        "stopped, no checkpoint was written"
    )
    assert not (out / "world_model.pt").exists() and not (out / "checkpoint.pt").exists()
