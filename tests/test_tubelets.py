"""What fills the simulated world model's 2-frame tubelet: the frame twice, or the previous frame and
the current one (``SimModelConfig.tubelet``), through encoding, training data and planning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa2_ac.experiments.episodes import CollectConfig
from vjepa2_ac.experiments.plan import PreviousFrames
from vjepa2_ac.experiments.recipe import (
    RecipeConfig,
    TrainConfig,
    embed_all,
    load_sim_checkpoint,
    save_sim_checkpoint,
    train_recipe,
)
from vjepa2_ac.experiments.sim_model import SimModelConfig, SimWorldModel

TINY = dict(image_size=32, patch_size=16, embed_dim=32, depth=1, pred_embed_dim=32, pred_depth=1)


def _model(tubelet: str) -> SimWorldModel:
    torch.manual_seed(0)
    return SimWorldModel(SimModelConfig(**TINY, tubelet=tubelet)).eval()


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8)


@torch.no_grad()
def test_duplicate_tubelets_ignore_the_previous_frame():
    model = _model("duplicate")
    x, y = _frames(3, 0), _frames(3, 1)
    assert torch.equal(model.encode_images(x, y), model.encode_images(x))
    assert model.probe.out_features == 6


@torch.no_grad()
def test_consecutive_tubelets_see_the_previous_frame_and_a_still_scene_without_one():
    model = _model("consecutive")
    x, y = _frames(3, 0), _frames(3, 1)
    still = model.encode_images(x)
    assert torch.allclose(model.encode_images(x, x), still)
    assert not torch.allclose(model.encode_images(x, y), still, atol=1e-3)
    # The probe decodes positions and their motion; probe_positions returns the positions only.
    assert model.probe.out_features == 12
    assert model.probe_positions(still).shape == (3, 6)
    assert model.probe_all(still).shape == (3, 12)


@torch.no_grad()
def test_encode_episodes_pairs_each_frame_with_its_predecessor():
    model = _model("consecutive")
    frames = torch.stack([_frames(4, 0), _frames(4, 1)])  # [E=2, T=4, H, W, 3]
    z = model.encode_episodes(frames, batch=3)  # batches cut across episodes on purpose
    assert z.shape[:2] == (2, 4)
    for e in range(2):
        assert torch.allclose(z[e, 0], model.encode_images(frames[e, :1])[0], atol=1e-6)
        for t in range(1, 4):
            ref = model.encode_images(frames[e, t : t + 1], frames[e, t - 1 : t])[0]
            assert torch.allclose(z[e, t], ref, atol=1e-6)
    # embed_all (the predictor's training data) is the same encoding.
    data = {"push": {"images": frames.numpy()}}
    assert torch.allclose(embed_all(model, data, batch=5, progress=False)["push"], z, atol=1e-6)


def test_bad_tubelet_config_and_previous_frames_are_named():
    with pytest.raises(ValueError, match=r"SimModelConfig.tubelet must be one of"):
        SimModelConfig(tubelet="stack")
    model = _model("consecutive")
    with pytest.raises(ValueError, match=r"previous frames: expected \[B, 32, 32, 3\]"):
        model.encode_images(_frames(2), torch.zeros(2, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"previous frames: shape \(1, 32, 32, 3\) differs"):
        model.encode_images(_frames(2), _frames(1))


@torch.no_grad()
def test_previous_frames_remembers_each_episode_separately():
    model = _model("consecutive")
    a, b = _frames(3, 0), _frames(3, 1)
    past = PreviousFrames(model, 3)
    first = past.encode([0, 2], [a[0].numpy(), a[2].numpy()])
    assert torch.allclose(first, model.encode_images(a[[0, 2]]), atol=1e-6)  # no past yet: still
    second = past.encode([2], [b[2].numpy()])  # episode 0 has finished; episode 2 goes on
    assert torch.allclose(second, model.encode_images(b[2:3], a[2:3]), atol=1e-6)
    third = past.encode([1], [b[1].numpy()])
    assert torch.allclose(third, model.encode_images(b[1:2]), atol=1e-6)


def test_consecutive_recipe_trains_and_plans_with_both_methods(tmp_path):
    from vjepa2_ac.experiments.cli import main

    cfg = RecipeConfig(
        model=SimModelConfig(**TINY, tubelet="consecutive"),
        collect=CollectConfig(episodes=4, steps=5),
        tasks=("push",),
        train=TrainConfig(encoder_steps=3, encoder_batch=8, predictor_steps=3, predictor_batch=8),
    )
    torch.manual_seed(0)
    path = train_recipe(cfg, tmp_path / "train", progress=False)
    model, config = load_sim_checkpoint(path)
    assert config["model"]["tubelet"] == "consecutive"
    # Motion targets are standardised by their own spread: the still first frames make it non-zero.
    assert model.probe_std.shape == (12,) and bool(torch.all(model.probe_std > 0))
    plan = ["--samples", "6", "--topk", "2", "--iterations", "1", "--max-steps", "2", "--no-progress"]
    for extra, name in (([], "wm"), (["--baseline", "oracle", "--horizon", "2"], "oracle")):
        out = tmp_path / name
        args = ["plan", "--checkpoint", str(path), "--task", "push", "--episodes", "1", "--out", str(out)]
        assert main(args + plan + extra) == 0
        rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
        assert rec["steps"] == 2 and len(rec["energy_trace"]) == 2
        assert all(np.isfinite(rec["energy_trace"]))


def test_duplicate_checkpoints_without_the_field_still_load(tmp_path):
    model = _model("duplicate")
    cfg = RecipeConfig(model=model.cfg)
    path = save_sim_checkpoint(tmp_path / "m.pt", model, cfg)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["model"].pop("tubelet")  # as written before the field existed (and before hashes)
    ckpt.pop("sha256")
    torch.save(ckpt, path)
    loaded, _ = load_sim_checkpoint(path)
    assert loaded.cfg.tubelet == "duplicate"
