"""The shipped world model: present, loadable, small, label-free, trained by the demo's presets, and
pinned by golden tensors (embeddings, energies and first plans) so that a refactor that changes what it
computes fails here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa2_ac.experiments.pretrained import pretrained_path, resolve_checkpoint
from vjepa2_ac.training.config import PretrainConfig, TrainACConfig, load_config, to_dict
from vjepa2_ac.world_model import WorldModel

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "pretrained.npz"
# Sections of the training configs that define the model (paths, threads and seeds of a run aside).
DEFINING = ("model", "optim", "loss", "masks", "jepa_weight", "aux_probe_weight", "manifold_weight")


@pytest.fixture(scope="module")
def shipped() -> WorldModel:
    return WorldModel.from_checkpoint(pretrained_path()).eval()


def _defining(config: dict) -> dict:
    return {k: v for k, v in config.items() if k in DEFINING}


def test_pretrained_checkpoint_is_what_the_demo_trains(shipped):
    path = pretrained_path()
    assert path.stat().st_size <= 20 * 2**20
    meta = shipped.metadata
    assert shipped.alignment == "subsample" and shipped.frames_per_step == 2  # Strategy A
    assert meta["training_signals"] == ["frames", "ee_state", "actions"]  # label-free
    assert meta["energy_per_metre"] > 0 and shipped.probe is not None
    # `vjepa2-ac demo` runs the sim_encoder and sim_world_model presets; a changed preset without a
    # retrained asset fails here.
    train = to_dict(load_config(TrainACConfig, "sim_world_model"))
    pretrain = to_dict(load_config(PretrainConfig, "sim_encoder"))
    assert _defining(meta["train_config"]) == _defining(train)
    assert _defining(meta["pretrain_config"]) == _defining(pretrain)
    assert meta["train_config"]["data"]["frames_per_clip"] == train["data"]["frames_per_clip"]
    assert resolve_checkpoint("pretrained") == str(path)
    assert resolve_checkpoint("other.pt") == "other.pt"


@torch.no_grad()
def test_golden_embeddings_energies_and_plans(shipped):
    """Recorded with the shipped model when it was trained (``python tests/golden_helpers.py``)."""
    from golden_helpers import first_plans, golden_energies

    g = np.load(GOLDEN)
    z = shipped.encode_observation(torch.from_numpy(g["frames"]))
    torch.testing.assert_close(z, torch.from_numpy(g["z"]), rtol=1e-4, atol=1e-4)
    energies = golden_energies(shipped, z, torch.from_numpy(g["states"]), torch.from_numpy(g["actions"]))
    torch.testing.assert_close(energies, torch.from_numpy(g["energies"]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first_plans(str(pretrained_path())), g["plans"], atol=1e-3)


def test_plan_runs_with_the_pretrained_checkpoint(tmp_path):
    from vjepa2_ac.experiments.cli import main

    out = tmp_path / "reach"
    args = ["plan", "--checkpoint", "pretrained", "--task", "reach", "--episodes", "1", "--samples", "8"]
    args += ["--topk", "2", "--iterations", "1", "--max-steps", "2", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
    assert rec["steps"] == 2 and 0.0 <= rec["final_distance"]
    assert json.loads((out / "run_config.json").read_text())["checkpoint"] == str(pretrained_path().resolve())
