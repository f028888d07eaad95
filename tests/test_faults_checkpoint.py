"""Damaged, edited, diverged and malicious checkpoints: refused at load with one line naming the file."""

from __future__ import annotations

import os
import pickle
import resource

import pytest
import torch

from vjepa2_ac import WorldModel, build_encoder, build_predictor
from vjepa2_ac.checkpoint import CheckpointError, content_hash, load_checkpoint, safe_load, save_checkpoint
from vjepa2_ac.experiments.cli import main


def _tiny_wm() -> WorldModel:
    torch.manual_seed(0)
    enc = build_encoder(
        img_size=32, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32, depth=1, num_heads=2
    )
    pred = build_predictor(
        img_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        embed_dim=32,
        predictor_embed_dim=32,
        depth=1,
        num_heads=2,
    )
    return WorldModel(enc, pred)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "world_model.pt"
    wm = _tiny_wm()
    wm.save(path)
    return path, wm


def _rewrite(src, dst, edit) -> None:
    """Edit the raw payload (as a hostile user would) and write it back without a new hash."""
    payload = torch.load(src, weights_only=True)
    edit(payload)
    torch.save(payload, dst)


def test_hash_is_stored_and_independent_of_key_order(saved):
    path, wm = saved
    ckpt = load_checkpoint(path)
    sd = ckpt["state_dict"]
    assert ckpt["sha256"] == content_hash(ckpt["config"], dict(reversed(list(sd.items()))))
    loaded = WorldModel.from_checkpoint(path)
    for k, v in wm.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_flipped_byte_is_refused(saved, tmp_path):
    path, _ = saved
    data = bytearray(path.read_bytes())
    # Find a weight's float32 bytes in the file and flip one bit of its exponent (a large change).
    ckpt = load_checkpoint(path)
    key = next(k for k, v in ckpt["state_dict"].items() if v.dtype == torch.float32 and v.numel() > 100)
    needle = ckpt["state_dict"][key].reshape(-1)[10:14].numpy().tobytes()
    at = data.find(needle)
    assert at > 0
    data[at + 3] ^= 0x08
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"flipped.pt: content hash mismatch") as e:
        WorldModel.from_checkpoint(bad)
    assert "\n" not in str(e.value)


def test_edited_config_with_huge_width_is_refused_before_allocation(saved, tmp_path):
    path, _ = saved
    bad = tmp_path / "huge.pt"

    def edit(p):
        p.pop("sha256")  # as an unhashed (older or foreign) file
        p["config"]["encoder"]["embed_dim"] = 32768
        p["config"]["predictor"]["embed_dim"] = 32768

    _rewrite(path, bad, edit)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(CheckpointError, match=r"(?s)huge.pt.*wrong shapes"):
        WorldModel.from_checkpoint(bad)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500  # the real model would take gigabytes

    def deep(p):
        p.pop("sha256")
        p["config"]["predictor"]["depth"] = 10**7

    _rewrite(path, bad, deep)
    with pytest.raises(CheckpointError, match=r"predictor.depth=10000000 does not fit the \d+ tensors"):
        WorldModel.from_checkpoint(bad)


def test_nan_weights_refused_on_load_and_on_save(saved, tmp_path):
    path, wm = saved
    bad = tmp_path / "nan.pt"

    def edit(p):
        k = next(iter(p["state_dict"]))
        p["state_dict"][k].view(-1)[0] = float("nan")
        p["sha256"] = content_hash(p["config"], p["state_dict"])  # a diverged run's own, consistent file

    _rewrite(path, bad, edit)
    with pytest.raises(CheckpointError, match=r"nan.pt: non-finite \(NaN/inf\) weights in .*\(1 of"):
        WorldModel.from_checkpoint(bad)
    sd = {k: v.clone() for k, v in wm.state_dict().items()}
    next(iter(sd.values())).view(-1)[0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(tmp_path / "never.pt", sd, wm.config)
    assert not (tmp_path / "never.pt").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_and_truncated_files_give_one_line(saved, tmp_path, capsys, recwarn):
    path, _ = saved
    evil = tmp_path / "evil.pt"
    torch.save({"format": "vjepa2_ac", "config": {}, "state_dict": {}, "x": _Evil()}, evil)
    legacy = tmp_path / "legacy.pt"
    with open(legacy, "wb") as f:
        pickle.dump(_Evil(), f)
    for f in (evil, legacy):
        with pytest.raises(CheckpointError) as e:
            safe_load(f)
        assert str(e.value) == (
            f"{f}: refused: the checkpoint holds Python objects other than tensors and plain values "
            "(loading it could run code); only weights files are accepted"
        )
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt: not a readable checkpoint \(truncated or damaged"):
        load_checkpoint(cut)

    # Through the CLI: exit code 5, one line, nothing written.
    out = tmp_path / "run"
    code = main(["train", "--predictor-checkpoint", str(evil), "--data", str(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and len(err) == 1 and err[0].startswith("vjepa2-ac train: ") and "evil.pt" in err[0]
    assert "refused" in err[0] and "weights_only" not in err[0]
    assert not out.exists()


def test_build_checked_refuses_a_bigger_config_than_the_weights_before_allocating():
    from test_plan import tiny_world_model

    from vjepa2_ac.checkpoint import build_checked
    from vjepa2_ac.world_model import WorldModel

    small = tiny_world_model().config
    state = WorldModel.from_config(small).state_dict()
    model = build_checked(lambda: WorldModel.from_config(small), state, "world model")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    huge = {**small, "encoder": {**small["encoder"], "embed_dim": 32768}}
    huge["predictor"] = {**small["predictor"], "embed_dim": 32768, "predictor_embed_dim": 32768}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"(?s)cannot load world model:.*wrong shapes"):
        build_checked(lambda: WorldModel.from_config(huge), state, "world model")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 500
