"""The product's chain as a user runs it: collect -> pretrain -> train -> plan, each a subprocess.

Tiny budgets (a few episodes and optimisation steps); what is checked is that the stages connect: data
written by `collect` is read through the DROID loader, the encoder of `pretrain` (label-free) feeds
`train`, and `plan` runs the checkpoint `train` writes, reporting what it was trained on.
"""

from __future__ import annotations

import json

import torch
from cli_helpers import run_cli

_cli = run_cli


def test_collect_pretrain_train_plan(tmp_path):
    data = tmp_path / "data"
    _cli("collect", "--task", "push", "--push-start", "aligned", "--episodes", "4", "--max-steps", "10",
         "--out", str(data))  # fmt: skip
    small = ["--steps", "3", "--batch-size", "4", "--set", "optim.warmup_steps=1", "--threads", "1"]
    _cli("pretrain", "--config", "sim_encoder", "--data", str(data), "--out", str(tmp_path / "enc"), *small)
    encoder = tmp_path / "enc" / "encoder.pt"
    assert torch.load(encoder, weights_only=True)["training_signals"] == ["frames", "ee_state"]
    _cli(
        "train", "--config", "sim_world_model", "--data", str(data), "--encoder-checkpoint", str(encoder),
        "--out", str(tmp_path / "wm"), *small, "--set", "data.cache_passes=8",
    )  # fmt: skip
    ckpt = tmp_path / "wm" / "world_model.pt"
    config = torch.load(ckpt, weights_only=True)["config"]
    assert config["alignment"] == "subsample" and config["encoder"]["tubelet_size"] == 2
    assert config["metadata"]["training_signals"] == ["frames", "ee_state", "actions"]
    assert config["probe"]["dims"] == [0, 1, 2] and config["metadata"]["energy_per_metre"] > 0
    out = tmp_path / "plan"
    proc = _cli(
        "plan", "--checkpoint", str(ckpt), "--task", "push", "--episodes", "1", "--max-steps", "2",
        "--samples", "6", "--topk", "2", "--iterations", "1", "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert "world model trained on: frames, ee_state, actions" in proc.stdout
    rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
    assert rec["steps"] == 2 and rec["control_steps"] == 4
