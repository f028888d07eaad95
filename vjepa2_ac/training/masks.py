"""3D multi-block ("tube") masks for V-JEPA pretraining.

Token grid of a clip: ``[T_tok, H_tok, W_tok]`` with flat index ``t·H·W + h·W + w`` (the encoder's
t-major order). A mask family draws one block size per batch (spatial scale, aspect ratio, temporal
scale) and ``num_blocks`` random positions per sample; the target is the union of the blocks, the context
everything else. Index lists are sorted and truncated to the batch minimum so they stack.
"""

from __future__ import annotations

import math

import torch

from vjepa2_ac.training.config import MaskBlockConfig


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def block_shape(cfg: MaskBlockConfig, grid: tuple[int, int, int], g: torch.Generator) -> tuple[int, int, int]:
    """Draw one (t, h, w) block size in tokens for a batch."""
    gt, gh, gw = grid
    scale = _uniform(*cfg.spatial_scale, g)
    log_ar = _uniform(math.log(cfg.aspect_ratio[0]), math.log(cfg.aspect_ratio[1]), g)
    tscale = _uniform(*cfg.temporal_scale, g)
    n = scale * gh * gw
    h = min(gh, max(1, round(math.sqrt(n * math.exp(log_ar)))))
    w = min(gw, max(1, round(math.sqrt(n / math.exp(log_ar)))))
    t = min(gt, max(1, round(tscale * gt)))
    return t, h, w


def sample_tube_masks(
    batch: int,
    grid: tuple[int, int, int],
    cfg: MaskBlockConfig,
    generator: torch.Generator,
    max_tries: int = 20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context and target token indices for one mask family.

    Returns ``(context [B, Kc], target [B, Kt])`` int64, sorted per row. Every sample keeps at least one
    context token: a placement that covers everything is redrawn, and if that keeps failing blocks are
    dropped (only possible on tiny grids with large blocks).
    """
    gt, gh, gw = grid
    t, h, w = block_shape(cfg, grid, generator)
    masks = []
    for _ in range(batch):
        for _try in range(max_tries):
            m = torch.zeros(gt, gh, gw, dtype=torch.bool)
            corners = []
            for _b in range(cfg.num_blocks):
                t0 = int(torch.randint(0, gt - t + 1, (), generator=generator))
                h0 = int(torch.randint(0, gh - h + 1, (), generator=generator))
                w0 = int(torch.randint(0, gw - w + 1, (), generator=generator))
                corners.append((t0, h0, w0))
                m[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
            if not m.all():
                break
        else:
            # Drop blocks from the last placement until some context is left.
            while m.all() and len(corners) > 1:
                corners.pop()
                m = torch.zeros(gt, gh, gw, dtype=torch.bool)
                for t0, h0, w0 in corners:
                    m[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
            if m.all():
                raise ValueError(
                    f"mask block {t}x{h}x{w} covers the whole token grid {grid}; lower masks[].spatial_scale"
                )
        masks.append(m.flatten())
    stacked = torch.stack(masks)  # [B, T·H·W], True = target
    n_tgt = int(stacked.sum(1).min())
    n_ctx = int((~stacked).sum(1).min())
    ctx = torch.stack([torch.nonzero(~r).flatten()[:n_ctx] for r in stacked])
    tgt = torch.stack([torch.nonzero(r).flatten()[:n_tgt] for r in stacked])
    return ctx, tgt
