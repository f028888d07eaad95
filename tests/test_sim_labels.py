"""The simulator record beside collected episodes (``sim.npz``) and the ``sim_labels`` encoder ablation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from train_helpers import one_thread, read_metrics  # noqa: F401 (one_thread is a fixture)

from vjepa2_ac.datasets import DataError, RawDroidDataset, list_raw_episodes
from vjepa2_ac.datasets.sim_labels import SimLabelClips, read_sim_array, sim_signal
from vjepa2_ac.envs.collect import CollectConfig, collect
from vjepa2_ac.state_probe import StateProbe
from vjepa2_ac.training.config import ConfigError, PretrainConfig, load_config
from vjepa2_ac.training.objectives import StateGeometryLoss
from vjepa2_ac.training.pretrain import pretrain

SIZE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two push episodes (with block_pos) and one reach episode (without), 9 frames each."""
    root = tmp_path_factory.mktemp("sim_labels")
    for task, n in (("push", 2), ("reach", 1)):
        cfg = CollectConfig(task=task, policy="expert", image_size=SIZE, max_steps=8, seed=3)
        collect(cfg, root / task, n)
    return root


def clips(roots):
    episodes = [e for root in roots for e in list_raw_episodes(root)]
    return RawDroidDataset(episodes, frames_per_clip=4, fps=15.0, image_size=SIZE, crop="none")


def test_labels_line_up_with_the_states_and_reach_rows_are_nan(data):
    ds = SimLabelClips(clips([data / "push", data / "reach"]), ["block_pos"])
    assert ds.available == {"block_pos": 2} and ds.width == 3 and len(ds) == 3
    for i, ep in enumerate(ds.episodes):
        item = ds[i]
        assert item["sim_labels"].shape == (2, 3)  # one row per token step (4 frames, tubelets of 2)
        rows = item["state_indices"][:-1].numpy()
        if "push" in ep.path:
            truth = read_sim_array(ep.path, "block_pos")[rows]
            assert np.allclose(item["sim_labels"].numpy(), truth, atol=1e-6)
        else:
            assert torch.isnan(item["sim_labels"]).all()


def test_missing_records_are_errors_that_name_the_episode(data, tmp_path):
    with pytest.raises(DataError, match="no episode's sim.npz has 'block_pos'"):
        SimLabelClips(clips([data / "reach"]), ["block_pos"])
    with pytest.raises(DataError, match=r"sim.npz has no 'nope'"):
        read_sim_array(data / "push" / "episode_000000", "nope")
    ep = tmp_path / "episode_x"
    shutil.copytree(data / "push" / "episode_000000", ep)
    (ep / "sim.npz").unlink()
    with pytest.raises(DataError, match=r"episode_x: missing sim.npz"):
        SimLabelClips(clips([ep]), ["block_pos"])
    assert sim_signal("block_pos") == "sim_block_position" and sim_signal("contacts") == "sim_contacts"


def test_geometry_loss_decodes_labels_and_masks_missing_rows():
    torch.manual_seed(0)
    geo = StateGeometryLoss(StateProbe(16, [0, 1, 2]), tokens=4, manifold_weight=1.0, labels=2)
    z = torch.randn(3, 2, 4, 16, requires_grad=True)
    states = torch.randn(3, 2, 7)
    labels = torch.randn(3, 2, 2)
    labels[0] = float("nan")  # an episode without the quantity
    loss, probe, manifold = geo(z, states, labels)
    assert torch.isfinite(loss) and torch.isfinite(probe) and torch.isfinite(manifold)
    loss.backward()
    assert geo.label_head.weight.grad.abs().sum() > 0 and torch.isfinite(z.grad).all()
    # The labels enter both terms: other labels, other loss; a NaN row is masked, not a zero target.
    other = labels.clone()
    other[1:] += 1.0
    assert geo(z, states, other)[1] != probe and geo(z, states, other)[2] != manifold
    changed = labels.clone()
    changed[0] = 5.0
    assert geo(z, states, changed)[1] != probe
    with pytest.raises(ValueError, match="pass labels"):
        geo(z, states)


TINY = {
    "model": {
        "encoder": {
            "img_size": SIZE,
            "patch_size": 8,
            "num_frames": 2,
            "tubelet_size": 2,
            "embed_dim": 32,
            "depth": 1,
            "num_heads": 2,
        },
        "mask_predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2},
    },
    "data": {"frames_per_clip": 4, "fps": 15.0, "crop": "none", "batch_size": 4},
    "jepa_weight": 0.0,
    "aux_probe_weight": 1.0,
    "manifold_weight": 1.0,
    "optim": {"total_steps": 6, "warmup_steps": 1, "start_lr": 1e-4, "lr": 2e-3, "final_lr": 1e-4},
    "run": {"checkpoint_every": 3, "tensorboard": False, "bf16": False, "device": "cpu"},
}


def test_pretrain_with_sim_labels_names_them_in_the_training_signals(data, tmp_path):
    paths = f"data.paths=['{data / 'push'}', '{data / 'reach'}']"
    cfg = load_config(PretrainConfig, TINY, [paths, "sim_labels=[block_pos]"])
    assert pretrain(cfg, tmp_path)["finished"]
    assert all(np.isfinite(float(r["loss"])) for r in read_metrics(tmp_path))
    enc = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert enc["training_signals"] == ["frames", "ee_state", "sim_block_position"]
    geo = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["geometry"]
    assert geo["label_head.weight"].shape == (3, 32) and geo["label_std"].min() > 0
    with pytest.raises(ConfigError, match="sim_labels.*raw-layout"):
        load_config(PretrainConfig, TINY, [paths, "sim_labels=[block_pos]", "data.format=rlds"])
    with pytest.raises(ConfigError, match="sim_labels.*state-geometry"):
        load_config(
            PretrainConfig,
            TINY,
            [paths, "sim_labels=[block_pos]", "jepa_weight=1", "aux_probe_weight=0", "manifold_weight=0"],
        )
