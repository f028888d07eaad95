"""`vjepa2-ac diagnose`: the block-motion diagnosis of a simulated world model's predictor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vjepa2_ac.experiments.diagnose import block_motion_fit, motion_stats, rollout_block_fit, table_markdown
from vjepa2_ac.experiments.recipe import RecipeConfig, save_sim_checkpoint
from vjepa2_ac.experiments.sim_model import SimModelConfig, SimWorldModel

TINY = dict(image_size=32, patch_size=16, embed_dim=32, depth=1, pred_embed_dim=32, pred_depth=1)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    cfg = RecipeConfig(model=SimModelConfig(**TINY))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_sim_checkpoint(path, SimWorldModel(cfg.model), cfg)
    return str(path)


def _episodes(e: int = 3, t: int = 5, size: int = 32, seed: int = 0) -> dict:
    """Synthetic push episodes: the block moves 2 cm per step along +x, the action points along +x."""
    rng = np.random.default_rng(seed)
    pos = np.zeros((e, t + 1, 6), np.float32)
    pos[..., 3] = 0.5 + 0.02 * np.arange(t + 1)
    pos[..., 4] = rng.normal(0, 0.005, (e, t + 1))
    actions = np.zeros((e, t, 7), np.float32)
    actions[..., 0] = 0.02
    return {
        "images": rng.integers(0, 255, (e, t + 1, size, size, 3), dtype=np.uint8),
        "states": np.zeros((e, t + 1, 7), np.float32),
        "actions": actions,
        "positions": pos,
    }


def test_motion_stats_splits_along_and_across_the_action():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.01, (50, 2)) + np.array([0.02, 0.0])
    direction = np.tile([[1.0, 0.0]], (50, 1))
    same = motion_stats(true, true, direction)
    assert same["forward_pred_m"] == pytest.approx(same["forward_true_m"])
    assert same["forward_corr"] == pytest.approx(1.0) and same["sideways_corr"] == pytest.approx(1.0)
    half = motion_stats(true, 0.5 * true, direction)
    assert half["forward_pred_m"] == pytest.approx(0.5 * half["forward_true_m"])
    assert half["sideways_pred_m"] == pytest.approx(0.5 * half["sideways_true_m"])
    # Sideways is measured across the action: rotate the direction by 90 degrees and the parts swap.
    turned = motion_stats(true, true, np.tile([[0.0, 1.0]], (50, 1)))
    assert turned["forward_true_m"] == pytest.approx(true[:, 1].mean())
    assert turned["sideways_true_m"] == pytest.approx(np.abs(true[:, 0]).mean())
    assert motion_stats(true[:2], true[:2], direction[:2])["forward_corr"] is None


def test_copy_last_frame_predictor_moves_nothing():
    # A fresh predictor has a zero output projection: it predicts "copy the last frame", so the block
    # does not move in its predictions while the encoded next frames (the probe's ceiling row) do change.
    torch.manual_seed(0)
    model = SimWorldModel(SimModelConfig(**TINY)).eval()
    result = block_motion_fit(model, _episodes(), context_frames=(0, 2))
    assert result["transitions"] == 3 * 3  # steps 2..4 of 3 episodes (the largest context is 2 frames)
    sources = [r["source"] for r in result["rows"]]
    assert sources == ["predictor, 0 past frames", "predictor, 2 past frames", "encoded next frame"]
    for row in result["rows"][:2]:
        assert row["forward_true_m"] == pytest.approx(0.02, abs=1e-6)
        assert abs(row["forward_pred_m"]) < 1e-5 and row["sideways_pred_m"] < 1e-5
    assert result["rows"][2]["sideways_pred_m"] > 1e-4


def test_rollout_fit_follows_the_block_over_k_steps():
    torch.manual_seed(0)
    model = SimWorldModel(SimModelConfig(**TINY)).eval()
    eps = _episodes(e=3, t=5)
    result = rollout_block_fit(model, eps, horizon=4)
    assert [r["steps"] for r in result["rows"]] == [1, 2, 3, 4]
    for r in result["rows"]:
        assert r["spans"] == 3 * 2  # rollouts from steps 0 and 1 of 3 episodes
        assert r["forward_true_m"] == pytest.approx(0.02 * r["steps"], abs=1e-6)
        assert abs(r["forward_pred_m"]) < 1e-5  # copy-last-frame predictor: the block stays
    # Spans in which the block does not move enough are reported as empty rows, not as an error.
    still = _episodes()
    still["positions"][..., 3:5] = 0.5
    empty = rollout_block_fit(model, still, horizon=2)
    assert [r["spans"] for r in empty["rows"]] == [0, 0]
    text = table_markdown(
        {"transitions": 0, "episodes": 3, "min_motion_m": 0.01, "rows": [], "rollout": empty}
    )
    assert "| 1 | 0 | nan cm" in text and "| – |" in text
    with pytest.raises(ValueError, match=r"horizon must be in 1..6"):
        rollout_block_fit(model, eps, horizon=7)
    with pytest.raises(ValueError, match="episodes have 5 steps; a rollout over 6 needs as many"):
        rollout_block_fit(model, eps, horizon=6)


def test_block_motion_fit_rejects_unusable_episodes():
    model = SimWorldModel(SimModelConfig(**TINY)).eval()
    eps = _episodes()
    eps["positions"][..., 3:] = np.nan  # reach episodes: no block
    with pytest.raises(ValueError, match=r"block xyz\) must be finite"):
        block_motion_fit(model, eps)
    with pytest.raises(ValueError, match="images are 64x64, the checkpoint's encoder takes 32x32"):
        block_motion_fit(model, _episodes(size=64))
    still = _episodes()
    still["positions"][..., 3] = 0.5
    with pytest.raises(ValueError, match="no transition in which the block moves more than 0.01 m"):
        block_motion_fit(model, still)
    with pytest.raises(ValueError, match="need max_steps >= 7"):
        block_motion_fit(model, _episodes(t=8), context_frames=(6,))
    broken = _episodes()
    del broken["actions"]
    with pytest.raises(ValueError, match=r"missing arrays \['actions'\]"):
        block_motion_fit(model, broken)


def test_diagnose_cli_on_data_file_and_fresh_episodes(tiny_checkpoint, tmp_path):
    data = tmp_path / "data_push.npz"
    np.savez(data, **_episodes(e=4))
    out = tmp_path / "diag"
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "diagnose", "--checkpoint", tiny_checkpoint]
    proc = subprocess.run(
        [
            *cmd,
            "--data",
            str(data),
            "--last",
            "2",
            "--context-frames",
            "0,1",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "diagnose.json").read_text())
    assert result["episodes"] == 2 and result["transitions"] == 2 * 4
    assert [r["context_frames"] for r in result["rows"]] == [0, 1, None]
    assert "| encoded next frame |" in (out / "diagnose.md").read_text()
    assert [r["steps"] for r in result["rollout"]["rows"]] == [1, 2, 3, 4]
    assert "Predictor rollouts over 4 steps" in (out / "diagnose.md").read_text()

    fresh = tmp_path / "fresh"
    proc = subprocess.run(
        [*cmd, "--episodes", "3", "--min-motion", "0.001", "--context-frames", "0", "--out", str(fresh)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((fresh / "diagnose.json").read_text())
    assert result["episodes"] == 3 and result["transitions"] > 0
    assert result["data"] == "3 fresh push episodes"

    bad = subprocess.run(
        [*cmd, "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "missing.npz does not exist" in bad.stderr
