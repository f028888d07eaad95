"""Video transforms: official DROID crop, random-resized-crop, ImageNet normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa2_ac.datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoTransform,
    center_crop_box,
    random_crop_box,
)


def test_droid_crop_box_is_centred_full_height_135():
    # DROID RLDS 180x320 and raw 720x1280: full height, width round(1.35 h), centred
    assert center_crop_box(180, 320) == (0, 38, 180, 243)
    assert center_crop_box(720, 1280) == (0, 154, 720, 972)
    assert center_crop_box(256, 256) == (0, 0, 256, 256)  # within the ratio range: untouched
    assert center_crop_box(400, 200) == (66, 0, 267, 200)  # tall frames keep full width (ratio 0.75)


def test_droid_transform_matches_manual_pipeline():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 36, 64, 3), generator=g, dtype=torch.uint8)
    out = VideoTransform(size=16)(frames.numpy())
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32
    top, left, h, w = center_crop_box(36, 64)
    x = frames[:, top : top + h, left : left + w].permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, x.permute(1, 0, 2, 3))


def test_normalisation_values_and_no_resize_path():
    frames = np.full((2, 8, 8, 3), 255, np.uint8)
    out = VideoTransform(size=8)(frames)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 0, 0, 0], expected)
    raw = VideoTransform(size=8, normalize=False)(frames)
    assert raw.min() == 1.0 and raw.max() == 1.0


def test_random_resized_crop_boxes_are_valid_and_seeded():
    g = torch.Generator().manual_seed(3)
    boxes = [random_crop_box(180, 320, (0.3, 1.0), (0.75, 1.35), g) for _ in range(50)]
    for top, left, h, w in boxes:
        assert 0 <= top and top + h <= 180 and 0 <= left and left + w <= 320
        assert 0.3 * 180 * 320 * 0.9 <= h * w <= 180 * 320
        assert 0.75 * 0.95 <= w / h <= 1.35 * 1.05
    assert len(set(boxes)) > 40
    g2 = torch.Generator().manual_seed(3)
    assert random_crop_box(180, 320, (0.3, 1.0), (0.75, 1.35), g2) == boxes[0]
    # impossible scale (official 1.777): falls back to the deterministic DROID crop
    assert random_crop_box(180, 320, (1.777, 1.777), (0.75, 1.35), g) == center_crop_box(180, 320)
    # the same box is used for every frame of a clip
    frames = np.repeat(np.arange(48 * 64, dtype=np.uint8).reshape(1, 48, 64, 1) % 251, 3, 0).repeat(3, -1)
    out = VideoTransform(size=16, crop="random")(frames, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[:, 0], out[:, 2])


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"frames: expected uint8 \[T, H, W, 3\]"):
        VideoTransform()(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="crop"):
        VideoTransform(crop="zoom")
