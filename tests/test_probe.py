"""Probes on frozen (or fine-tuned) embeddings beat a constant predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import one_thread  # noqa: F401 (fixture)

from vjepa2_ac.training.config import ProbeConfig, load_config
from vjepa2_ac.training.probe import probe
from vjepa2_ac.training.synthetic import write_blob_episodes

ENC = "{img_size: 32, patch_size: 8, num_frames: 2, tubelet_size: 2, embed_dim: 48, depth: 1, num_heads: 2}"


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blob")
    # Large moves so every episode covers the workspace and held-out episodes are in distribution.
    write_blob_episodes(root, num_episodes=20, steps=8, image_size=32, seed=1, max_move=0.12)
    return root


def test_linear_probe_on_frozen_random_encoder_beats_constant(episodes, tmp_path):
    cfg = load_config(
        ProbeConfig,
        None,
        [f"data.paths=['{episodes}']", f"encoder={ENC}", "clips_per_episode=6", "run.device=cpu"],
    )
    res = probe(cfg, tmp_path)
    for d in (0, 1):  # x and y of the end effector
        assert res["mae"][d] < 0.8 * res["mae_const"][d], res
        assert res["r2"][d] > res["r2_const"][d] + 0.3, res
    saved = json.loads((tmp_path / "probe_results.json").read_text())
    assert saved["val_clips"] > 0 and saved["ridge_lambda"] > 0 and saved["emb_std"] > 0


def test_attentive_finetune_probe_runs_and_missing_target_is_named(episodes, tmp_path):
    cfg = load_config(
        ProbeConfig,
        None,
        [
            f"data.paths=['{episodes}']",
            f"encoder={ENC}",
            "clips_per_episode=1",
            "head=attentive",
            "finetune=true",
            "steps=5",
            "run.device=cpu",
        ],
    )
    res = probe(cfg, tmp_path)
    assert len(res["r2"]) == 3 and all(v == v for v in res["mae"])  # finite
    bad = load_config(
        ProbeConfig,
        None,
        [
            f"data.paths=['{episodes}']",
            f"encoder={ENC}",
            "clips_per_episode=1",
            "targets=['observation/object_position']",
            "run.device=cpu",
        ],
    )
    with pytest.raises(KeyError, match="observation/object_position"):
        probe(bad, tmp_path / "bad")
