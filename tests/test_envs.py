"""MuJoCo reach/push tasks: gymnasium API, determinism, bad input, physics and experts."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import vjepa2_ac.envs  # noqa: F401  (registers the ids, sets MUJOCO_GL)
from vjepa2_ac.envs import scene
from vjepa2_ac.envs.policies import PushExpert, RandomPolicy, ReachExpert, make_policy
from vjepa2_ac.envs.tasks import PushEnv, ReachEnv, apply_action_np, task_env_id

SIZE = 32


def _run(env, policy, steps, seed):
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy.act(obs, info))
    return obs, info


@pytest.mark.parametrize("env_id", ["vjepa2_ac/Reach-v0", "vjepa2_ac/Push-v0"])
def test_check_env_passes(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, render_mode="rgb_array", image_size=SIZE)
    with warnings.catch_warnings():
        # The DROID-scaled action box (metres / radians) is intentionally not [-1, 1].
        warnings.filterwarnings("ignore", message=".*normalized.*|.*symmetric.*")
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (SIZE, SIZE, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    assert info["goal_image"].shape == (SIZE, SIZE, 3)
    assert env.render().shape == (SIZE, SIZE, 3)
    assert env.spec.max_episode_steps == {"vjepa2_ac/Reach-v0": 50, "vjepa2_ac/Push-v0": 100}[env_id]
    env.close()


@pytest.mark.parametrize("task", ["reach", "push"])
def test_same_seed_same_frames(task):
    frames = []
    for _ in range(2):
        env = gym.make(task_env_id(task), image_size=SIZE)
        obs, info = env.reset(seed=123)
        policy = RandomPolicy(seed=7)
        policy.reset(7)
        seq = [obs["image"], info["goal_image"]]
        for _ in range(4):
            obs, _, _, _, info = env.step(policy.act(obs, info))
            seq.append(obs["image"])
            seq.append(obs["state"].view(np.uint8).reshape(1, -1, 1).repeat(3, -1))
        frames.append(seq)
        env.close()
    for a, b in zip(*frames):
        np.testing.assert_array_equal(a, b)
    env = gym.make(task_env_id(task), image_size=SIZE)
    other, _ = env.reset(seed=124)
    assert not np.array_equal(other["image"], frames[0][0])
    env.close()


def test_async_vector_env_spawn():
    envs = gym.make_vec(
        "vjepa2_ac/Push-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
        image_size=SIZE,
    )
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["image"].shape == (2, SIZE, SIZE, 3) and obs["state"].shape == (2, 7)
        assert not np.array_equal(obs["image"][0], obs["image"][1])
        for _ in range(3):
            obs, reward, term, trunc, info = envs.step(
                np.tile([0.01, 0, -0.01, 0, 0, 0, 0], (2, 1)).astype(np.float32)
            )
        assert reward.shape == (2,) and info["success"].shape == (2,)
    finally:
        envs.close()


def test_bad_actions_and_names():
    env = ReachEnv(image_size=SIZE)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.array([0, 0, np.inf, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        env.step(np.zeros(3))
    # Out-of-bound action: clipped to 5 cm, reported, and the EE moves at most ~5 cm.
    start = obs["state"].copy()
    obs, _, _, _, info = env.step(np.array([0.3, 0, 0, 0, 0, 0, 0], np.float32))
    assert info["action_clipped"] and np.isclose(info["applied_action"][0], 0.05)
    assert 0.04 < obs["state"][0] - start[0] < 0.052
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert not info["action_clipped"]
    # Pushing into the table: the commanded pose is clipped to the workspace and reported.
    for _ in range(8):
        obs, _, _, _, info = env.step(np.array([0, 0, -0.05, 0, 0, 0, 0], np.float32))
    assert info["workspace_clipped"] and obs["state"][2] > 0.005
    with pytest.raises(ValueError, match="valid cameras: exterior_1"):
        ReachEnv(camera="nope")
    with pytest.raises(ValueError, match="valid tasks: reach, push"):
        task_env_id("pick")
    with pytest.raises(ValueError, match="valid keys for reach: ee_start, goal"):
        env.reset(options={"block": [0, 0]})
    with pytest.raises(ValueError, match="image_size"):
        PushEnv(image_size=8)
    env.close()


def test_state_follows_action():
    """state_{t+1} ≈ apply_action(state_t, a_t) for random actions (rotations and gripper included)."""
    env = ReachEnv(image_size=SIZE, render_images=False)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(25):
        a = np.concatenate([rng.uniform(-0.04, 0.04, 3), rng.uniform(-0.1, 0.1, 3), rng.uniform(-1, 1, 1)])
        state = obs["state"].astype(np.float64)
        obs, _, _, _, info = env.step(a.astype(np.float32))
        if info["workspace_clipped"]:
            continue
        errors.append(np.abs(obs["state"] - apply_action_np(state, a)))
    err = np.mean(errors, axis=0)
    assert len(errors) > 10
    assert err[:3].max() < 0.002, err  # metres
    assert err[3:6].max() < 0.01, err  # radians
    assert err[6] < 0.02, err


def test_goal_images_show_the_goal_configuration():
    env = PushEnv(image_size=SIZE)
    obs, info = env.reset(seed=5, options={"block_start": [0.5, 0.0], "goal": [0.5, 0.15]})
    goal_img = env.goal_image()
    assert not np.array_equal(goal_img, obs["image"])
    # Rendering the goal EE pose with the block at the goal reproduces the goal image.
    np.testing.assert_array_equal(env.render_state(env.goal_state(), block_xy=[0.5, 0.15]), goal_img)
    assert info["goal_state"][1] == pytest.approx(0.15 - PushEnv.CONTACT_OFFSET, abs=1e-5)
    reach = ReachEnv(image_size=SIZE)
    obs, info = reach.reset(seed=0, options={"goal": [0.5, 0.1, 0.2]})
    np.testing.assert_allclose(info["goal_state"][:3], [0.5, 0.1, 0.2], atol=1e-6)
    assert np.linalg.norm(obs["state"][:3] - info["goal_pos"]) >= 0.1
    # Driving the EE to the goal makes the observation match the goal image closely.
    for _ in range(15):
        obs, _, _, _, info = reach.step(ReachExpert().act(obs, info))
    assert info["success"]
    assert np.abs(obs["image"].astype(int) - reach.goal_image().astype(int)).mean() < 2.0
    env.close()
    reach.close()


def test_reach_start_goal_distribution():
    env = ReachEnv(image_size=SIZE, render_images=False)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        assert np.linalg.norm(obs["state"][:3] - info["goal_pos"]) >= 0.1 - 1e-4
        assert not info["success"]
        assert np.all(info["goal_pos"] >= ReachEnv.SAMPLE_LOW - 1e-6)
        assert np.all(info["goal_pos"] <= ReachEnv.SAMPLE_HIGH + 1e-6)


@pytest.mark.parametrize("task,seeds", [("reach", [0, 1, 2]), ("push", [0, 1, 2])])
def test_experts_succeed(task, seeds):
    env = gym.make(task_env_id(task), render_images=False)
    for seed in seeds:
        policy = make_policy(task, "expert", noise=0.0)
        done, info = False, {}
        obs, info = env.reset(seed=seed)
        policy.reset(seed)
        while not done:
            obs, _, term, trunc, info = env.step(policy.act(obs, info))
            done = term or trunc
        assert info["success"], (task, seed, info["distance"])
    env.close()


def test_push_is_real_contact():
    """The block only moves when the fingers push it, and then toward the push direction."""
    env = PushEnv(image_size=SIZE, render_images=False)
    opts = {"ee_start": [0.65, 0.0, 0.10], "block_start": [0.5, 0.0, 0.0], "goal": [0.35, 0.0]}
    obs, info = env.reset(seed=0, options=opts)
    block0 = info["block_pos"].copy()
    # Hovering above the block does not move it.
    for _ in range(6):
        obs, _, _, _, info = env.step(np.array([-0.03, 0, 0, 0, 0, 0, 0], np.float32))
    np.testing.assert_allclose(info["block_pos"], block0, atol=1e-3)
    obs, info = env.reset(seed=0, options=opts)
    policy = PushExpert()
    policy.reset(0)
    for _ in range(30):
        obs, _, _, _, info = env.step(policy.act(obs, info))
    assert info["block_pos"][0] < block0[0] - 0.08  # pushed toward -x (the goal)
    assert abs(info["block_pos"][2] - scene.BLOCK_HALF) < 0.01  # still resting on the table
    env.close()


def test_numpy_pose_maths_match_vjepa2_ac_pose():
    import torch

    from vjepa2_ac import pose
    from vjepa2_ac.envs.tasks import euler_to_matrix, matrix_to_euler

    rng = np.random.default_rng(0)
    states = np.concatenate(
        [rng.normal(0, 0.3, (64, 3)), rng.uniform(-3, 3, (64, 3)), rng.uniform(0, 1, (64, 1))], 1
    )
    actions = np.concatenate(
        [rng.normal(0, 0.05, (64, 3)), rng.normal(0, 0.5, (64, 3)), rng.normal(0, 1, (64, 1))], 1
    )
    states[0, 3:6] = [0.3, np.pi / 2, 0.0]  # gimbal lock
    ref = pose.apply_action(torch.as_tensor(states), torch.as_tensor(actions)).numpy()
    ours = np.stack([apply_action_np(s, a) for s, a in zip(states, actions)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    mats = pose.euler_xyz_to_matrix(torch.as_tensor(states[:, 3:6])).numpy()
    np.testing.assert_allclose(np.stack([euler_to_matrix(e) for e in states[:, 3:6]]), mats, atol=1e-12)
    np.testing.assert_allclose(
        np.stack([matrix_to_euler(m) for m in mats]),
        pose.matrix_to_euler_xyz(torch.as_tensor(mats)).numpy(),
        atol=1e-12,
    )


def test_orientation_does_not_drift():
    """Zero rotation actions keep the hand top-down despite gripper and contact torques."""
    env = PushEnv(render_images=False)
    obs, info = env.reset(seed=1)
    policy = RandomPolicy(p_gripper=0.3, seed=0)
    policy.reset(0)
    for _ in range(60):
        obs, _, _, _, info = env.step(policy.act(obs, info))
        assert np.abs(obs["state"][3:6]).max() < 0.01, obs["state"]


def test_sim_state_snapshot_restores_exactly():
    env = PushEnv(image_size=SIZE)
    obs, info = env.reset(seed=2)
    policy = PushExpert()
    policy.reset(2)
    for _ in range(8):
        obs, _, _, _, info = env.step(policy.act(obs, info))
    snap = env.get_sim_state()
    actions = [np.array([-0.02, 0.01, 0.0, 0, 0, 0.05, 0], np.float32)] * 4
    first = [env.step(a)[0] for a in actions]
    env.set_sim_state(snap)
    second = [env.step(a)[0] for a in actions]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["state"], b["state"])
    with pytest.raises(ValueError, match="lacks"):
        env.set_sim_state({"qpos": snap["qpos"]})


def test_camera_extrinsics_project_the_hand():
    """Projecting the orange palm with camera_extrinsics (OpenCV axes) + intrinsics lands on orange pixels."""
    from vjepa2_ac.envs.tasks import euler_to_matrix

    env = ReachEnv(image_size=128)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for cam in ("exterior_1", "exterior_2"):
            img = obs["image"] if cam == "exterior_1" else env.render_camera(cam)
            ext = env.camera_extrinsics(cam)
            rot = euler_to_matrix(ext[3:6])
            palm = obs["state"][:3] + np.array([0.0, 0.0, 2 * scene.FINGER_HALF[2] + 0.016])
            p = rot.T @ (palm - ext[:3])
            assert p[2] > 0  # in front of the camera
            u, v, w = env.camera_intrinsics(cam) @ p
            col, row = int(u / w), int(v / w)
            patch = img[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].reshape(-1, 3).astype(int)
            orange = (patch[:, 0] > 110) & (patch[:, 0] > patch[:, 1] + 40) & (patch[:, 2] < 60)
            assert orange.any(), (seed, cam, row, col, patch)
    env.close()
