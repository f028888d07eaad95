"""Size registry and analytic parameter counts."""

from __future__ import annotations

import pytest
import torch

from vjepa2_ac import (
    MODEL_SIZES,
    build_encoder,
    build_predictor,
    count_encoder_params,
    count_predictor_params,
    encoder_kwargs,
    predictor_kwargs,
)

OFFICIAL = {"large": 303_885_312, "huge": 631_648_000, "giant": 1_012_173_952, "gigantic": 1_598_483_328}


def _numel(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", sorted(OFFICIAL))
def test_official_encoder_counts(size):
    assert count_encoder_params(**encoder_kwargs(size)) == OFFICIAL[size]


def test_official_shapes():
    assert MODEL_SIZES["giant"]["num_heads"] == 22
    assert int(1408 * MODEL_SIZES["giant"]["mlp_ratio"]) == 6144
    assert int(1664 * MODEL_SIZES["gigantic"]["mlp_ratio"]) == 6656
    assert {"tiny", "small", "base", "large", "huge", "giant", "gigantic"} <= set(MODEL_SIZES)


def test_official_predictor_count():
    assert count_predictor_params(**predictor_kwargs("vitg")) == 305_220_992


def test_meta_instantiation_matches_counts():
    with torch.device("meta"):
        enc = build_encoder(**encoder_kwargs("large"))
        pred = build_predictor(**predictor_kwargs("vitg"))
    assert _numel(enc) == OFFICIAL["large"]
    assert _numel(pred) == 305_220_992 and len(pred.state_dict()) == 300


@pytest.mark.parametrize(
    "kw",
    [
        dict(embed_dim=48, depth=2, num_heads=4, img_size=32, patch_size=8, num_frames=4, use_rope=True),
        dict(embed_dim=48, depth=2, num_heads=4, img_size=32, patch_size=8, num_frames=4, use_rope=False),
        dict(
            embed_dim=60, depth=1, num_heads=3, img_size=(32, 48), patch_size=8, num_frames=1, use_rope=False
        ),
        dict(
            embed_dim=44,
            depth=3,
            num_heads=2,
            img_size=16,
            patch_size=4,
            num_frames=6,
            tubelet_size=3,
            mlp_ratio=48 / 11,
            qkv_bias=False,
            use_rope=True,
        ),
    ],
)
def test_encoder_count_equals_instantiated(kw):
    assert count_encoder_params(**kw) == _numel(build_encoder(**kw))


@pytest.mark.parametrize(
    "kw",
    [
        dict(
            embed_dim=48,
            predictor_embed_dim=32,
            depth=2,
            num_heads=4,
            img_size=32,
            patch_size=8,
            num_frames=4,
        ),
        dict(
            embed_dim=48,
            predictor_embed_dim=36,
            depth=1,
            num_heads=6,
            img_size=32,
            patch_size=8,
            num_frames=4,
            use_extrinsics=True,
            mlp_ratio=3.0,
        ),
    ],
)
def test_predictor_count_equals_instantiated(kw):
    assert count_predictor_params(**kw) == _numel(build_predictor(**kw))


def test_registry_kwargs_and_errors():
    kw = encoder_kwargs("tiny", img_size=64, patch_size=8)
    assert kw["embed_dim"] == 192 and kw["img_size"] == 64 and kw["use_rope"]
    with pytest.raises(KeyError, match="unknown model size"):
        encoder_kwargs("enormous")
    with pytest.raises(KeyError, match="unknown predictor size"):
        predictor_kwargs("enormous")


def test_package_exports_are_lazy_and_complete():
    import subprocess
    import sys

    import vjepa2_ac

    assert set(vjepa2_ac.__all__) - {"__version__"} == set(vjepa2_ac._EXPORTS)
    for name in vjepa2_ac._EXPORTS:
        assert getattr(vjepa2_ac, name) is not None
    code = "import sys, vjepa2_ac; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
