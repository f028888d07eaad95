"""V-JEPA 2 video encoder (a ViT over tubelets) with official constructor arguments and parameter names."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vjepa2_ac.layers import Block, _linspace, init_vit_weights, rescale_blocks
from vjepa2_ac.pos_embed import sincos_3d
from vjepa2_ac.rope import encoder_rope_tables

__all__ = ["PatchEmbed", "PatchEmbed3D", "VisionTransformer", "build_encoder", "compute_dtype"]


def _pair(x: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    x = tuple(int(v) for v in x)
    if len(x) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width), got {x}")
    return x


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """dtype that linear layers produce for input ``x`` (the autocast dtype when autocast is on)."""
    dev = x.device.type
    try:
        if torch.is_autocast_enabled(dev):
            return torch.get_autocast_dtype(dev)
    except TypeError:  # torch < 2.4: no device-type argument
        if dev == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        if dev == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
    return x.dtype


class PatchEmbed(nn.Module):
    """2-D patch embedding for image models (``num_frames == 1``): ``[B, C, H, W] -> [B, Hp*Wp, D]``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: ``[B, C, T, H, W] -> [B, (T/k)*Hp*Wp, D]`` (t-major, then row, then column)."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """The V-JEPA 2 encoder. Call as ``encoder(video[B, C, T, H, W], masks=None) -> tokens[B, N, D]``.

    Accepts the official constructor keyword names. ``masks`` are indices of the tokens to KEEP: a
    ``[B, K]`` int tensor or a list of them (each list entry yields its own copy of the batch, concatenated
    along the batch dim, as officially). With ``out_layers`` set, returns a list of normed outputs of those
    blocks instead. Non-square inputs and any number of frames (a multiple of the tubelet size) work with
    RoPE; with the sin-cos embedding, other grids interpolate the fixed table.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        num_frames: int = 1,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        out_layers: Sequence[int] | None = None,
        uniform_power: bool = False,
        use_silu: bool = False,
        wide_silu: bool = True,
        use_sdpa: bool = True,
        use_activation_checkpointing: bool = False,
        use_rope: bool = False,
        handle_nonsquare_inputs: bool = True,
    ) -> None:
        # Resolved constructor arguments, saved in checkpoints so the model can be rebuilt.
        config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        self.config = config
        if use_silu:
            raise ValueError("use_silu=True (SwiGLU MLP) is not supported: V-JEPA 2 models use GELU MLPs")
        if not use_sdpa:
            raise ValueError(
                "use_sdpa=False is not supported: attention always uses scaled_dot_product_attention"
            )
        self.img_size = _pair(img_size, "img_size")
        self.patch_size = int(patch_size)
        self.num_frames = int(num_frames)
        self.tubelet_size = int(tubelet_size)
        self.embed_dim = self.num_features = int(embed_dim)
        self.num_heads = int(num_heads)
        self.use_rope = bool(use_rope)
        self.uniform_power = bool(uniform_power)
        self.handle_nonsquare_inputs = bool(handle_nonsquare_inputs)
        self.use_activation_checkpointing = bool(use_activation_checkpointing)
        self.out_layers = list(out_layers) if out_layers is not None else None
        self.is_video = self.num_frames > 1
        for name, v in (("patch_size", self.patch_size), ("tubelet_size", self.tubelet_size)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if any(s % self.patch_size for s in self.img_size):
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size={self.patch_size}")
        if self.is_video and self.num_frames % self.tubelet_size:
            raise ValueError(f"num_frames={num_frames} must be a multiple of tubelet_size={tubelet_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if use_rope and embed_dim // num_heads < 6:
            raise ValueError(f"RoPE needs a head dim >= 6, got embed_dim/num_heads={embed_dim // num_heads}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        self.grid_depth = self.num_frames // self.tubelet_size if self.is_video else 1

        if self.is_video:
            self.patch_embed = PatchEmbed3D(self.patch_size, self.tubelet_size, in_chans, self.embed_dim)
        else:
            self.patch_embed = PatchEmbed(self.patch_size, in_chans, self.embed_dim)
        if self.use_rope:
            self.pos_embed = None
        else:
            # A Parameter (frozen), not a buffer, so that it is named ``pos_embed`` in state dicts like the
            # official checkpoints.
            n = self.grid_depth * self.grid_size[0] * self.grid_size[1]
            table = sincos_3d(
                self.embed_dim, self.grid_depth, *self.grid_size, uniform_power=self.uniform_power
            )
            self.pos_embed = nn.Parameter(table.view(1, n, self.embed_dim), requires_grad=False)

        dpr = _linspace(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            Block(
                self.embed_dim,
                self.num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[i],
                norm_eps=norm_eps,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(self.embed_dim, eps=norm_eps)
        self.apply(lambda m: init_vit_weights(m, init_std))
        rescale_blocks(self.blocks)

    # -- positions ---------------------------------------------------------------------------------
    def _grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        if self.is_video:
            if x.ndim != 5:
                raise ValueError(f"video encoder expects [B, C, T, H, W], got shape {tuple(x.shape)}")
            t, h, w = x.shape[2:]
            if t % self.tubelet_size:
                raise ValueError(
                    f"number of frames {t} is not a multiple of tubelet_size={self.tubelet_size}"
                )
            t = t // self.tubelet_size
        else:
            if x.ndim != 4:
                raise ValueError(
                    f"image encoder (num_frames=1) expects [B, C, H, W], got shape {tuple(x.shape)}"
                )
            t, (h, w) = 1, x.shape[2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input size {h}x{w} is not a multiple of patch_size={self.patch_size}")
        hp, wp = h // self.patch_size, w // self.patch_size
        if not self.handle_nonsquare_inputs:
            hp, wp = self.grid_size
        return t, hp, wp

    def _pos_embed_for(self, t: int, h: int, w: int) -> torch.Tensor:
        pe = self.pos_embed  # [1, N0, D]
        t0, (h0, w0) = self.grid_depth, self.grid_size
        if (t, h, w) == (t0, h0, w0):
            return pe
        if (h, w) == (h0, w0) and t < t0:
            return pe[:, : t * h * w]
        grid = pe.reshape(1, t0, h0, w0, -1).permute(0, 4, 1, 2, 3)
        grid = F.interpolate(grid, size=(t, h, w), mode="trilinear", align_corners=False)
        return grid.permute(0, 2, 3, 4, 1).reshape(1, t * h * w, -1)

    # -- forward -----------------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, masks: torch.Tensor | list[torch.Tensor] | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """``x[B, C, T, H, W]`` (``[B, C, H, W]`` for image models) -> ``tokens[B', N or K, D]``."""
        if masks is not None and not isinstance(masks, (list, tuple)):
            masks = [masks]
        t, hp, wp = self._grid(x)
        x = self.patch_embed(x)  # [B, N, D]
        n = x.shape[1]
        if self.pos_embed is not None:
            x = x + self._pos_embed_for(t, hp, wp).to(x.dtype)
        ids = None
        if masks is not None:
            masks = [m.to(device=x.device, dtype=torch.long) for m in masks]
            for m in masks:
                if m.ndim != 2 or m.shape[0] != x.shape[0]:
                    raise ValueError(f"each mask must be [B={x.shape[0]}, K] indices, got {tuple(m.shape)}")
                if m.numel() and (int(m.min()) < 0 or int(m.max()) >= n):
                    raise ValueError(f"mask indices must lie in [0, {n}) (tokens of this input)")
            if len({m.shape[1] for m in masks}) > 1:
                raise ValueError(
                    f"masks in a list need the same number of kept tokens, got {[m.shape[1] for m in masks]}"
                )
            ids = torch.cat(masks, dim=0)  # [B*len(masks), K]
            x = torch.cat([torch.gather(x, 1, m[..., None].expand(-1, -1, x.shape[-1])) for m in masks], 0)
        rope = None
        if self.use_rope:
            if t * hp * wp != n:
                raise ValueError(
                    f"RoPE grid {t}x{hp}x{wp} does not match {n} tokens (handle_nonsquare_inputs?)"
                )
            cos, sin = encoder_rope_tables(
                t, hp, wp, self.embed_dim // self.num_heads, dtype=compute_dtype(x), device=x.device
            )
            if ids is not None:
                cos, sin = cos[ids].unsqueeze(1), sin[ids].unsqueeze(1)  # [B', 1, K, hd]
            rope = (cos, sin)
        outs = []
        for i, blk in enumerate(self.blocks):
            if self.use_activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, rope, use_reentrant=False)
            else:
                x = blk(x, rope)
            if self.out_layers is not None and i in self.out_layers:
                outs.append(self.norm(x))
        if self.out_layers is not None:
            return outs
        return self.norm(x)


_IGNORED_OFFICIAL_KWARGS = {"norm_layer", "use_SiLU", "wide_SiLU", "mpl_ratio"}


def build_encoder(**kwargs) -> VisionTransformer:
    """Builds the encoder from the official constructor keyword names (see :class:`VisionTransformer`).

    ``norm_layer`` and the official factories' misspelt keywords (``use_SiLU``, ``wide_SiLU``,
    ``mpl_ratio``, all silently ignored by the official class) are accepted and ignored with a warning;
    any other unknown keyword is an error. The resolved kwargs are ``encoder.config`` (saved in checkpoints).
    """
    ignored = sorted(k for k in kwargs if k in _IGNORED_OFFICIAL_KWARGS)
    if ignored:
        warnings.warn(f"build_encoder ignores official keyword(s) {ignored}", stacklevel=2)
    clean = {k: v for k, v in kwargs.items() if k not in _IGNORED_OFFICIAL_KWARGS}
    try:
        model = VisionTransformer(**clean)
    except TypeError as e:
        raise TypeError(f"build_encoder: {e}") from None
    return model
