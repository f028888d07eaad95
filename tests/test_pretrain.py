"""Stage 1 (V-JEPA masked latent pretraining) on tiny synthetic episodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import one_thread, read_metrics  # noqa: F401 (one_thread is a fixture)

from vjepa2_ac.training.config import PretrainConfig, TrainACConfig, load_config
from vjepa2_ac.training.pretrain import pretrain
from vjepa2_ac.training.synthetic import write_blob_episodes
from vjepa2_ac.training.train_ac import build_models

ENC = {
    "img_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "tubelet_size": 2,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
}
TINY = {
    "model": {"encoder": ENC, "mask_predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2}},
    "data": {"frames_per_clip": 4, "fps": 15.0, "crop": "none", "batch_size": 4},
    "masks": [
        {"num_blocks": 2, "spatial_scale": [0.15, 0.15]},
        {"num_blocks": 1, "spatial_scale": [0.4, 0.4]},
    ],
    "ema": [0.9, 1.0],
    "optim": {"total_steps": 4, "warmup_steps": 1, "start_lr": 1e-4, "lr": 2e-3, "final_lr": 1e-4},
    "run": {"checkpoint_every": 2, "tensorboard": False, "bf16": False, "device": "cpu"},
}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blob")
    write_blob_episodes(root, num_episodes=6, steps=10, image_size=32, seed=1, max_move=0.05)
    return root


def cfg_for(data: Path, *ov: str) -> PretrainConfig:
    return load_config(PretrainConfig, TINY, [f"data.paths=['{data}']", *ov])


def test_pretrain_loss_goes_down_without_collapse_and_with_aux_probe(episodes, tmp_path):
    cfg = cfg_for(episodes, "optim.total_steps=10", "aux_probe_weight=0.5")
    assert pretrain(cfg, tmp_path)["finished"]
    rows = read_metrics(tmp_path)
    jepa = [float(r["jepa_loss"]) for r in rows]
    aux = [float(r["aux_loss"]) for r in rows]
    assert sum(jepa[-3:]) < 0.85 * sum(jepa[:3]), jepa
    assert sum(aux[-3:]) < 0.85 * sum(aux[:3]), aux
    assert min(float(r["emb_std"]) for r in rows) > 0.05  # collapse watch
    assert float(rows[-1]["ema"]) == pytest.approx(1.0)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert "geometry" in ck["model"] and ck["model"]["geometry"]["probe.std"].min() > 0
    enc = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert enc["training_signals"] == ["frames", "ee_state"]
    assert enc["probe"]["config"]["dims"] == [0, 1, 2]


def test_pretrain_state_geometry_alone_is_label_free_and_learns(episodes, tmp_path):
    """jepa_weight=0: probe + manifold only; the exported encoder is the trained one (no EMA)."""
    cfg = cfg_for(
        episodes, "optim.total_steps=12", "jepa_weight=0", "aux_probe_weight=1", "manifold_weight=1"
    )
    assert pretrain(cfg, tmp_path)["finished"]
    rows = read_metrics(tmp_path)
    probe = [float(r["aux_loss"]) for r in rows]
    manifold = [float(r["manifold_loss"]) for r in rows]
    assert all(float(r["jepa_loss"]) == 0 for r in rows)
    assert sum(probe[-3:]) < 0.85 * sum(probe[:3]), probe
    assert sum(manifold[-3:]) < sum(manifold[:3]), manifold
    enc = torch.load(tmp_path / "encoder.pt", weights_only=True)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert enc["training_signals"] == ["frames", "ee_state"]
    for k, v in enc["state_dict"].items():
        assert torch.equal(v, ck["encoder"][k]), k  # the trained encoder, not the untouched EMA copy
    with pytest.raises(ValueError, match="every loss weight is 0"):
        cfg_for(episodes, "jepa_weight=0")


def test_pretrain_resume_is_bit_for_bit_and_encoder_feeds_stage2(episodes, tmp_path):
    cfg = cfg_for(episodes, "run.tensorboard=true")
    full, killed = tmp_path / "full", tmp_path / "killed"
    pretrain(cfg, full)
    pretrain(cfg, killed, stop_after_steps=3)
    pretrain(cfg, killed, resume=True)
    a = torch.load(full / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(killed / "checkpoint.pt", weights_only=True)["model"]
    for part in ("encoder", "target_encoder", "predictor"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    assert any((full / "tensorboard").iterdir())
    # The exported EMA encoder initialises the frozen encoder of stage 2.
    ac = load_config(
        TrainACConfig,
        {
            "model": {
                "encoder": ENC,
                "predictor": {"predictor_embed_dim": 32, "depth": 1, "num_heads": 2, "max_steps": 4},
            },
            "data": {"frames_per_clip": 6},
        },
        [f"init.encoder_checkpoint={full / 'encoder.pt'}"],
    )
    encoder, _ = build_models(ac)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, a["target_encoder"][k]), k
    # ...and an encoder of another width is refused, naming the mismatch.
    bad = load_config(
        TrainACConfig,
        {"model": {"encoder": {**ENC, "embed_dim": 48}}, "data": {"frames_per_clip": 6}},
        [f"init.encoder_checkpoint={full / 'encoder.pt'}"],
    )
    with pytest.raises(Exception, match="wrong shapes|shape"):
        build_models(bad)


def test_cli_pretrain_smoke(episodes, tmp_path):
    """``vjepa2-ac pretrain`` via the CLI dispatcher, in-process (the train CLI test spawns the binary)."""
    from vjepa2_ac.experiments.cli import main

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    argv = ["pretrain", "--config", str(cfg_path), "--data", str(episodes), "--out", str(out), "--steps", "2"]
    assert main(argv) == 0
    for name in ("checkpoint.pt", "config.yaml", "metrics.csv", "encoder.pt"):
        assert (out / name).is_file(), name
    assert len(read_metrics(out)) == 2
    from vjepa2_ac.checkpoint import load_checkpoint

    enc = load_checkpoint(out / "encoder.pt")
    assert enc["config"]["embed_dim"] == 32 and enc["step"] == 2
    # The folder now belongs to this run: a second one is refused, another seed cannot resume it.
    before = (out / "encoder.pt").read_bytes()
    assert main(argv) == 7
    assert main([*argv, "--resume", "--seed", "3"]) == 7
    assert (out / "encoder.pt").read_bytes() == before
