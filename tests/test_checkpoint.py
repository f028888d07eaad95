"""Checkpoints: our format (config + weights, atomic), official files (entries, prefixes, strict errors)."""

from __future__ import annotations

import pytest
import torch

from vjepa2_ac import (
    CheckpointError,
    WorldModel,
    build_encoder,
    build_predictor,
    load_checkpoint,
    load_official_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def fixtures(parity_dir):
    enc = torch.load(parity_dir / "encoder_tiny.pt", weights_only=True)
    pred = torch.load(parity_dir / "ac_predictor_tiny.pt", weights_only=True)
    return enc, pred


def _small_wm():
    torch.manual_seed(0)
    enc = build_encoder(
        img_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        embed_dim=48,
        depth=1,
        num_heads=4,
        use_rope=True,
    )
    pred = build_predictor(
        img_size=32,
        patch_size=8,
        num_frames=8,
        tubelet_size=2,
        embed_dim=48,
        predictor_embed_dim=32,
        depth=1,
        num_heads=4,
    )
    return WorldModel(enc, pred, alignment="duplicate").eval()


def test_world_model_roundtrip(tmp_path):
    wm = _small_wm()
    path = wm.save(tmp_path / "sub" / "wm.pt", step=7)
    assert sorted(p.name for p in path.parent.iterdir()) == ["wm.pt"]  # no temporary files left
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["config"]["alignment"] == "duplicate"
    back = WorldModel.from_checkpoint(path).eval()
    assert back.alignment == "duplicate" and back.config == wm.config
    for k, v in wm.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    video = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(wm.encode(video), back.encode(video))


def test_save_checkpoint_state_dict_and_overwrite(tmp_path):
    path = tmp_path / "x.pt"
    save_checkpoint(path, {"w": torch.ones(2)}, {"a": 1})
    save_checkpoint(path, {"w": torch.zeros(2)}, {"a": 2})
    ckpt = load_checkpoint(path)
    assert ckpt["config"] == {"a": 2} and torch.equal(ckpt["state_dict"]["w"], torch.zeros(2))
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, {}, {}, format_version=1)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"encoder": {}}, tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="load_official_checkpoint"):
        load_checkpoint(tmp_path / "official.pt")


def _official_file(path, fixtures, prefix_enc="module.backbone.", prefix_pred="module.", extra_enc=None):
    enc_fx, pred_fx = fixtures
    enc_sd = {prefix_enc + k: v for k, v in enc_fx["state_dict"].items()}
    if extra_enc:
        enc_sd.update(extra_enc)
    torch.save(
        {
            "encoder": enc_sd,
            "target_encoder": enc_sd,
            "predictor": {prefix_pred + k: v for k, v in pred_fx["state_dict"].items()},
            "epoch": 3,
        },
        path,
    )


def test_official_file_loads_strictly(tmp_path, fixtures):
    enc_fx, pred_fx = fixtures
    path = tmp_path / "vjepa2-ac-tiny.pt"
    _official_file(path, fixtures, extra_enc={"module.backbone.pos_embed": torch.zeros(1, 128, 96)})
    enc, pred = build_encoder(**enc_fx["kwargs"]).eval(), build_predictor(**pred_fx["kwargs"]).eval()
    loaded = load_official_checkpoint(path, encoder=enc, predictor=pred)
    assert set(loaded) == {"encoder", "predictor"}
    with torch.no_grad():
        i = enc_fx["inputs"]
        assert (enc(i["video"]) - enc_fx["outputs"]["tokens"]).abs().max() < 1e-4
        i = pred_fx["inputs"]
        assert (pred(i["x"], i["actions"], i["states"]) - pred_fx["outputs"]["out"]).abs().max() < 1e-4


def test_official_bare_state_dict(tmp_path, fixtures):
    _, pred_fx = fixtures
    path = tmp_path / "pred.pt"
    torch.save(pred_fx["state_dict"], path)
    pred = build_predictor(**pred_fx["kwargs"])
    load_official_checkpoint(path, predictor=pred)
    assert torch.equal(
        pred.state_dict()["predictor_proj.weight"], pred_fx["state_dict"]["predictor_proj.weight"]
    )


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path, fixtures):
    enc_fx, pred_fx = fixtures
    sd = dict(pred_fx["state_dict"])
    sd.pop("predictor_norm.bias")
    sd["bogus.weight"] = torch.zeros(1)
    sd["predictor_proj.weight"] = torch.zeros(5, 5)
    path = tmp_path / "bad.pt"
    torch.save({"predictor": sd}, path)
    pred = build_predictor(**pred_fx["kwargs"])
    with pytest.raises(CheckpointError) as err:
        load_official_checkpoint(path, predictor=pred)
    msg = str(err.value)
    assert "missing keys (1): predictor_norm.bias" in msg
    assert "unexpected keys (1): bogus.weight" in msg
    assert "predictor_proj.weight: checkpoint (5, 5) vs model (96, 64)" in msg
    with pytest.raises(CheckpointError, match="no 'predictor' entry"):
        torch.save({"encoder": enc_fx["state_dict"]}, path)
        load_official_checkpoint(path, predictor=pred)
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(tmp_path / "missing.pt", predictor=pred)


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "vjepa2_ac", "config": {}, "state_dict": {}, "obj": _Custom()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused: the checkpoint holds Python objects"):
        load_checkpoint(path)


class _Custom:
    pass
