"""The Gymnasium-Robotics Fetch adapter: action mapping, state, goal images, snapshots, the gymnasium
checker, and collect -> pretrain -> train -> plan on FetchReach.

Everything but the action mapping and the missing-extra errors needs the ``fetch`` extra
(gymnasium-robotics 1.4.2 with mujoco 3.3.0); without it those tests skip, naming the reason. CI runs
this file in that configuration too (``.ci/run``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli

import vjepa2_ac.envs  # noqa: F401  (registers the env ids, sets MUJOCO_GL)
from vjepa2_ac.envs.fetch import MAX_DELTA, ORIENTATION, fetch_action, fetch_available

FETCH_OK, FETCH_WHY = fetch_available()
needs_fetch = pytest.mark.skipif(not FETCH_OK, reason=f"Fetch tests need the fetch extra: {FETCH_WHY}")


_cli = run_cli


def test_fetch_action_scales_clips_and_flips_the_gripper():
    a = fetch_action(np.array([0.05, -0.025, 0.01, 0.3, 0.0, 0.0, 0.5]))
    np.testing.assert_allclose(a, [1.0, -0.5, 0.2, -0.5], atol=1e-6)
    assert a.dtype == np.float32 and a.shape == (4,)
    np.testing.assert_allclose(fetch_action(np.array([0.2, -0.2, 0, 0, 0, 0, -3.0])), [1, -1, 0, 1])


@pytest.mark.skipif(FETCH_OK, reason="checks the error shown without the fetch extra")
def test_without_the_extra_collect_and_plan_say_how_to_install(tmp_path):
    proc = _cli(
        "collect", "--env", "FetchReach-v4", "--episodes", "1", "--out", str(tmp_path / "d"), check=False
    )
    assert proc.returncode == 2 and "pip install -e" in proc.stderr and "fetch" in proc.stderr
    proc = _cli(
        "plan", "--env", "FetchReach-v4", "--baseline", "random", "--out", str(tmp_path / "p"), check=False
    )
    assert proc.returncode == 2 and "--env FetchReach-v4" in proc.stderr and "fetch" in proc.stderr


@pytest.fixture(scope="module")
def reach_env():
    from vjepa2_ac.envs.starts import make_env

    env = make_env("FetchReach-v4", 64)
    yield env
    env.close()


@needs_fetch
def test_state_step_and_goal_image(reach_env):
    obs, info = reach_env.reset(seed=3)
    u = reach_env.unwrapped
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    state = obs["state"]
    assert state.shape == (7,) and state.dtype == np.float32
    np.testing.assert_allclose(state[3:6], ORIENTATION, atol=1e-6)
    assert state[6] > 0.99  # FetchReach blocks the fingers closed
    # The goal image shows the expert at the goal: its state is within 1 cm of the desired goal.
    assert np.linalg.norm(info["goal_state"][:3] - info["goal_pos"]) < 0.01
    goal = u.goal_image()
    assert goal.shape == (64, 64, 3) and np.abs(goal.astype(int) - obs["image"].astype(int)).mean() > 0.5
    # A 2 cm step along x moves the gripper about 2 cm (mocap control, one 25 Hz step).
    obs2, _, terminated, truncated, info2 = reach_env.step(np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32))
    moved = obs2["state"][:3] - state[:3]
    assert 0.012 < moved[0] < 0.025 and np.abs(moved[1:]).max() < 0.005
    assert not terminated and not truncated
    assert info2["distance"] == pytest.approx(np.linalg.norm(obs2["state"][:3] - info2["goal_pos"]), abs=1e-4)
    assert info2["success"] == bool(info2["is_success"])
    # Clipping: a 10 cm request is applied as MAX_DELTA and reported.
    _, _, _, _, info3 = reach_env.step(np.array([0.1, 0, 0, 0, 0, 0, 0], np.float32))
    assert info3["action_clipped"] and info3["applied_action"][0] == pytest.approx(MAX_DELTA)
    with pytest.raises(ValueError, match="shape"):
        reach_env.step(np.zeros(4, np.float32))


@needs_fetch
def test_snapshot_restore_is_exact(reach_env):
    reach_env.reset(seed=5)
    u = reach_env.unwrapped
    snap = u.get_sim_state()
    a = np.array([0.01, -0.02, 0.015, 0, 0, 0, 0], np.float32)
    first = [u.step(a)[0]["state"] for _ in range(3)]
    u.set_sim_state(snap)
    again = [u.step(a)[0]["state"] for _ in range(3)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


@needs_fetch
def test_push_info_and_expert_goal():
    from vjepa2_ac.envs.starts import make_env

    env = make_env("FetchPush-v4", 64)
    obs, info = env.reset(seed=1)
    assert info["block_pos"].shape == (3,) and env.unwrapped.block_pose().shape == (7,)
    assert info["distance"] == pytest.approx(np.linalg.norm(info["block_pos"] - info["goal_pos"]), abs=1e-4)
    assert env.unwrapped._goal_solved  # the scripted expert pushed the block onto the goal
    env.close()


@needs_fetch
def test_gymnasium_check_env():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = gym.make("vjepa2_ac/FetchReach-v4", image_size=32)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@needs_fetch
def test_collect_pretrain_train_plan_on_fetch_reach(tmp_path):
    data = tmp_path / "data"
    _cli("collect", "--env", "FetchReach-v4", "--episodes", "3", "--max-steps", "10", "--out", str(data))
    meta = json.loads(next((data / "episode_000000").glob("metadata_*.json")).read_text())
    assert meta["sim_task"] == "FetchReach-v4"
    small = ["--steps", "2", "--batch-size", "4", "--set", "optim.warmup_steps=1", "--threads", "1"]
    fps = ["--set", "data.fps=25"]
    _cli(
        "pretrain",
        "--config",
        "sim_encoder",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "enc"),
        *small,
        *fps,
    )
    _cli(
        "train", "--config", "sim_world_model", "--data", str(data), "--out", str(tmp_path / "wm"),
        *small, *fps, "--encoder-checkpoint", str(tmp_path / "enc" / "encoder.pt"),
        "--set", "data.cache_passes=2",
    )  # fmt: skip
    out = tmp_path / "plan"
    proc = _cli(
        "plan", "--checkpoint", str(tmp_path / "wm" / "world_model.pt"), "--env", "FetchReach-v4",
        "--episodes", "1", "--max-steps", "2", "--samples", "6", "--topk", "2", "--iterations", "1",
        "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert "world model trained on: frames, ee_state, actions" in proc.stdout
    rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
    assert rec["task"] == "FetchReach-v4" and rec["steps"] == 2 and rec["control_steps"] == 4
    assert rec["success_threshold"] == pytest.approx(0.05)


def test_shipped_fetch_model_is_label_free_and_recorded_at_25_hz():
    import torch

    from vjepa2_ac.experiments.pretrained import resolve_checkpoint

    config = torch.load(resolve_checkpoint("pretrained-fetch"), weights_only=True)["config"]
    meta = config["metadata"]
    assert meta["training_signals"] == ["frames", "ee_state", "actions"]
    assert config["alignment"] == "subsample" and meta["fps"] == 25.0
    assert [p.split("/")[-1] for p in meta["train_config"]["data"]["paths"]] == [
        "FetchReach-v4",
        "FetchPush-v4",
    ]


def _plan_shipped(env_id: str, seed: int, out) -> tuple[dict, dict]:
    """One episode of `plan` with the shipped Fetch model and the task's defaults: (run config, record)."""
    _cli(
        "plan", "--checkpoint", "pretrained-fetch", "--env", env_id, "--episodes", "1", "--seed", str(seed),
        "--landscapes", "0", "--save-frames", "0", "--no-progress", "--out", str(out),
    )  # fmt: skip
    config = json.loads((out / "run_config.json").read_text())
    return config, json.loads((out / "episodes" / "ep_0000.json").read_text())


@needs_fetch
def test_shipped_fetch_model_reaches(tmp_path):
    _, rec = _plan_shipped("FetchReach-v4", 7, tmp_path / "reach")
    assert rec["success"] and rec["final_distance"] < 0.03 < rec["initial_distance"], rec["distance_trace"]


@needs_fetch
def test_shipped_fetch_model_pushes_with_closed_loop_subgoals(tmp_path):
    config, rec = _plan_shipped("FetchPush-v4", 1019, tmp_path / "push")
    assert (config["subgoals"], config["subgoal_pace"], config["subgoal_refresh"]) == (16, 1.0, 4)
    # Redrawn every 4 planned steps: each redraw starts again at the first of its sub-goals.
    assert all(rec["subgoal_trace"][j] == 0 for j in range(4, rec["steps"], 4)), rec["subgoal_trace"]
    assert rec["success"] and rec["final_distance"] < 0.05 < rec["initial_distance"], rec["distance_trace"]
