"""``vjepa2-ac collect``: raw DROID episodes from the simulator, resumable and deterministic."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import h5py
import numpy as np

from vjepa2_ac.envs.collect import CollectConfig, collect, rollout_episode


def test_collect_cli_writes_droid_episodes(tmp_path):
    out = tmp_path / "push"
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "collect", "--task", "push", "--episodes", "2"]
    cmd += ["--out", str(out), "--policy", "expert", "--image-size", "32", "--max-steps", "6", "--seed", "3"]
    cmd += ["--workers", "2", "--cameras", "exterior_1,wrist"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["collected"] == 2 and summary["frames_collected"] == 14

    for i in range(2):
        ep = out / f"episode_{i:06d}"
        (meta_path,) = ep.glob("metadata_*.json")
        meta = json.loads(meta_path.read_text())
        assert isinstance(meta["success"], bool) and meta["sim_task"] == "push"
        assert meta["trajectory_length"] == 7
        assert meta["left_mp4_path"] == "recordings/MP4/exterior_1.mp4"
        assert meta["wrist_mp4_path"] == "recordings/MP4/wrist.mp4"
        with h5py.File(ep / "trajectory.h5") as f:
            cart = f["observation/robot_state/cartesian_position"][()]
            grip = f["observation/robot_state/gripper_position"][()]
            assert cart.shape == (7, 6) and grip.shape == (7,)
            assert f["observation/camera_extrinsics/exterior_1_left"].shape == (7, 6)
        sim = np.load(ep / "sim.npz")
        np.testing.assert_allclose(cart, sim["states"][:, :6], atol=1e-6)
        assert sim["block_pos"].shape == (7, 3) and sim["goal_image_exterior_1"].shape == (32, 32, 3)
        for cam in ("exterior_1", "wrist"):
            with av.open(str(ep / "recordings" / "MP4" / f"{cam}.mp4")) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) == 7 and frames[0].shape == (32, 32, 3)
            assert frames[0].std() > 5  # a rendered scene, not a blank image

    # Resume: a second run with the same options skips the complete episodes.
    cfg = CollectConfig(
        task="push", policy="expert", image_size=32, cameras=("exterior_1", "wrist"), max_steps=6, seed=3
    )
    again = collect(cfg, out, episodes=2)
    assert again["skipped_existing"] == 2 and again["collected"] == 0
    # Episode content depends only on (seed, index), not on the worker that produced it.
    ep1 = rollout_episode(cfg, 1)
    np.testing.assert_array_equal(ep1["sim"]["states"], np.load(out / "episode_000001" / "sim.npz")["states"])
    # Different options in the same directory are refused instead of mixing datasets.
    other = CollectConfig(task="push", policy="random", image_size=32, max_steps=6, seed=3)
    try:
        collect(other, out, episodes=1)
    except ValueError as exc:
        assert "different options" in str(exc)
    else:
        raise AssertionError("collect() accepted a directory collected with other options")


def test_collect_rejects_bad_names(tmp_path, capsys):
    from vjepa2_ac.experiments.cli import main

    code = main(["collect", "--task", "stack", "--episodes", "1", "--out", str(tmp_path)])
    assert code == 2 and "valid: reach, push, FetchReach-v4, FetchPush-v4" in capsys.readouterr().err
    for kwargs, msg in (({"cameras": ("side",)}, "valid cameras"), ({"policy": "rl"}, "valid policies")):
        try:
            CollectConfig(task="reach", **kwargs)
        except ValueError as exc:
            assert msg in str(exc)
        else:
            raise AssertionError(f"CollectConfig accepted {kwargs}")
