"""Transformer building blocks shared by the encoder and the AC predictor.

Parameter names follow the official V-JEPA 2 modules (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) so official state dicts load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2_ac.rope import apply_rope

__all__ = ["MLP", "DropPath", "Attention", "Block", "init_vit_weights", "rescale_blocks"]


class MLP(nn.Module):
    """``fc1 -> GELU (exact erf) -> dropout -> fc2 -> dropout``."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: zeroes whole samples' residual branches with probability ``p`` while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention with optional RoPE tables and an optional key/value prefix (cache).

    ``forward(x[B, L, D], rope=(cos, sin) | None, attn_mask=None, past_kv=None, return_kv=False)``.
    ``rope`` tables broadcast against ``[B, heads, L, hd]`` (``[L, hd]`` or ``[B, 1, L, hd]``). ``past_kv`` is
    a ``(k, v)`` pair ``[Bp, heads, Lp, hd]`` of already rotated keys/values prepended to this call's; with
    ``Bp == 1`` it broadcasts over ``B``. ``attn_mask`` is a bool ``[L, Lp + L]`` (True = may attend).
    ``kv_buffer=(k_buf, v_buf, start)`` (instead of ``past_kv``) is a preallocated ``[B, heads, cap, hd]``
    pair whose rows ``:start`` hold the prefix: this call's rotated keys/values are written into rows
    ``start : start + L`` in place and attention reads rows ``:start + L`` (no concatenation). In-place
    writes break autograd, so use it only without gradients.
    Scale is SDPA's default ``1/sqrt(hd)`` (the official code ignores ``qk_scale`` on its SDPA path).
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = float(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_mask: torch.Tensor | None = None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_kv: bool = False,
        kv_buffer: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    ):
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if kv_buffer is not None:
            q, k, v = self._write_buffer(qkv, rope, kv_buffer)
        else:
            q, k, v = self._rotate(qkv, rope)
        if past_kv is not None and kv_buffer is None:
            pk, pv = past_kv
            if pk.shape[0] != b:
                if pk.shape[0] != 1:
                    raise ValueError(
                        f"cached keys have batch {pk.shape[0]}, new tokens batch {b} (need 1 or {b})"
                    )
                pk, pv = pk.expand(b, -1, -1, -1), pv.expand(b, -1, -1, -1)
            k = torch.cat([pk.to(k.dtype), k], dim=2)
            v = torch.cat([pv.to(v.dtype), v], dim=2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0
        )
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))
        if return_kv:
            return out, (k, v)
        return out

    @staticmethod
    def _rotate(qkv, rope):
        """``qkv[3, B, h, L, hd]`` -> rotated ``q``, ``k`` and ``v``."""
        if rope is None:
            return qkv[0], qkv[1], qkv[2]
        cos, sin = rope
        qk = apply_rope(qkv[:2], cos.to(qkv.dtype), sin.to(qkv.dtype))  # [2, B, h, L, hd] contiguous
        return qk[0], qk[1], qkv[2]

    @staticmethod
    def _write_buffer(qkv, rope, kv_buffer):
        """Rotates ``q``; writes rotated ``k`` and ``v`` (``qkv[3, B, h, L, hd]``) into the buffer rows
        ``start : start + L``; returns ``q`` and the filled key/value prefixes ``[B, h, start + L, hd]``."""
        k_buf, v_buf, start = kv_buffer
        n = qkv.shape[3]
        if k_buf.shape[:2] != qkv.shape[1:3] or k_buf.shape[3] != qkv.shape[4] or start + n > k_buf.shape[2]:
            raise ValueError(
                f"key/value buffer {tuple(k_buf.shape)} cannot take {n} tokens at row {start} for "
                f"[B, heads, L, hd] = {tuple(qkv.shape[1:])}"
            )
        if k_buf.dtype != qkv.dtype:
            raise ValueError(f"key/value buffer dtype {k_buf.dtype} != computed keys' dtype {qkv.dtype}")
        # q and k rotated in one pass (fewer kernel launches than two; small models are launch-bound),
        # then only the new rows are copied into the buffer.
        q, k, v = Attention._rotate(qkv, rope)
        k_buf[:, :, start : start + n].copy_(k)
        v_buf[:, :, start : start + n].copy_(v)
        return q, k_buf[:, :, : start + n], v_buf[:, :, : start + n]


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop=drop)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_mask: torch.Tensor | None = None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_kv: bool = False,
        kv_buffer: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    ):
        y = self.attn(
            self.norm1(x),
            rope=rope,
            attn_mask=attn_mask,
            past_kv=past_kv,
            return_kv=return_kv,
            kv_buffer=kv_buffer,
        )
        if return_kv:
            y, kv = y
        x = x + self.drop_path(y)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, kv) if return_kv else x


def _linspace(end: float, n: int) -> list[float]:
    """``torch.linspace(0, end, n)`` in plain Python (works while a meta default device is active)."""
    if n == 1:
        return [0.0]
    return [end * i / (n - 1) for i in range(n)]


def init_vit_weights(module: nn.Module, std: float = 0.02) -> None:
    """Official init: Linear/Conv weights ~ N(0, std) (truncation at +-2 absolute), zero biases, LN (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
        nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def rescale_blocks(blocks: nn.ModuleList) -> None:
    """Divides block i's (1-based) output projections by ``sqrt(2 i)`` (official depth-scaled init)."""
    with torch.no_grad():
        for i, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))
