"""``train`` faults: divergence, run folders that hold another run, stale embedding caches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from fault_helpers import locked_by_another_process
from train_helpers import TINY_TRAIN_AC, one_thread  # noqa: F401 (one_thread is a fixture)

from vjepa2_ac.atomic import default_mode
from vjepa2_ac.experiments.cli import main
from vjepa2_ac.training.synthetic import write_blob_episodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("faults_train")
    data = root / "data"
    write_blob_episodes(data, num_episodes=4, steps=12, image_size=32, seed=0, max_move=0.05)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_TRAIN_AC))
    return data, config


def _train(setup, out: Path, *extra: str) -> int:
    data, config = setup
    return main(["train", "--config", str(config), "--data", str(data), "--out", str(out), *extra])


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    lines = [ln for ln in lines if ln.startswith("vjepa2-ac ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_divergence_stops_at_the_first_non_finite_loss(setup, tmp_path, capsys):
    out = tmp_path / "run"
    code = _train(setup, out, "--set", "optim.lr=1e30", "--set", "optim.start_lr=1e30", "--steps", "6")
    assert code == 10
    assert _err(capsys) == (
        "vjepa2-ac train: loss is nan at step 2: training diverged (optim.lr=1e+30, optim.grad_clip=0.0); "
        "stopped, no checkpoint was written"
    )
    assert not (out / "world_model.pt").exists() and not (out / "checkpoint.pt").exists()


def test_a_run_folder_belongs_to_one_run(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(setup, out, "--steps", "2") == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {"world_model.pt", "checkpoint.pt", "metrics.csv", "run_settings.json", ".lock"} <= set(before)
    for name in ("world_model.pt", "checkpoint.pt", "run_settings.json", "config.yaml"):
        assert (out / name).stat().st_mode & 0o777 == default_mode(), name  # 0644 like its neighbours

    assert _train(setup, out, "--steps", "2") == 7  # a second run without --resume
    assert _err(capsys) == (
        f"vjepa2-ac train: --out {out} already holds a run (checkpoint.pt, world_model.pt, metrics.csv); "
        "continue it with --resume or replace it with --overwrite"
    )
    assert _train(setup, out, "--steps", "2", "--resume", "--seed", "5", "--set", "optim.lr=0.01") == 7
    err = _err(capsys)
    assert "holds a run with other settings (config.optim.lr: 0.002 -> 0.01; config.run.seed: 0 -> 5)" in err
    assert _train(setup, out, "--resume", "--overwrite") == 7
    assert "give one" in _err(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched

    # Resources, and the spelling of the data path, may change on resume; --overwrite starts over.
    data, config = setup
    relative = os.path.relpath(data)
    argv = ["train", "--config", str(config), "--data", relative, "--out", str(out), "--steps", "2"]
    assert main([*argv, "--resume", "--threads", "1"]) == 0
    assert _train(setup, out, "--steps", "3", "--overwrite") == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_resume_refuses_replaced_data_and_the_cache_follows_the_data(setup, tmp_path, capsys):
    from vjepa2_ac.training import runtime
    from vjepa2_ac.training.config import TrainACConfig, load_config
    from vjepa2_ac.training.train_ac import build_data, build_models, train

    data = tmp_path / "data"
    write_blob_episodes(data, num_episodes=2, steps=12, image_size=32, seed=1, max_move=0.05)
    cfg = load_config(TrainACConfig, TINY_TRAIN_AC, [f"data.paths=['{data}']", "data.cache_embeddings=true"])
    out = tmp_path / "run"
    train(cfg, out, stop_after_steps=3)  # killed after the checkpoint of step 2
    cache = (out / "embedding_cache.pt").read_bytes()
    encoder, _ = build_models(cfg)
    info = runtime.DistInfo()
    z_old = build_data(cfg, encoder, out, info)[0].tensors["z"]

    shutil.rmtree(data)  # the same folder now holds other episodes
    write_blob_episodes(data, num_episodes=2, steps=12, image_size=32, seed=2, max_move=0.05)
    with pytest.raises(
        FileExistsError,
        match=r"other settings \(data.bytes: \d+ -> \d+; data.sha256: '[0-9a-f]{36}\.\.\. -> ",
    ):
        train(cfg, out, resume=True)
    assert (out / "embedding_cache.pt").read_bytes() == cache
    z_new = build_data(cfg, encoder, out, info)[0].tensors["z"]
    assert z_new.shape == z_old.shape and not torch.equal(z_new, z_old)  # re-encoded, not reused


def test_two_processes_cannot_share_a_run_folder(setup, tmp_path, capsys):
    out = tmp_path / "run"
    with locked_by_another_process(out) as pid:
        assert _train(setup, out) == 8
        assert _err(capsys) == (
            f"vjepa2-ac train: --out {out} is in use by process {pid} (lock file {out}/.lock); "
            "wait for it to finish or use another folder"
        )
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert _train(setup, out, "--steps", "2") == 0  # the lock goes with its process
