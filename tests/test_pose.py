"""Pose maths against the official fixture, the real Franka example and algebraic identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vjepa2_ac.pose import (
    apply_action,
    euler_xyz_to_matrix,
    matrix_to_euler_xyz,
    pose_difference,
    poses_to_actions,
)


@pytest.fixture(scope="module")
def pose_fx(parity_dir):
    return torch.load(parity_dir / "pose_utils.pt", weights_only=True)


def _rot(axis: str, t: float) -> torch.Tensor:
    c, s = math.cos(t), math.sin(t)
    m = {
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
    }[axis]
    return torch.tensor(m, dtype=torch.float64)


def test_apply_action_matches_official_compute_new_pose(pose_fx):
    inp, out = pose_fx["inputs"], pose_fx["outputs"]
    got = apply_action(inp["pose"], inp["action"])
    assert got.dtype == torch.float32 and got.shape == (16, 1, 7)
    torch.testing.assert_close(got, out["compute_new_pose"], atol=1e-4, rtol=0)


def test_pose_difference_matches_official_poses_to_diff(pose_fx):
    inp, out = pose_fx["inputs"], pose_fx["outputs"]
    got = pose_difference(inp["start"].double(), inp["end"].double())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, out["poses_to_diff"], atol=1e-6, rtol=0)
    # float32 path too
    torch.testing.assert_close(
        pose_difference(inp["start"], inp["end"]).double(), out["poses_to_diff"], atol=1e-4, rtol=0
    )


def test_poses_to_actions_matches_official_droid_labels(pose_fx):
    inp, out = pose_fx["inputs"], pose_fx["outputs"]
    got = poses_to_actions(inp["trajectory_states"])
    assert got.shape == (7, 7) and got.dtype == torch.float64
    torch.testing.assert_close(got, out["droid_poses_to_diffs"], atol=1e-10, rtol=0)


def test_real_franka_example_action(shared):
    data = np.load(shared / "data" / "franka_example_traj.npz")
    states = torch.from_numpy(data["states"])  # [1, 2, 7]
    action = poses_to_actions(states)[0, 0]
    expected = torch.tensor([0.09237, 0.03099, 0.08428, -0.01717, -0.01000, -0.00002, 0.0])
    torch.testing.assert_close(action, expected, atol=1e-5, rtol=0)
    # applying it returns to the second state
    torch.testing.assert_close(apply_action(states[0, 0], action), states[0, 1], atol=1e-5, rtol=0)


def test_euler_convention_is_extrinsic_xyz():
    roll, pitch, yaw = 0.3, -0.7, 2.1
    expected = _rot("z", yaw) @ _rot("y", pitch) @ _rot("x", roll)
    got = euler_xyz_to_matrix(torch.tensor([roll, pitch, yaw], dtype=torch.float64))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_matrix_euler_roundtrip_batched_and_gimbal_lock():
    g = torch.Generator().manual_seed(0)
    angles = (torch.rand(4, 5, 3, generator=g, dtype=torch.float64) * 2 - 1) * torch.tensor([3.1, 1.5, 3.1])
    r = euler_xyz_to_matrix(angles)
    assert r.shape == (4, 5, 3, 3)
    torch.testing.assert_close(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(4, 5, 3, 3))
    torch.testing.assert_close(matrix_to_euler_xyz(r), angles, atol=1e-10, rtol=0)
    # gimbal lock: yaw set to 0 (scipy's choice), the matrix is still reproduced
    for pitch in (math.pi / 2, -math.pi / 2):
        a = torch.tensor([0.3, pitch, 1.1], dtype=torch.float64)
        e = matrix_to_euler_xyz(euler_xyz_to_matrix(a))
        assert e[2] == 0.0
        torch.testing.assert_close(euler_xyz_to_matrix(e), euler_xyz_to_matrix(a), atol=1e-9, rtol=0)


def test_apply_action_inverts_pose_difference_and_composes():
    g = torch.Generator().manual_seed(1)
    states = torch.cat(
        (
            torch.rand(6, 5, 3, generator=g, dtype=torch.float64),
            (torch.rand(6, 5, 3, generator=g, dtype=torch.float64) - 0.5) * 2,
            torch.rand(6, 5, 1, generator=g, dtype=torch.float64),
        ),
        -1,
    )
    actions = poses_to_actions(states)  # [6, 4, 7]
    assert actions.shape == (6, 4, 7)
    torch.testing.assert_close(apply_action(states[:, :-1], actions), states[:, 1:], atol=1e-10, rtol=0)
    # composing the per-frame actions equals the action across the whole span (tubelet steps)
    pose = states[:, 0]
    for t in range(4):
        pose = apply_action(pose, actions[:, t])
    torch.testing.assert_close(
        pose_difference(states[:, 0], pose), pose_difference(states[:, 0], states[:, -1])
    )


def test_gripper_is_clipped_and_broadcasting():
    pose = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9])
    actions = torch.tensor([[0.0] * 6 + [0.5], [0.0] * 6 + [-2.0]])
    out = apply_action(pose, actions)
    assert out.shape == (2, 7)
    assert out[0, 6] == 1.0 and out[1, 6] == 0.0


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"start: expected shape \[\.\.\., 7\]"):
        pose_difference(torch.zeros(3, 6), torch.zeros(3, 7))
    with pytest.raises(ValueError, match="T >= 2"):
        poses_to_actions(torch.zeros(1, 7))
    with pytest.raises(TypeError, match="floating-point"):
        apply_action(torch.zeros(7, dtype=torch.long), torch.zeros(7))
    with pytest.raises(ValueError, match=r"matrix: expected shape"):
        matrix_to_euler_xyz(torch.zeros(3, 4))
