"""Stage 2 (AC-predictor training) on tiny synthetic episodes written in the raw DROID layout."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import TINY_TRAIN_AC, one_thread, read_metrics  # noqa: F401 (one_thread is a fixture)

from vjepa2_ac.training.config import TrainACConfig, load_config
from vjepa2_ac.training.synthetic import write_blob_episodes
from vjepa2_ac.training.train_ac import build_models, train

TINY = TINY_TRAIN_AC


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blob")
    write_blob_episodes(root, num_episodes=6, steps=12, image_size=32, seed=0, max_move=0.05)
    return root


def tiny_cfg(data: Path, *overrides: str) -> TrainACConfig:
    return load_config(TrainACConfig, TINY, [f"data.paths=['{data}']", *overrides])


def test_loss_goes_down(episodes, tmp_path):
    # Frozen-encoder embeddings cached once (the encoder is frozen, so the targets are the same).
    cfg = tiny_cfg(episodes, "optim.total_steps=16", "optim.anneal_steps=2", "data.cache_embeddings=true")
    summary = train(cfg, tmp_path)
    assert summary["finished"] and summary["steps"] == 16
    losses = [float(r["loss"]) for r in read_metrics(tmp_path)]
    assert len(losses) == 16
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    rows = read_metrics(tmp_path)
    assert float(rows[-1]["emb_std"]) > 0.05  # the targets have not collapsed


def test_resume_after_kill_is_bit_for_bit(episodes, tmp_path):
    cfg = tiny_cfg(episodes)
    full, killed = tmp_path / "full", tmp_path / "killed"
    train(cfg, full)
    # "Kill" after step 3: the last checkpoint on disk is the one of step 2.
    assert not train(cfg, killed, stop_after_steps=3)["finished"]
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["step"] == 2
    assert train(cfg, killed, resume=True)["finished"]
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k, v in a["model"]["predictor"].items():
        assert torch.equal(v, b["model"]["predictor"][k]), k
    for k, v in a["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], b["optimizer"]["state"][k]["exp_avg_sq"])
    assert read_metrics(full) == [
        {**r, "clips_per_s": r2["clips_per_s"]} for r, r2 in zip(read_metrics(killed), read_metrics(full))
    ]
    assert len(read_metrics(killed)) == 4


def test_resume_from_another_architecture_fails_clearly(episodes, tmp_path):
    train(tiny_cfg(episodes, "optim.total_steps=2", "optim.warmup_steps=0", "optim.anneal_steps=0"), tmp_path)
    other = tiny_cfg(episodes, "model.predictor.depth=2")
    with pytest.raises(FileExistsError, match=r"other settings \(config.model.predictor.depth: 1 -> 2"):
        train(other, tmp_path, resume=True)
    (tmp_path / "run_settings.json").unlink()  # a run folder written before settings were stored
    with pytest.raises(ValueError, match="another architecture.*predictor.depth"):
        train(other, tmp_path, resume=True)


def test_empty_dataset_fails_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no episode"):
        train(tiny_cfg(tmp_path / "empty"), tmp_path / "run")


def test_cached_pooled_residual_variant(episodes, tmp_path):
    cfg = tiny_cfg(
        episodes,
        "data.cache_embeddings=true",
        "data.cache_passes=2",
        "model.token_pool=2",
        "model.residual=true",
        "optim.total_steps=4",
        "optim.anneal_steps=0",
    )
    train(cfg, tmp_path)
    cache = torch.load(tmp_path / "embedding_cache.pt", weights_only=True)["tensors"]
    assert cache["z"].shape == (12, 3, 4, 32)  # 6 episodes x 2 passes, 3 steps, 2x2 pooled tokens
    # The zero-initialised residual head starts at "copy the previous step": first TF loss = copy baseline.
    z = cache["z"]
    first = read_metrics(tmp_path)[0]
    copy_l1 = (z[:, 1:] - z[:, :-1]).abs().mean().item()
    assert 0.5 * copy_l1 < float(first["tf_loss"]) < 1.5 * copy_l1
    wm = torch.load(tmp_path / "world_model.pt", weights_only=True)
    assert wm["config"]["token_pool"] == 2 and wm["config"]["residual"] is True


DDP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch
    import yaml

    from vjepa2_ac.training import runtime
    from vjepa2_ac.training.config import TrainACConfig, load_config
    from vjepa2_ac.training.data import make_loader
    from vjepa2_ac.training.objectives import ACObjective, encode_clips
    from vjepa2_ac.training.train_ac import build_data, build_models


    def grads(cfg, info, out):
        runtime.seed_everything(cfg.run.seed)
        encoder, predictor = build_models(cfg)
        objective = ACObjective(predictor, cfg.loss.auto_steps)
        model = torch.nn.parallel.DistributedDataParallel(objective) if info.distributed else objective
        data, _ = build_data(cfg, encoder, Path(out), info)
        batch = next(make_loader(data, cfg.data, cfg.run.seed, info.rank, info.world_size, 0))
        z = encode_clips(encoder, batch["video"], tubelet=2, alignment="subsample")
        loss = model(z, batch["actions"], batch["states"])[0]
        loss.backward()
        return {k: p.grad.clone() for k, p in predictor.named_parameters() if p.grad is not None}


    if __name__ == "__main__":
        cfg = load_config(TrainACConfig, yaml.safe_load(open(sys.argv[1])))
        info = runtime.init_distributed("cpu")
        g = grads(cfg, info, sys.argv[2])
        if info.rank == 0:
            torch.save(g, Path(sys.argv[2]) / "grads.pt")
        runtime.cleanup_distributed()
    """
)


def test_two_process_torchrun_gradient_matches_single_process(episodes, tmp_path):
    script = tmp_path / "ddp_grads.py"
    script.write_text(DDP_SCRIPT)
    cfg = tiny_cfg(episodes, "data.batch_size=2")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(__import__("dataclasses").asdict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path / "cfg.yaml"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(tmp_path / "grads.pt", weights_only=True)
    # Single process, the same global batch of 4 clips (the two ranks' halves).
    spec = importlib.util.spec_from_file_location("ddp_grads", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from vjepa2_ac.training.runtime import DistInfo

    single = mod.grads(tiny_cfg(episodes, "data.batch_size=4"), DistInfo(), tmp_path)
    assert set(ddp) == set(single) and len(single) > 10
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-6, msg=k)


def test_cli_train_smoke(episodes, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    cmd = [
        "vjepa2-ac",
        "train",
        "--config",
        str(cfg_path),
        "--data",
        str(episodes),
        "--out",
        str(out),
        "--steps",
        "3",
        "--set",
        "run.checkpoint_every=1",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("checkpoint.pt", "config.yaml", "metrics.csv", "world_model.pt"):
        assert (out / name).is_file(), name
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["total_steps"] == 3
    assert len(read_metrics(out)) == 3
    from vjepa2_ac import WorldModel

    wm = WorldModel.from_checkpoint(out / "world_model.pt")
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert torch.equal(wm.predictor.predictor_proj.weight, ck["model"]["predictor"]["predictor_proj.weight"])


def test_cli_bad_config_fails_before_work_naming_the_key(tmp_path, capsys):
    from vjepa2_ac.experiments.cli import main

    code = main(["train", "--out", str(tmp_path / "run"), "--set", "model.encoder.num_heads=3"])
    assert code == 3 and "model.encoder.embed_dim" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("alignment", ["subsample", "duplicate"])
def test_training_targets_match_world_model_encode(alignment):
    from vjepa2_ac import WorldModel, build_encoder, build_predictor
    from vjepa2_ac.training.objectives import encode_clips

    cfg = load_config(TrainACConfig, TINY, [f"model.alignment={alignment}", "model.predictor.max_steps=8"])
    torch.manual_seed(0)
    enc = build_encoder(**cfg.model.encoder.kwargs())
    from vjepa2_ac.training.train_ac import predictor_kwargs

    wm = WorldModel(enc, build_predictor(**predictor_kwargs(cfg)), alignment=alignment).eval()
    video = torch.randn(2, 3, 6, 32, 32)
    z = encode_clips(enc, video, tubelet=2, alignment=alignment)
    with torch.no_grad():
        torch.testing.assert_close(z, wm.encode(video), rtol=1e-5, atol=1e-5)
    assert z.shape[1] == (3 if alignment == "subsample" else 6)


def test_init_from_official_checkpoint_layout(tmp_path):
    """Fine-tuning starts from an official-layout file (module./backbone. key prefixes) on a local path."""
    cfg = load_config(TrainACConfig, TINY)
    torch.manual_seed(1)
    src_enc, src_pred = build_models(cfg)
    official = {
        "target_encoder": {f"module.backbone.{k}": v for k, v in src_enc.state_dict().items()},
        "encoder": {f"module.backbone.{k}": v for k, v in src_enc.state_dict().items()},
        "predictor": {f"module.{k}": v for k, v in src_pred.state_dict().items()},
        "epoch": 3,
    }
    torch.save(official, tmp_path / "official.pt")
    torch.manual_seed(2)
    enc, pred = build_models(
        load_config(TrainACConfig, TINY, [f"init.official_checkpoint={tmp_path / 'official.pt'}"])
    )
    for a, b in ((enc, src_enc), (pred, src_pred)):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert not any(p.requires_grad for p in enc.parameters())


def test_max_minutes_budget_stops_with_checkpoint_then_resumes(episodes, tmp_path):
    cfg = tiny_cfg(episodes, "run.max_minutes=1e-6", "data.cache_embeddings=true")
    summary = train(cfg, tmp_path)
    assert not summary["finished"] and summary["steps"] == 1
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 1
    done = train(tiny_cfg(episodes, "data.cache_embeddings=true"), tmp_path, resume=True)
    assert done["finished"] and len(read_metrics(tmp_path)) == 4
