"""Video transforms: the official deterministic DROID crop, random-resized-crop, ImageNet normalisation.

The official DROID pipeline asks for a random-resized-crop with scale 1.777 (> 1), which can never be
satisfied, so every sample falls back to a *centred crop of full height with aspect 1.35:1* (for 16:9
frames), resized (squeezed) to the square model size with bilinear interpolation. :class:`VideoTransform`
with ``crop="droid"`` computes that crop directly; ``crop="random"`` draws a real random-resized-crop
(one box per clip, the same for every frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "center_crop_box", "random_crop_box", "VideoTransform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def center_crop_box(
    height: int, width: int, ratio: tuple[float, float] = (0.75, 1.35)
) -> tuple[int, int, int, int]:
    """Centred crop whose aspect (w/h) is clamped into ``ratio``: ``(top, left, h, w)``.

    Frames wider than ``ratio[1]`` keep full height; taller than ``ratio[0]`` keep full width.
    """
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> tuple[int, int, int, int]:
    """Random-resized-crop box ``(top, left, h, w)``: area fraction in ``scale``, log-uniform aspect in
    ``ratio``; after ``tries`` failures, :func:`center_crop_box`."""
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    return center_crop_box(height, width, ratio)


@dataclass
class VideoTransform:
    """uint8 ``[T, H, W, 3]`` frames -> float32 ``[3, T, size, size]`` (ImageNet-normalised).

    Attributes:
        size: output height and width.
        crop: ``"droid"`` (official deterministic centred 1.35:1 crop), ``"random"`` (random-resized-crop
            with ``scale``/``ratio``) or ``"none"`` (resize the whole frame).
        scale: area-fraction range for ``"random"``.
        ratio: aspect range; also bounds the ``"droid"`` crop.
        normalize: apply ImageNet mean/std (else values are in [0, 1]).
    """

    size: int = 256
    crop: str = "droid"
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (0.75, 1.35)
    normalize: bool = True

    def __post_init__(self):
        if self.crop not in ("droid", "random", "none"):
            raise ValueError(f"crop: expected 'droid', 'random' or 'none', got {self.crop!r}")
        if int(self.size) < 1:
            raise ValueError(f"size: expected >= 1, got {self.size}")
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"scale: expected 0 < min <= max, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"ratio: expected 0 < min <= max, got {self.ratio}")

    def __call__(
        self, frames: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"frames: expected uint8 [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
        _, h, w, _ = x.shape
        if self.crop == "droid":
            top, left, ch, cw = center_crop_box(h, w, self.ratio)
        elif self.crop == "random":
            top, left, ch, cw = random_crop_box(h, w, self.scale, self.ratio, generator)
        else:
            top, left, ch, cw = 0, 0, h, w
        x = x[:, top : top + ch, left : left + cw].permute(0, 3, 1, 2).float()  # [T, 3, ch, cw]
        if (ch, cw) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x / 255.0
        if self.normalize:
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x.permute(1, 0, 2, 3).contiguous()  # [3, T, size, size]
