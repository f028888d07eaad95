"""3-D rotary position embedding (RoPE) as the official V-JEPA 2 models compute it.

Layout of one attention head vector of size ``hd``::

    [ time (Dc) | height (Dc) | width (Dc) | rest (hd - 3 Dc), not rotated ],  Dc = 2 * ((hd // 3) // 2)

Inside a chunk of size ``Dc`` with axis position ``p`` the official code uses the angles
``theta_i = p * 10000 ** (-i / (Dc / 2))`` for ``i < Dc / 2`` and *tiles* them (``[theta_0 .. theta_{Dc/2-1},
theta_0 .. theta_{Dc/2-1}]``) while rotating *adjacent* pairs (``y_{2j} = -x_{2j+1}``, ``y_{2j+1} = x_{2j}``).
So the two members of a pair use different angles. This quirk is part of the released checkpoints and is
reproduced here on purpose.

Instead of recomputing sines and cosines for every call and rotating three non-contiguous slices (the
official code), we precompute one ``[L, hd]`` cos table and one sign-folded sin table per token layout
(rest dims: cos 1, sin 0) and rotate the whole head in three fused element-wise ops::

    out = x * C + swap_pairs(x) * S_signed

Tables are cached per (layout, device, dtype).
"""

from __future__ import annotations

import threading

import torch

__all__ = [
    "rope_chunk_dim",
    "axis_angles",
    "rope_tables",
    "encoder_rope_tables",
    "predictor_rope_tables",
    "apply_rope",
    "clear_rope_cache",
]

ROPE_BASE = 10000.0

_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_CACHE_LOCK = threading.Lock()
# Keeps the cache bounded when many different grid shapes are seen (e.g. random resolutions).
_CACHE_MAX = 64


def rope_chunk_dim(head_dim: int) -> int:
    """Size of each of the time / height / width chunks of a head vector (official formula)."""
    if head_dim < 6:
        raise ValueError(f"RoPE needs head_dim >= 6 to rotate three axes, got head_dim={head_dim}")
    return 2 * ((head_dim // 3) // 2)


def axis_angles(pos: torch.Tensor, chunk_dim: int) -> torch.Tensor:
    """Tiled angles ``[..., chunk_dim]`` of one axis for float positions ``pos[...]`` (float64 maths)."""
    half = chunk_dim // 2
    omega = ROPE_BASE ** (-torch.arange(half, dtype=torch.float64) / half)  # [Dc/2]
    theta = pos.to(torch.float64)[..., None] * omega  # [..., Dc/2]
    # Official quirk: tiled (repeat), not interleaved (repeat_interleave).
    return torch.cat([theta, theta], dim=-1)


def rope_tables(
    pos_t: torch.Tensor,
    pos_h: torch.Tensor | None,
    pos_w: torch.Tensor | None,
    head_dim: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos and sign-folded sin tables ``[L, head_dim]`` for tokens with the given axis positions.

    ``pos_h``/``pos_w`` may be ``None`` for tokens that are rotated in time only (the AC predictor's
    condition tokens): their height/width chunks then get the identity (cos 1, sin 0).
    """
    dc = rope_chunk_dim(head_dim)
    n = pos_t.shape[0]
    angles = torch.zeros(n, head_dim, dtype=torch.float64)
    rotated = torch.zeros(n, head_dim, dtype=torch.bool)
    angles[:, :dc] = axis_angles(pos_t, dc)
    rotated[:, :dc] = True
    if pos_h is not None:
        angles[:, dc : 2 * dc] = axis_angles(pos_h, dc)
        rotated[:, dc : 2 * dc] = True
    if pos_w is not None:
        angles[:, 2 * dc : 3 * dc] = axis_angles(pos_w, dc)
        rotated[:, 2 * dc : 3 * dc] = True
    cos = torch.where(rotated, angles.cos(), torch.ones_like(angles))
    sin = torch.where(rotated, angles.sin(), torch.zeros_like(angles))
    # swap_pairs(x) = [x1, x0, x3, x2, ...]; y = [-x1, x0, -x3, x2, ...] -> negate sin on even elements.
    sign = torch.ones(head_dim, dtype=torch.float64)
    sign[0::2] = -1.0
    sin = sin * sign
    return cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype)


def _cached(key: tuple, build) -> tuple[torch.Tensor, torch.Tensor]:
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    value = build()
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = value
    return value


def clear_rope_cache() -> None:
    """Drops every cached table (e.g. to free device memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def encoder_rope_tables(
    t: int, h: int, w: int, head_dim: int, *, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables ``[t*h*w, head_dim]`` for a full token grid in t-major, row, column order (cached)."""

    def build():
        ids = torch.arange(t * h * w)
        frame = ids // (h * w)
        row = (ids % (h * w)) // w
        col = ids % w
        return rope_tables(frame, row, col, head_dim, dtype=dtype, device=device)

    return _cached(("enc", t, h, w, head_dim, torch.device(device), dtype), build)


def predictor_rope_tables(
    steps: int, cond_tokens: int, h: int, w: int, head_dim: int, *, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables ``[steps*(cond_tokens + h*w), head_dim]`` for the AC predictor sequence (cached).

    Per step ``t`` the tokens are ``[cond_0 .. cond_{K-1}, patch_0 .. patch_{hw-1}]``; condition tokens are
    rotated in time only (position ``t``), patches by ``(t, row, col)``. Rows of step ``t`` start at
    ``t * (cond_tokens + h*w)``, so any step range is a contiguous row slice.
    """

    def build():
        per_step = cond_tokens + h * w
        step = torch.arange(steps).repeat_interleave(per_step)
        slot = torch.arange(steps * per_step) % per_step
        patch = (slot - cond_tokens).clamp(min=0)
        row, col = patch // w, patch % w
        cos_p, sin_p = rope_tables(step, row, col, head_dim, dtype=torch.float64)
        cos_c, sin_c = rope_tables(step, None, None, head_dim, dtype=torch.float64)
        is_cond = (slot < cond_tokens)[:, None]
        cos = torch.where(is_cond, cos_c, cos_p)
        sin = torch.where(is_cond, sin_c, sin_p)
        return cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype)

    return _cached(("pred", steps, cond_tokens, h, w, head_dim, torch.device(device), dtype), build)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates ``x[..., L, hd]`` with tables broadcastable to it (``[L, hd]`` or ``[B, 1, L, hd]``)."""
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.addcmul(x * cos, swapped, sin)
