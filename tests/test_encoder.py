"""Encoder: official parity, RoPE layout, masks, non-square inputs, sin-cos embedding, bf16, checkpointing."""

from __future__ import annotations

import pytest
import torch

from vjepa2_ac import build_encoder
from vjepa2_ac.pos_embed import sincos_3d, sincos_split
from vjepa2_ac.rope import apply_rope, encoder_rope_tables, rope_chunk_dim

ATOL = 1e-4


@pytest.fixture(scope="module")
def enc_fx(parity_dir):
    return torch.load(parity_dir / "encoder_tiny.pt", weights_only=True)


@pytest.fixture(scope="module")
def encoder(enc_fx):
    model = build_encoder(**enc_fx["kwargs"]).eval()
    model.load_state_dict(enc_fx["state_dict"], strict=True)
    return model


def _maxerr(a, b):
    return (a.float() - b.float()).abs().max().item()


@torch.no_grad()
def test_parity_plain(encoder, enc_fx):
    out = encoder(enc_fx["inputs"]["video"])
    assert out.shape == enc_fx["outputs"]["tokens"].shape
    assert _maxerr(out, enc_fx["outputs"]["tokens"]) < ATOL


@torch.no_grad()
def test_parity_masked(encoder, enc_fx):
    out = encoder(enc_fx["inputs"]["video"], masks=enc_fx["inputs"]["masks"])
    assert out.shape == (2, 40, 96)
    assert _maxerr(out, enc_fx["outputs"]["tokens_masked"]) < ATOL


@torch.no_grad()
def test_parity_duplicated_frame(encoder, enc_fx):
    video = enc_fx["inputs"]["video"]
    out = encoder(video[:, :, :1].repeat(1, 1, 2, 1, 1))
    assert _maxerr(out, enc_fx["outputs"]["tokens_dup_frame0"]) < ATOL


def test_mask_list_needs_equal_lengths(encoder, enc_fx):
    video, masks = enc_fx["inputs"]["video"], enc_fx["inputs"]["masks"]
    other = torch.stack([torch.arange(0, 128, 4), torch.arange(1, 128, 4)])  # [2, 32]
    with pytest.raises(ValueError, match="same number of kept tokens"):
        encoder(video, masks=[masks, other])


@torch.no_grad()
def test_mask_list_same_length(encoder, enc_fx):
    video, masks = enc_fx["inputs"]["video"], enc_fx["inputs"]["masks"]
    flipped = masks.flip(0)
    out = encoder(video, masks=[masks, flipped])
    assert out.shape == (4, 40, 96)
    assert _maxerr(out[:2], enc_fx["outputs"]["tokens_masked"]) < ATOL
    # The second copy keeps sample b's tokens at the other sample's positions.
    ref = encoder(video, masks=flipped)
    assert _maxerr(out[2:], ref) < 1e-5


def test_bad_masks_rejected(encoder, enc_fx):
    video = enc_fx["inputs"]["video"]
    with pytest.raises(ValueError, match="mask indices"):
        encoder(video, masks=torch.full((2, 3), 128))
    with pytest.raises(ValueError, match=r"\[B=2, K\]"):
        encoder(video, masks=torch.zeros(3, 4, dtype=torch.long))


def _official_style_rotate(x, frame, row, col):
    """Independent chunk-wise reference of the official rotation (tiled frequencies, adjacent pairs)."""
    hd = x.shape[-1]
    dc = rope_chunk_dim(hd)
    outs = []
    for i, pos in enumerate((frame, row, col)):
        chunk = x[..., i * dc : (i + 1) * dc]
        omega = 1.0 / 10000 ** (torch.arange(dc // 2, dtype=torch.float64) / (dc / 2))
        freq = pos.double()[:, None] * omega  # [N, dc/2]
        cos, sin = freq.cos().repeat(1, 2), freq.sin().repeat(1, 2)
        pairs = chunk.double().unflatten(-1, (-1, 2))
        y = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        outs.append(chunk.double() * cos + y * sin)
    outs.append(x[..., 3 * dc :].double())
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("hd", [16, 20, 24, 64])
def test_rope_tables_match_reference(hd):
    t, h, w = 3, 4, 5
    x = torch.randn(2, 3, t * h * w, hd, dtype=torch.float64)
    cos, sin = encoder_rope_tables(t, h, w, hd, dtype=torch.float64, device=torch.device("cpu"))
    ids = torch.arange(t * h * w)
    ref = _official_style_rotate(x, ids // (h * w), (ids % (h * w)) // w, ids % w)
    assert torch.allclose(apply_rope(x, cos, sin), ref, atol=1e-12)
    # Cached: the same objects come back for the same layout.
    again = encoder_rope_tables(t, h, w, hd, dtype=torch.float64, device=torch.device("cpu"))
    assert again[0] is cos


def _tiny(**kw):
    args = dict(img_size=32, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=48, depth=2, num_heads=4)
    args.update(kw)
    torch.manual_seed(0)
    return build_encoder(**args).eval()


@torch.no_grad()
def test_nonsquare_and_frame_count():
    enc = _tiny(use_rope=True)
    out = enc(torch.randn(1, 3, 6, 24, 40))
    assert out.shape == (1, 3 * 3 * 5, 48)
    with pytest.raises(ValueError, match="multiple of tubelet_size"):
        enc(torch.randn(1, 3, 3, 24, 40))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        enc(torch.randn(1, 3, 2, 20, 40))


@torch.no_grad()
def test_out_layers():
    enc = _tiny(use_rope=True, depth=3, out_layers=[0, 2])
    x = torch.randn(1, 3, 4, 32, 32)
    outs = enc(x)
    assert isinstance(outs, list) and len(outs) == 2
    enc.out_layers = None
    assert torch.allclose(outs[1], enc(x), atol=1e-6)


def test_sincos_split_even_parts():
    assert sincos_split(1024, uniform_power=True) == (340, 342, 342)
    assert sincos_split(1024, uniform_power=False) == (512, 256, 256)
    for dim in (96, 192, 198, 384, 1280, 1408, 1664):
        for up in (True, False):
            parts = sincos_split(dim, up)
            assert sum(parts) == dim and all(p % 2 == 0 and p > 0 for p in parts)
    with pytest.raises(ValueError, match="even"):
        sincos_split(1023, True)


def test_sincos_embedding_fixed_and_grid_order():
    emb = sincos_3d(1024, 2, 3, 4, uniform_power=True)
    assert emb.shape == (24, 1024)
    # Token (t=1, h=2, w=3) -> index 1*12 + 2*4 + 3; its time part at position 1 is [sin(1*w), cos(1*w)].
    idx = 1 * 12 + 2 * 4 + 3
    assert torch.allclose(emb[idx, 0], torch.tensor(1.0).sin())
    assert torch.allclose(emb[idx, 170], torch.tensor(1.0).cos())
    enc = _tiny(use_rope=False, embed_dim=96, uniform_power=True)
    assert enc.pos_embed.shape == (1, 2 * 4 * 4, 96) and not enc.pos_embed.requires_grad
    x = torch.randn(1, 3, 4, 32, 32)
    enc.train()
    enc(x).sum().backward()
    assert enc.pos_embed.grad is None
    with torch.no_grad():
        enc.eval()
        # Other grids interpolate the fixed table; fewer frames take a prefix.
        assert enc(torch.randn(1, 3, 2, 32, 32)).shape == (1, 16, 96)
        assert enc(torch.randn(1, 3, 4, 48, 32)).shape == (1, 2 * 6 * 4, 96)


def test_image_encoder():
    enc = _tiny(num_frames=1, use_rope=True)
    with torch.no_grad():
        assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 16, 48)
    assert enc.patch_embed.proj.weight.shape == (48, 3, 8, 8)


def test_activation_checkpointing_same_gradients():
    x = torch.randn(1, 3, 4, 32, 32)
    grads = []
    for ckpt in (False, True):
        enc = _tiny(use_rope=True, use_activation_checkpointing=ckpt).train()
        enc(x).square().mean().backward()
        grads.append(enc.blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@torch.no_grad()
def test_bf16_autocast_close(encoder, enc_fx):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(enc_fx["inputs"]["video"])
    err = (out.float() - enc_fx["outputs"]["tokens"]).abs()
    # Measured: max 0.042, mean 0.0048 (outputs up to |4.9|).
    assert err.max().item() < 0.15 and err.mean().item() < 0.02


def test_build_encoder_rejects_unknown_kwargs():
    with pytest.raises(TypeError, match="build_encoder"):
        build_encoder(embed_dim=48, depth=1, num_heads=4, not_a_kwarg=1)
    with pytest.raises(ValueError, match="num_heads"):
        build_encoder(embed_dim=50, depth=1, num_heads=4)
