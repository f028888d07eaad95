"""A small mask-token predictor for V-JEPA pretraining (our own design, not the official module).

Context tokens (the encoder's outputs at the visible positions) are projected to the predictor width;
one learned mask token per mask family is placed at every target position; both get a fixed 3D sin-cos
position code of their grid position. A pre-norm transformer mixes them and the outputs at the target
positions are projected back to the encoder width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def sincos_3d(index: torch.Tensor, grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed sin-cos code for flat token indices ``[...]`` on grid (T, H, W) -> ``[..., dim]``.

    Half of the channels encode time, a quarter each row and column (dims padded/cut to ``dim``).
    """
    _, gh, gw = grid
    t = torch.div(index, gh * gw, rounding_mode="floor")
    r = torch.div(index - t * gh * gw, gw, rounding_mode="floor")
    c = index - t * gh * gw - r * gw
    parts = []
    for pos, d in ((t, dim // 2), (r, dim // 4), (c, dim - dim // 2 - dim // 4)):
        half = max(1, d // 2)
        freq = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=index.device, dtype=torch.float32) / half
        )
        ang = pos.to(torch.float32)[..., None] * freq  # [..., half]
        parts.append(torch.cat([ang.sin(), ang.cos()], -1)[..., :d])
    return torch.cat(parts, -1)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class MaskTokenPredictor(nn.Module):
    """Predicts encoder embeddings of masked tokens from the visible ones.

    ``forward(ctx_tokens[B, Kc, D], ctx_idx[B, Kc], tgt_idx[B, Kt], grid=(T, H, W), family=0) -> [B, Kt, D]``.
    """

    def __init__(
        self,
        embed_dim: int,
        predictor_embed_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 2,
        use_activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_tokens = nn.Parameter(torch.zeros(num_mask_tokens, predictor_embed_dim))
        self.blocks = nn.ModuleList(_Block(predictor_embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(predictor_embed_dim, eps=1e-6)
        self.proj = nn.Linear(predictor_embed_dim, embed_dim)
        self.use_activation_checkpointing = use_activation_checkpointing
        self.apply(self._init)
        nn.init.trunc_normal_(self.mask_tokens, std=0.02)
        for i, blk in enumerate(self.blocks, start=1):
            # Residual branches scaled down with depth so the sum stays O(1) at init.
            blk.proj.weight.data.div_(math.sqrt(2 * i))
            blk.fc2.weight.data.div_(math.sqrt(2 * i))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self,
        ctx_tokens: torch.Tensor,
        ctx_idx: torch.Tensor,
        tgt_idx: torch.Tensor,
        grid: tuple[int, int, int],
        family: int = 0,
    ) -> torch.Tensor:
        b, kc, _ = ctx_tokens.shape
        kt = tgt_idx.shape[1]
        dp = self.mask_tokens.shape[1]
        x = self.embed(ctx_tokens) + sincos_3d(ctx_idx, grid, dp).to(ctx_tokens.dtype)  # [B, Kc, Dp]
        m = self.mask_tokens[family].expand(b, kt, dp) + sincos_3d(tgt_idx, grid, dp).to(x.dtype)
        x = torch.cat([x, m.to(x.dtype)], 1)  # [B, Kc+Kt, Dp]
        for blk in self.blocks:
            if self.use_activation_checkpointing and self.training:
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.proj(self.norm(x[:, kc:]))  # [B, Kt, D]
