"""Fixed 3-D sin-cos position embeddings (the alternative to RoPE, ``use_rope=False``).

The embedding of token ``(t, h, w)`` is ``[E_t(t) | E_h(h) | E_w(w)]`` where each ``E`` is a 1-D sin-cos
embedding ``[sin(p * omega), cos(p * omega)]`` (concatenated halves, ``omega_i = 10000 ** (-i / (d / 2))``).
Every part must have an even size so that sines and cosines pair up; any even total width works, including
widths that do not split into three equal parts (1024 -> 340 / 342 / 342 with ``uniform_power``).
"""

from __future__ import annotations

import torch

__all__ = ["sincos_split", "sincos_1d", "sincos_3d"]


def sincos_split(dim: int, uniform_power: bool) -> tuple[int, int, int]:
    """Sizes of the (time, height, width) parts of a ``dim``-wide embedding; each is even and they sum to dim.

    ``uniform_power=False`` follows the official split (time D/2, height D/4, width D/4, rounded down to even
    numbers with the remainder going to width); ``uniform_power=True`` splits as evenly as possible.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"sin-cos position embedding needs a positive even width, got embed_dim={dim}")
    if uniform_power:
        base = 2 * (dim // 6)
        rest = dim - 3 * base  # 0, 2 or 4
        d, h, w = base, base + (2 if rest >= 4 else 0), base + (2 if rest >= 2 else 0)
    else:
        d = 2 * (dim // 4)
        h = 2 * ((dim - d) // 4)
        w = dim - d - h
    assert d + h + w == dim and d % 2 == h % 2 == w % 2 == 0
    if min(d, h, w) == 0:
        raise ValueError(f"embed_dim={dim} is too small for a 3-D sin-cos embedding (parts {d}/{h}/{w})")
    return d, h, w


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """``[..., dim]`` embedding ``[sin(pos*omega), cos(pos*omega)]`` of float positions ``pos[...]``."""
    if dim % 2:
        raise ValueError(f"1-D sin-cos embedding needs an even width, got {dim}")
    half = dim // 2
    omega = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = pos.to(torch.float64)[..., None] * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sincos_3d(dim: int, t: int, h: int, w: int, *, uniform_power: bool = False) -> torch.Tensor:
    """``[t*h*w, dim]`` float32 embedding for a ``t x h x w`` grid in t-major, row, column token order."""
    dd, dh, dw = sincos_split(dim, uniform_power)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat(
        [sincos_1d(tt.reshape(-1), dd), sincos_1d(hh.reshape(-1), dh), sincos_1d(ww.reshape(-1), dw)], dim=-1
    )
    return emb.to(torch.float32)
