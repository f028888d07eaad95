"""WorldModel: encode/predict/rollout semantics, official 2-step rollout fixture (cached and uncached)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa2_ac import WorldModel, build_encoder, build_predictor

ATOL = 1e-4
HW, D = 64, 96


@pytest.fixture(scope="module")
def pred_fx(parity_dir):
    return torch.load(parity_dir / "ac_predictor_tiny.pt", weights_only=True)


@pytest.fixture(scope="module")
def official_wm(pred_fx):
    torch.manual_seed(0)
    enc = build_encoder(
        img_size=64,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        embed_dim=D,
        depth=1,
        num_heads=4,
        use_rope=True,
    )
    pred = build_predictor(**pred_fx["kwargs"])
    pred.load_state_dict(pred_fx["state_dict"], strict=True)
    return WorldModel(enc, pred, alignment="duplicate").eval()


def _maxerr(a, b):
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("use_cache", [True, False])
@torch.no_grad()
def test_official_rollout_fixture(official_wm, pred_fx, use_cache):
    i, o = pred_fx["inputs"], pred_fx["outputs"]
    z = i["x"].view(2, 4, HW, D)
    z_pred, states = official_wm.rollout(
        z[:, :1], i["states"][:, :1], i["rollout_actions"], use_cache=use_cache
    )
    ref = o["rollout_reps"].view(2, 3, HW, D)
    assert z_pred.shape == (2, 2, HW, D) and states.shape == (2, 3, 7)
    assert _maxerr(z_pred, ref[:, 1:]) < ATOL
    assert _maxerr(states, o["rollout_poses"]) < ATOL


@torch.no_grad()
def test_batch1_context_broadcasts(official_wm, pred_fx):
    i, o = pred_fx["inputs"], pred_fx["outputs"]
    z = i["x"].view(2, 4, HW, D)
    acts = i["rollout_actions"][:1].expand(3, -1, -1)
    for use_cache in (True, False):
        z_pred, states = official_wm.rollout(z[:1, :1], i["states"][:1, :1], acts, use_cache=use_cache)
        assert z_pred.shape == (3, 2, HW, D)
        assert _maxerr(z_pred, o["rollout_reps"].view(2, 3, HW, D)[:1, 1:].expand(3, -1, -1, -1)) < ATOL


@torch.no_grad()
def test_longer_context_cached_equals_uncached(official_wm, pred_fx):
    i = pred_fx["inputs"]
    z = i["x"].view(2, 4, HW, D)
    torch.manual_seed(1)
    acts = torch.randn(4, 2, 7) * 0.05
    kw = dict(past_actions=i["actions"][:1, :2])
    a, sa = official_wm.rollout(z[:1, :3], i["states"][:1, :3], acts, use_cache=True, **kw)
    b, sb = official_wm.rollout(z[:1, :3], i["states"][:1, :3], acts, use_cache=False, **kw)
    assert _maxerr(a, b) < ATOL and _maxerr(sa, sb) < 1e-6
    # A precomputed shared context cache gives the same result.
    cache = official_wm.context_cache(z[:1, :3], i["states"][:1, :3], i["actions"][:1, :2])
    c, _ = official_wm.rollout(z[:1, :3], i["states"][:1, :3], acts, use_cache=True, cache=cache, **kw)
    assert _maxerr(a, c) < 1e-6
    with pytest.raises(ValueError, match="past_actions"):
        official_wm.rollout(z[:1, :3], i["states"][:1, :3], acts)


@torch.no_grad()
def test_predict_is_normed_teacher_forcing(official_wm, pred_fx):
    i, o = pred_fx["inputs"], pred_fx["outputs"]
    z = i["x"].view(2, 4, HW, D)
    out = official_wm.predict(z, i["actions"], i["states"])
    assert out.shape == (2, 4, HW, D)
    assert _maxerr(out, F.layer_norm(o["out"], (D,)).view(2, 4, HW, D)) < ATOL


def _small_wm(alignment, tubelet=2):
    torch.manual_seed(0)
    enc = build_encoder(
        img_size=32,
        patch_size=8,
        num_frames=8,
        tubelet_size=tubelet,
        embed_dim=48,
        depth=1,
        num_heads=4,
        use_rope=True,
    )
    pred = build_predictor(
        img_size=32,
        patch_size=8,
        num_frames=16,
        tubelet_size=2,
        embed_dim=48,
        predictor_embed_dim=32,
        depth=1,
        num_heads=4,
    )
    return WorldModel(enc, pred, alignment=alignment).eval()


@torch.no_grad()
def test_encode_alignments():
    video = torch.randn(2, 3, 4, 32, 32)
    sub = _small_wm("subsample")
    z = sub.encode(video)
    assert z.shape == (2, 2, 16, 48)
    # Normed per token, no affine.
    assert torch.allclose(z.mean(-1), torch.zeros(2, 2, 16), atol=1e-5)
    # Strategy A: every tubelet of 2 consecutive frames is encoded on its own (not jointly with the clip).
    for j in range(2):
        ref = F.layer_norm(sub.encoder(video[:, :, 2 * j : 2 * j + 2]), (48,)).view(2, 1, 16, 48)
        assert _maxerr(ref, z[:, j : j + 1]) < 1e-6
    assert _maxerr(F.layer_norm(sub.encoder(video), (48,)).view(2, 2, 16, 48), z) > 1e-3
    with pytest.raises(ValueError, match="multiple of the tubelet size"):
        sub.encode(torch.randn(1, 3, 3, 32, 32))
    dup = _small_wm("duplicate")
    zd = dup.encode(video)
    assert zd.shape == (2, 4, 16, 48)
    # Each frame is encoded on its own, exactly like encode_image of that frame.
    for t in range(4):
        assert _maxerr(zd[:, t : t + 1], dup.encode_image(video[:, :, t])) < 1e-5
    assert sub.encode_image(video[:, :, 0]).shape == (2, 1, 16, 48)


@torch.no_grad()
def test_tubelet_one_subsample():
    wm = _small_wm("subsample", tubelet=1)
    assert wm.encode(torch.randn(1, 3, 3, 32, 32)).shape == (1, 3, 16, 48)


def test_bad_arguments():
    with pytest.raises(ValueError, match="alignment"):
        _small_wm("interleave")
    wm = _small_wm("subsample")
    with pytest.raises(ValueError, match="video"):
        wm.encode(torch.randn(3, 4, 32, 32))
    with pytest.raises(ValueError, match="actions"):
        wm.rollout(torch.randn(1, 1, 16, 48), torch.zeros(1, 1, 7), torch.zeros(2, 3, 6))


@torch.no_grad()
def test_bf16_autocast_rollout_close(official_wm, pred_fx):
    i, o = pred_fx["inputs"], pred_fx["outputs"]
    z = i["x"].view(2, 4, HW, D)
    ref = o["rollout_reps"].view(2, 3, HW, D)[:, 1:]
    for use_cache in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z_pred, _ = official_wm.rollout(
                z[:, :1], i["states"][:, :1], i["rollout_actions"], use_cache=use_cache
            )
        # Measured: max 0.048 (cached) / 0.046 (uncached).
        assert _maxerr(z_pred, ref) < 0.15


def test_rollout_is_differentiable_wrt_actions(official_wm, pred_fx):
    i = pred_fx["inputs"]
    z = i["x"].view(2, 4, HW, D)
    acts = i["rollout_actions"].clone().requires_grad_(True)
    z_pred, _ = official_wm.rollout(z[:, :1], i["states"][:, :1], acts)
    z_pred[:, -1].abs().mean().backward()
    assert acts.grad is not None and acts.grad.abs().sum() > 0


def test_model_bench_smoke(capsys):
    from vjepa2_ac.model_bench import main

    threads = torch.get_num_threads()
    try:
        assert main(["--samples", "2", "--horizon", "2", "--reps", "1", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "naive fp32" in out and "cached bf16" in out and "RoPE q+k" in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("1 |", "2 |"))]
    assert len(rows) == 2


@torch.no_grad()
def test_rollout_states_full_precision_under_bf16(official_wm, pred_fx):
    i, o = pred_fx["inputs"], pred_fx["outputs"]
    z = i["x"].view(2, 4, HW, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, states = official_wm.rollout(z[:, :1], i["states"][:, :1], i["rollout_actions"])
    # Pose maths must not run in bf16 (that drifted by 3.6e-3 before it was forced to float32).
    assert states.dtype == torch.float32
    assert _maxerr(states, o["rollout_poses"]) < 1e-5


def test_parity_command(parity_dir, tmp_path, capsys):
    from vjepa2_ac.parity import main

    assert main(["--fixtures", str(parity_dir)]) == 0
    out = capsys.readouterr().out
    assert "rollout_reps (cached)" in out and "all 13 float32 outputs within 0.0001" in out
    with pytest.raises(FileNotFoundError, match="VJEPA2_AC_PARITY_FIXTURES"):
        main(["--fixtures", str(tmp_path)])


@torch.no_grad()
def test_encode_observation_is_the_last_tubelet_of_raw_frames():
    """Planning encodes the last 2 frames as a tubelet, exactly as a training clip's step; fewer frames
    than a tubelet repeat the oldest (a scene at rest); duplicate models encode the last frame alone."""
    from vjepa2_ac.world_model import frames_to_video

    sub = _small_wm("subsample")
    frames = torch.randint(0, 256, (3, 4, 32, 32, 3), dtype=torch.uint8)
    z_clip = sub.encode(frames_to_video(frames))  # [3, 2, N, D]
    assert _maxerr(sub.encode_observation(frames), z_clip[:, 1]) < 1e-6
    assert _maxerr(sub.encode_observation(frames[:, 2:]), z_clip[:, 1]) < 1e-6
    still = sub.encode_observation(frames[:, :1])
    assert _maxerr(still, sub.encode_image(frames_to_video(frames[:, :1])[:, :, 0])[:, 0]) < 1e-6
    dup = _small_wm("duplicate")
    assert _maxerr(dup.encode_observation(frames), dup.encode_frames(frames[:, -1:])[:, 0]) < 1e-6
    with pytest.raises(ValueError, match=r"uint8 \[B, T, 32, 32, 3\]"):
        sub.encode_observation(torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8))
