"""Training configs, schedules, masks and RNG plumbing (fast, no training)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vjepa2_ac.training import runtime
from vjepa2_ac.training.config import (
    ConfigError,
    MaskBlockConfig,
    OptimConfig,
    PretrainConfig,
    ProbeConfig,
    TrainACConfig,
    load_config,
    save_config,
    to_dict,
)
from vjepa2_ac.training.masks import sample_tube_masks
from vjepa2_ac.training.schedules import Scheduler, param_groups, warmup_cosine_lr, wsd_lr


@pytest.mark.parametrize("name", ["tiny_sim", "tiny_droid", "vitg_droid"])
def test_ac_presets_load(name):
    cfg = load_config(TrainACConfig, name)
    assert cfg.steps_per_clip >= 3


def test_pretrain_preset_loads():
    cfg = load_config(PretrainConfig, "tiny_pretrain")
    assert cfg.optim.schedule == "cosine" and len(cfg.masks) == 2
    # Same encoder as the stage-2 tiny presets, so a pretrained encoder.pt plugs in.
    assert to_dict(cfg.model.encoder) == to_dict(load_config(TrainACConfig, "tiny_sim").model.encoder)


def test_vitg_preset_matches_official_droid_config():
    cfg = load_config(TrainACConfig, "vitg_droid")
    e, p, o = cfg.model.encoder, cfg.model.predictor, cfg.optim
    assert (e.img_size, e.patch_size, e.tubelet_size, e.embed_dim, e.depth, e.num_heads) == (
        256,
        16,
        2,
        1408,
        40,
        22,
    )
    assert int(e.embed_dim * e.mlp_ratio) == 6144  # vit_giant_xformers MLP hidden
    assert (p.predictor_embed_dim, p.depth, p.num_heads, p.max_steps) == (1024, 24, 16, 256)
    assert cfg.model.alignment == "duplicate" and cfg.steps_per_clip == 8
    assert (cfg.data.frames_per_clip, cfg.data.fps, cfg.data.batch_size) == (8, 4.0, 8)
    assert (o.total_steps, o.warmup_steps, o.anneal_steps) == (94500, 4500, 4500)
    assert (o.start_lr, o.lr, o.final_lr, o.weight_decay, o.betas) == (
        7.5e-5,
        4.25e-4,
        0.0,
        0.04,
        [0.9, 0.999],
    )
    assert (
        cfg.loss.auto_steps == 2 and cfg.run.bf16 and cfg.run.activation_checkpointing and cfg.run.seed == 239
    )


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.bogus=1", "optim.bogus"),
        ("model.encoder.num_heads=5", "model.encoder.embed_dim"),
        ("model.predictor.num_heads=3", "model.predictor.predictor_embed_dim"),
        ("model.encoder.tubelet_size=16", "model.encoder.tubelet_size"),
        ("data.frames_per_clip=7", "data.frames_per_clip"),
        ("optim.warmup_steps=1000", "optim.warmup_steps"),
        ("optim.lr=-1", "optim.lr"),
        ("model.alignment=bogus", "model.alignment"),
        ("data.batch_size=true", "data.batch_size"),
        ("model.token_pool=3", "model.token_pool"),
        ("loss.auto_steps=9", "loss.auto_steps"),
    ],
)
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(TrainACConfig, "tiny_sim", [override])


def test_bad_yaml_file_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("masks:\n  - {num_blocks: 0}\n")
    with pytest.raises(ConfigError, match=r"'masks\[0\]\.num_blocks'"):
        load_config(PretrainConfig, path)
    path.write_text("model:\n  encoder: {embed_dim: 100, num_heads: 3}\n")
    with pytest.raises(ConfigError, match="'model.encoder.embed_dim'.*not divisible"):
        load_config(PretrainConfig, path)


def test_partial_section_keeps_field_defaults():
    cfg = load_config(PretrainConfig, {"optim": {"total_steps": 20}})
    assert cfg.optim.schedule == "cosine" and cfg.optim.total_steps == 20
    cfg = load_config(ProbeConfig, None, ["data.paths=['x']", "lr=3e-3"])  # "3e-3" is a YAML string
    assert cfg.data.frames_per_clip == 2 and cfg.lr == pytest.approx(3e-3)


def test_resolved_config_round_trip(tmp_path):
    cfg = load_config(TrainACConfig, "tiny_sim", ["optim.lr=2e-3", "data.paths=['a', 'b']"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(TrainACConfig, tmp_path / "config.yaml")
    assert to_dict(again) == to_dict(cfg)


def test_wsd_and_cosine_schedules():
    kw = dict(start_lr=1.0, lr=3.0, final_lr=0.0, warmup=10, anneal=20, total=100)
    assert wsd_lr(0, **kw) == 1.0 and wsd_lr(5, **kw) == 2.0 and wsd_lr(10, **kw) == 3.0
    assert wsd_lr(79, **kw) == 3.0 and wsd_lr(90, **kw) == 1.5 and wsd_lr(100, **kw) == 0.0
    ck = dict(start_lr=0.0, lr=2.0, final_lr=1.0, warmup=10, total=110)
    assert warmup_cosine_lr(10, **ck) == 2.0 and warmup_cosine_lr(60, **ck) == pytest.approx(1.5)
    assert warmup_cosine_lr(110, **ck) == pytest.approx(1.0)


def test_param_groups_decay_only_matrices_and_scheduler_state():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    groups = param_groups(m, 0.04)
    decay = {id(p) for p in groups[0]["params"]}
    assert decay == {id(m[0].weight), id(m[2].weight)}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 4
    opt = torch.optim.AdamW(groups)
    cfg = OptimConfig(total_steps=10, warmup_steps=2, anneal_steps=2, start_lr=0.0, lr=1.0)
    s = Scheduler(opt, cfg)
    for _ in range(3):
        s.step()
    assert opt.param_groups[0]["lr"] == 1.0 and opt.param_groups[1]["weight_decay"] == 0.0
    s2 = Scheduler(opt, cfg)
    s2.load_state_dict(s.state_dict())
    assert s2.step_count == 3 and s2.lr == 1.0


def test_tube_masks_are_disjoint_tubes():
    g = torch.Generator().manual_seed(0)
    grid = (4, 8, 8)
    ctx, tgt = sample_tube_masks(3, grid, MaskBlockConfig(num_blocks=4, spatial_scale=[0.15, 0.15]), g)
    assert ctx.shape[0] == tgt.shape[0] == 3 and ctx.shape[1] > 0 and tgt.shape[1] > 0
    for c, t in zip(ctx, tgt):
        assert not set(c.tolist()) & set(t.tolist())
        assert torch.all(c[1:] > c[:-1]) and torch.all(t[1:] > t[:-1])
    # temporal_scale 1: every block spans all time steps, so the full target set is a set of tubes.
    ctx, tgt = sample_tube_masks(2, grid, MaskBlockConfig(num_blocks=2, spatial_scale=[0.2, 0.2]), g)
    full = torch.zeros(2, 4 * 64, dtype=torch.bool)
    for i in range(2):
        full[i, tgt[i]] = True
    # Truncation to the batch minimum may drop a few target tokens; check the sample that kept all.
    counts = [int(full[i].view(4, 64).any(0).sum()) for i in range(2)]
    i = int(np.argmin(counts))
    per_t = full[i].view(4, 64)
    assert torch.equal(per_t[0], per_t[1]) and torch.equal(per_t[0], per_t[3])


def test_masks_fail_clearly_when_blocks_cover_everything():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="covers the whole token grid"):
        sample_tube_masks(1, (2, 2, 2), MaskBlockConfig(num_blocks=1, spatial_scale=[1.0, 1.0]), g)


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    runtime.seed_everything(3)
    state = runtime.rng_state()
    runtime.atomic_save({"rng": state}, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.set_rng_state(runtime.load_training_state(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
