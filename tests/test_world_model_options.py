"""WorldModel options of our training recipe: ``token_pool`` (pooled patch grid) and ``residual`` output.

Checks encode/predict/rollout against hand-written references, cached vs uncached rollout, the checkpoint
round trip, and that a ``world_model.pt`` written by ``vjepa2-ac train`` plans with the model it trained.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import TINY_TRAIN_AC, one_thread  # noqa: F401 (fixture)

from vjepa2_ac import WorldModel, build_encoder, build_predictor

D = 32


def _encoder(seed: int = 0):
    torch.manual_seed(seed)
    # 32x32 images, 8-pixel patches: a 4x4 patch grid.
    return build_encoder(
        img_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        embed_dim=D,
        depth=1,
        num_heads=2,
        use_rope=True,
    )


def _predictor(img_size: int, seed: int = 1):
    torch.manual_seed(seed)
    return build_predictor(
        img_size=img_size,
        patch_size=8,
        num_frames=16,
        tubelet_size=2,
        embed_dim=D,
        predictor_embed_dim=32,
        depth=2,
        num_heads=2,
    )


def _wm(alignment: str = "subsample") -> WorldModel:
    # Pooled 2x2 grid: the predictor is built for 16x16 images (grid side 4 / token_pool 2).
    return WorldModel(_encoder(), _predictor(16), alignment=alignment, token_pool=2, residual=True).eval()


def _raw_pooled(encoder, video: torch.Tensor) -> torch.Tensor:
    """Reference: raw tokens [B, S, 4x4, D] -> mean over each 2x2 block -> layer norm, written out by hand."""
    b = video.shape[0]
    tok = encoder(video).view(b, -1, 4, 4, D)  # [B, S, H, W, D]
    blocks = tok.view(b, -1, 2, 2, 2, 2, D)  # [B, S, H/2, 2, W/2, 2, D]
    pooled = blocks.mean(dim=(3, 5)).reshape(b, -1, 4, D)  # [B, S, 2*2, D]
    return F.layer_norm(pooled, (D,))


@torch.no_grad()
def test_encode_shapes_and_pooling():
    wm = _wm()
    video = torch.randn(2, 3, 4, 32, 32)
    z = wm.encode(video)
    assert z.shape == (2, 2, 4, D)  # S = T / tubelet, N = (4/2)^2
    # Strategy A: each tubelet of 2 consecutive frames is encoded on its own.
    ref = torch.cat([_raw_pooled(wm.encoder, video[:, :, 2 * j : 2 * j + 2]) for j in range(2)], dim=1)
    torch.testing.assert_close(z, ref, rtol=1e-5, atol=1e-5)
    img = torch.randn(3, 3, 32, 32)
    zi = wm.encode_image(img)
    assert zi.shape == (3, 1, 4, D)
    torch.testing.assert_close(zi, _raw_pooled(wm.encoder, img[:, :, None].expand(-1, -1, 2, -1, -1)))
    dup = _wm("duplicate").encode(video)
    assert dup.shape == (2, 4, 4, D)
    # duplicate alignment: frame t alone equals encode_image of that frame
    torch.testing.assert_close(dup[:, 2:3], wm.encode_image(video[:, :, 2]), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_predict_adds_the_input_step_before_the_layer_norm():
    wm = _wm()
    z = wm.encode(torch.randn(2, 3, 4, 32, 32))  # [2, 2, 4, D]
    acts, states = torch.randn(2, 2, 7), torch.randn(2, 2, 7)
    out = wm.predictor(z.reshape(2, 8, D), acts, states).view(2, 2, 4, D)
    torch.testing.assert_close(wm.predict(z, acts, states), F.layer_norm(out + z, (D,)))
    assert (wm.predict(z, acts, states) - F.layer_norm(out, (D,))).abs().max() > 1e-2  # residual matters


@pytest.mark.parametrize("ctx_steps", [1, 3])
@torch.no_grad()
def test_rollout_cached_matches_uncached_and_teacher_forcing(ctx_steps):
    wm = _wm()
    g = torch.Generator().manual_seed(ctx_steps)
    z_ctx = wm.encode(torch.randn(1, 3, 2 * ctx_steps, 32, 32, generator=g))  # [1, S0, 4, D]
    states_ctx = torch.randn(1, ctx_steps, 7, generator=g) * 0.1
    past = torch.randn(1, ctx_steps - 1, 7, generator=g) * 0.1 if ctx_steps > 1 else None
    actions = torch.randn(3, 4, 7, generator=g) * 0.1  # B=3 samples share the batch-1 context
    z_c, s_c = wm.rollout(z_ctx, states_ctx, actions, past, use_cache=True)
    z_u, s_u = wm.rollout(z_ctx, states_ctx, actions, past, use_cache=False)
    assert z_c.shape == (3, 4, 4, D) and s_c.shape == (3, 5, 7)
    assert (z_c - z_u).abs().max().item() < 1e-4
    torch.testing.assert_close(s_c, s_u)
    # A precomputed context cache (how planners call it) gives the same rollout.
    cache = wm.context_cache(z_ctx, states_ctx, past)
    z_pc, _ = wm.rollout(z_ctx, states_ctx, actions, past, cache=cache)
    assert (z_pc - z_c).abs().max().item() < 1e-4
    # The first rolled-out step is teacher forcing on the context (residual on the last context step) ...
    acts = torch.cat([past.expand(3, -1, -1), actions[:, :1]], 1) if past is not None else actions[:, :1]
    tf = wm.predict(z_ctx.expand(3, -1, -1, -1), acts, states_ctx.expand(3, -1, -1))
    assert (tf[:, -1] - z_c[:, 0]).abs().max().item() < 1e-4
    # ... and the second one adds the previous prediction.
    seq = torch.cat([z_ctx.expand(3, -1, -1, -1), z_c[:, :1]], 1)
    acts2 = torch.cat([acts, actions[:, 1:2]], 1)
    st2 = torch.cat([states_ctx.expand(3, -1, -1), s_c[:, 1:2]], 1)
    out = wm.predictor(seq.flatten(1, 2), acts2, st2)[:, -4:]
    assert (F.layer_norm(out + z_c[:, 0], (D,)) - z_c[:, 1]).abs().max().item() < 1e-4


@torch.no_grad()
def test_save_from_checkpoint_round_trip(tmp_path):
    wm = _wm()
    path = wm.save(tmp_path / "wm.pt", step=3)
    back = WorldModel.from_checkpoint(path).eval()
    assert back.token_pool == 2 and back.residual is True and back.config == wm.config
    assert torch.load(path, weights_only=True)["config"]["token_pool"] == 2
    video = torch.randn(1, 3, 4, 32, 32)
    z = wm.encode(video)
    assert torch.equal(back.encode(video), z)
    acts = torch.randn(2, 3, 7) * 0.1
    ctx_states = torch.zeros(1, 2, 7)
    past = torch.randn(1, 1, 7) * 0.1
    a, b = wm.rollout(z, ctx_states, acts, past), back.rollout(z, ctx_states, acts, past)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_defaults_old_configs_and_clear_errors():
    wm = WorldModel(_encoder(), _predictor(32))
    assert wm.token_pool == 1 and wm.residual is False
    cfg = wm.config
    del cfg["token_pool"], cfg["residual"]  # a config written before the options existed
    old = WorldModel.from_config(cfg)
    assert old.token_pool == 1 and old.residual is False
    with pytest.raises(ValueError, match="predictor grid 4x4 .* token_pool=2"):
        WorldModel(_encoder(), _predictor(32), token_pool=2)
    with pytest.raises(ValueError, match="predictor grid 2x2 .* token_pool=1"):
        WorldModel(_encoder(), _predictor(16))
    with pytest.raises(ValueError, match="token_pool=3 must divide"):
        WorldModel(_encoder(), _predictor(16), token_pool=3)
    with pytest.raises(ValueError, match="token_pool must be an int"):
        WorldModel(_encoder(), _predictor(32), token_pool=0)
    with pytest.raises(ValueError, match="residual must be a bool"):
        WorldModel(_encoder(), _predictor(32), residual="yes")


@torch.no_grad()
def test_untrained_residual_model_from_config_copies_the_last_step():
    """from_config zero-initialises a residual head (as training does): prediction = the fed step."""
    wm = WorldModel.from_config(_wm().config).eval()
    z = wm.encode(torch.randn(2, 3, 4, 32, 32))
    pred = wm.predict(z, torch.randn(2, 2, 7), torch.randn(2, 2, 7))
    torch.testing.assert_close(pred, F.layer_norm(z, (D,)))  # LN(z + 0); z is already normed


# -- a checkpoint written by `vjepa2-ac train` -----------------------------------------------------------
# The shared tiny config with a pooled, residual predictor on cached embeddings, 3 steps.
TINY_OVERRIDES = [
    "model.token_pool=2",
    "model.residual=true",
    "data.cache_embeddings=true",
    "optim.total_steps=3",
    "optim.anneal_steps=0",
    "run.checkpoint_every=3",
]


def test_trained_world_model_reproduces_training_teacher_forcing(tmp_path):
    from vjepa2_ac.training.config import TrainACConfig, load_config
    from vjepa2_ac.training.synthetic import write_blob_episodes
    from vjepa2_ac.training.train_ac import train

    data = tmp_path / "blob"
    write_blob_episodes(data, num_episodes=4, steps=12, image_size=32, seed=0, max_move=0.05)
    cfg = load_config(TrainACConfig, TINY_TRAIN_AC, [f"data.paths=['{data}']", *TINY_OVERRIDES])
    run_dir: Path = tmp_path / "run"
    assert train(cfg, run_dir)["finished"]

    with torch.no_grad():
        _check_trained_run(cfg, run_dir)


def _check_trained_run(cfg, run_dir: Path) -> None:
    from vjepa2_ac.training import runtime
    from vjepa2_ac.training.objectives import ACObjective, encode_clips
    from vjepa2_ac.training.train_ac import build_models

    wm = WorldModel.from_checkpoint(run_dir / "world_model.pt").eval()
    assert wm.token_pool == 2 and wm.residual is True and wm.predictor.tokens_per_frame == 4
    assert wm.predictor.predictor_proj.weight.abs().max() > 0  # trained away from the zero init

    # The training side, rebuilt independently of world_model.pt: seeded encoder + trained predictor.
    runtime.seed_everything(cfg.run.seed)
    encoder, predictor = build_models(cfg)
    ck = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    predictor.load_state_dict(ck["model"]["predictor"])
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, wm.encoder.state_dict()[k]), k
    objective = ACObjective(predictor, auto_steps=cfg.loss.auto_steps, residual=True).eval()

    # Encoding: training targets == WorldModel.encode.
    video = torch.randn(2, 3, 6, 32, 32)
    torch.testing.assert_close(
        wm.encode(video), encode_clips(encoder, video, tubelet=2, alignment="subsample", pool=2)
    )

    # Teacher forcing on the embeddings training actually used (the embedding cache).
    cache = torch.load(run_dir / "embedding_cache.pt", weights_only=True)["tensors"]
    z, states, actions = cache["z"][:4], cache["states"][:4], cache["actions"][:4]  # z [4, 3, 4, D]
    s = z.shape[1]
    train_pred = objective.step(z[:, :-1], actions[:, : s - 1], states[:, : s - 1])
    wm_pred = wm.predict(z[:, :-1], actions[:, : s - 1], states[:, : s - 1])
    torch.testing.assert_close(wm_pred, train_pred, rtol=1e-5, atol=1e-5)
    # Both share one implementation, so also check it by hand: LN(input step + predicted change).
    ctx = z[:, :-1]
    change = predictor(ctx.flatten(1, 2), actions[:, : s - 1], states[:, : s - 1]).view(ctx.shape)
    torch.testing.assert_close(wm_pred, F.layer_norm(ctx + change, (D,)), rtol=1e-5, atol=1e-5)
    assert (wm_pred - F.layer_norm(change, (D,))).abs().max() > 1e-2  # ignoring `residual` would fail
    _, tf_loss, _, _ = objective(z, actions, states)
    torch.testing.assert_close((wm_pred - z[:, 1:]).abs().mean(), tf_loss, rtol=1e-5, atol=1e-6)
    # Planning with it: the cached rollout agrees with the uncached one.
    zc, _ = wm.rollout(z[:1, :2], states[:1, :2], actions[:2, 1:3], actions[:1, :1], use_cache=True)
    zu, _ = wm.rollout(z[:1, :2], states[:1, :2], actions[:2, 1:3], actions[:1, :1], use_cache=False)
    assert (zc - zu).abs().max().item() < 1e-4
