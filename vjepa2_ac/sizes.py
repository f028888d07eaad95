"""Model size registry and analytic parameter counts.

``large``/``huge``/``giant``/``gigantic`` are the official V-JEPA 2 factories (``vit_large``, ``vit_huge``,
``vit_giant_xformers`` (22 heads, MLP 6144), ``vit_gigantic_xformers`` (MLP 6656, the ratio stays 4 in the
official code)); ``tiny``/``small``/``base`` are the usual ViT-Ti/S/B shapes for CPU work.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MODEL_SIZES",
    "PREDICTOR_SIZES",
    "encoder_kwargs",
    "predictor_kwargs",
    "count_encoder_params",
    "count_predictor_params",
]

MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    "small": dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    "base": dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0),
    "giant": dict(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
    "gigantic": dict(embed_dim=1664, depth=48, num_heads=26, mlp_ratio=4.0),
}

# Defaults of every registry encoder (as the official hub models: RoPE, 16-px patches, 2-frame tubelets).
_ENCODER_DEFAULTS: dict[str, Any] = dict(
    img_size=256, patch_size=16, num_frames=64, tubelet_size=2, use_rope=True, qkv_bias=True
)

# AC predictor shapes. ``vitg`` is the released V-JEPA 2-AC predictor (on the ViT-g encoder).
PREDICTOR_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=192, predictor_embed_dim=192, depth=6, num_heads=6),
    "small": dict(embed_dim=384, predictor_embed_dim=384, depth=12, num_heads=6),
    "vitg": dict(embed_dim=1408, predictor_embed_dim=1024, depth=24, num_heads=16),
}
_PREDICTOR_DEFAULTS: dict[str, Any] = dict(
    img_size=256, patch_size=16, num_frames=64, tubelet_size=2, use_rope=True, mlp_ratio=4.0, qkv_bias=True
)


def encoder_kwargs(size: str, **overrides) -> dict[str, Any]:
    """``build_encoder`` kwargs for a registry size, with ``overrides`` applied on top."""
    if size not in MODEL_SIZES:
        raise KeyError(f"unknown model size {size!r}; known: {', '.join(MODEL_SIZES)}")
    return {**_ENCODER_DEFAULTS, **MODEL_SIZES[size], **overrides}


def predictor_kwargs(size: str, **overrides) -> dict[str, Any]:
    """``build_predictor`` kwargs for a predictor registry size, with ``overrides`` applied on top."""
    if size not in PREDICTOR_SIZES:
        raise KeyError(f"unknown predictor size {size!r}; known: {', '.join(PREDICTOR_SIZES)}")
    return {**_PREDICTOR_DEFAULTS, **PREDICTOR_SIZES[size], **overrides}


def _pair(x) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else tuple(x)


def _blocks(dim: int, depth: int, mlp_ratio: float, qkv_bias: bool) -> int:
    hidden = int(dim * mlp_ratio)
    per_block = (
        2 * dim  # norm1
        + 3 * dim * dim
        + (3 * dim if qkv_bias else 0)  # qkv
        + dim * dim
        + dim  # proj
        + 2 * dim  # norm2
        + dim * hidden
        + hidden  # fc1
        + hidden * dim
        + dim  # fc2
    )
    return depth * per_block


def count_encoder_params(
    *,
    embed_dim: int = 768,
    depth: int = 12,
    num_heads: int = 12,
    mlp_ratio: float = 4.0,
    patch_size: int = 16,
    tubelet_size: int = 2,
    num_frames: int = 1,
    in_chans: int = 3,
    img_size: int | tuple[int, int] = 224,
    use_rope: bool = False,
    qkv_bias: bool = True,
    **_ignored,
) -> int:
    """Number of parameters of ``build_encoder(**same kwargs)``, computed without instantiating it.

    Includes the frozen sin-cos ``pos_embed`` (a parameter, as officially) when ``use_rope=False``.
    """
    del num_heads  # heads do not change the parameter count
    is_video = num_frames > 1
    kernel = (tubelet_size if is_video else 1) * patch_size * patch_size
    n = embed_dim * in_chans * kernel + embed_dim  # patch_embed.proj
    if not use_rope:
        h, w = _pair(img_size)
        steps = num_frames // tubelet_size if is_video else 1
        n += steps * (h // patch_size) * (w // patch_size) * embed_dim
    n += _blocks(embed_dim, depth, mlp_ratio, qkv_bias)
    n += 2 * embed_dim  # norm
    return n


def count_predictor_params(
    *,
    embed_dim: int = 768,
    predictor_embed_dim: int = 1024,
    depth: int = 24,
    num_heads: int = 16,
    mlp_ratio: float = 4.0,
    action_embed_dim: int = 7,
    qkv_bias: bool = True,
    **_ignored,
) -> int:
    """Number of parameters of ``build_predictor(**same kwargs)``, computed without instantiating it."""
    del num_heads
    dp = predictor_embed_dim
    n = embed_dim * dp + dp  # predictor_embed
    n += 2 * (action_embed_dim * dp + dp)  # action_encoder, state_encoder
    n += (action_embed_dim - 1) * dp + dp  # extrinsics_encoder (always present)
    n += _blocks(dp, depth, mlp_ratio, qkv_bias)
    n += 2 * dp  # predictor_norm
    n += dp * embed_dim + embed_dim  # predictor_proj
    return n
