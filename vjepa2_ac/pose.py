"""End-effector pose maths for V-JEPA 2-AC states and actions (batched torch).

A *pose* (state) is 7-D ``[x, y, z, roll, pitch, yaw, gripper]``: metres, radians, gripper in ``[0, 1]``.
The angles are extrinsic euler ``"xyz"`` (scipy's lower-case convention): rotate about the fixed x axis
by ``roll``, then fixed y by ``pitch``, then fixed z by ``yaw``, i.e. ``R = Rz(yaw) · Ry(pitch) · Rx(roll)``.

An *action* is the 7-D pose change ``[xyz' − xyz, euler_xyz(R' · Rᵀ), g' − g]``. The rotation delta is
left-multiplied, so it is expressed in the robot base (world) frame, as in the official DROID loader and
planning code. Applying an action is the inverse: ``xyz + dxyz``, ``R(dθ) · R(θ)``, ``clip(g + dg, 0, 1)``.

Every function accepts any number of leading batch dimensions and keeps the input dtype (float32 or
float64); nothing here leaves torch, so the functions are differentiable and run on any device.
"""

from __future__ import annotations

import torch

__all__ = [
    "euler_xyz_to_matrix",
    "matrix_to_euler_xyz",
    "pose_difference",
    "poses_to_actions",
    "apply_action",
]


def _check_last_dim(name: str, x: torch.Tensor, size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape [..., {size}], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from extrinsic euler ``"xyz"`` angles.

    Args:
        angles: ``[..., 3]`` ``(roll, pitch, yaw)`` in radians.

    Returns:
        ``[..., 3, 3]`` rotation matrices ``Rz(yaw) · Ry(pitch) · Rx(roll)``.
    """
    _check_last_dim("angles", angles, 3)
    a, b, c = angles.unbind(-1)
    ca, sa = torch.cos(a), torch.sin(a)
    cb, sb = torch.cos(b), torch.sin(b)
    cc, sc = torch.cos(c), torch.sin(c)
    # Closed form of Rz(c) @ Ry(b) @ Rx(a).
    r00 = cc * cb
    r01 = cc * sb * sa - sc * ca
    r02 = cc * sb * ca + sc * sa
    r10 = sc * cb
    r11 = sc * sb * sa + cc * ca
    r12 = sc * sb * ca - cc * sa
    r20 = -sb
    r21 = cb * sa
    r22 = cb * ca
    rows = (
        torch.stack((r00, r01, r02), -1),
        torch.stack((r10, r11, r12), -1),
        torch.stack((r20, r21, r22), -1),
    )
    return torch.stack(rows, -2)


def matrix_to_euler_xyz(matrix: torch.Tensor) -> torch.Tensor:
    """Extrinsic euler ``"xyz"`` angles of rotation matrices (inverse of :func:`euler_xyz_to_matrix`).

    Returns ``roll, yaw ∈ (−π, π]`` and ``pitch ∈ [−π/2, π/2]`` (scipy's ranges). At gimbal lock
    (``|pitch| = π/2``) only ``roll ∓ yaw`` is defined; like scipy, the last angle (yaw) is then set to
    0 and roll carries the whole remaining rotation.

    Args:
        matrix: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 3]`` ``(roll, pitch, yaw)`` in radians.
    """
    if not isinstance(matrix, torch.Tensor) or matrix.ndim < 2 or tuple(matrix.shape[-2:]) != (3, 3):
        shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise ValueError(f"matrix: expected shape [..., 3, 3], got {shape}")
    r00, r10, r20 = matrix[..., 0, 0], matrix[..., 1, 0], matrix[..., 2, 0]
    r21, r22 = matrix[..., 2, 1], matrix[..., 2, 2]
    # cos(pitch) from the first column is better conditioned than asin(-r20) near ±π/2.
    cb = torch.sqrt(r00 * r00 + r10 * r10)
    pitch = torch.atan2(-r20, cb)
    roll = torch.atan2(r21, r22)
    yaw = torch.atan2(r10, r00)
    eps = 1e-6 if matrix.dtype == torch.float64 else 1e-5
    locked = cb < eps
    if bool(locked.any()):
        # With pitch = ±π/2 and yaw = 0: r01 = ±sin(roll), r11 = cos(roll) (scipy's gimbal-lock choice).
        r01, r11 = matrix[..., 0, 1], matrix[..., 1, 1]
        roll_locked = torch.atan2(torch.sign(-r20) * r01, r11)
        roll = torch.where(locked, roll_locked, roll)
        yaw = torch.where(locked, torch.zeros_like(yaw), yaw)
    return torch.stack((roll, pitch, yaw), -1)


def pose_difference(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Action taking pose ``start`` to pose ``end``.

    Args:
        start: ``[..., 7]`` poses.
        end: ``[..., 7]`` poses (broadcastable with ``start``).

    Returns:
        ``[..., 7]`` ``[xyz_e − xyz_s, euler_xyz(R_e · R_sᵀ), g_e − g_s]``.
    """
    _check_last_dim("start", start, 7)
    _check_last_dim("end", end, 7)
    r_s = euler_xyz_to_matrix(start[..., 3:6])
    r_e = euler_xyz_to_matrix(end[..., 3:6])
    d_rot = matrix_to_euler_xyz(r_e @ r_s.transpose(-1, -2))
    return torch.cat((end[..., :3] - start[..., :3], d_rot, end[..., 6:7] - start[..., 6:7]), -1)


def poses_to_actions(states: torch.Tensor) -> torch.Tensor:
    """Actions between consecutive poses of a trajectory.

    Args:
        states: ``[..., T, 7]`` poses, ``T ≥ 2``.

    Returns:
        ``[..., T-1, 7]``; entry ``t`` is ``pose_difference(states[t], states[t+1])``.
    """
    _check_last_dim("states", states, 7)
    if states.ndim < 2 or states.shape[-2] < 2:
        raise ValueError(f"states: expected shape [..., T, 7] with T >= 2, got {tuple(states.shape)}")
    return pose_difference(states[..., :-1, :], states[..., 1:, :])


def apply_action(pose: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Pose reached by applying ``action`` to ``pose`` (inverse of :func:`pose_difference`).

    Args:
        pose: ``[..., 7]`` poses.
        action: ``[..., 7]`` actions (broadcastable with ``pose``).

    Returns:
        ``[..., 7]`` ``[xyz + dxyz, euler_xyz(R(dθ) · R(θ)), clip(g + dg, 0, 1)]``.
    """
    _check_last_dim("pose", pose, 7)
    _check_last_dim("action", action, 7)
    rot = euler_xyz_to_matrix(action[..., 3:6]) @ euler_xyz_to_matrix(pose[..., 3:6])
    xyz = pose[..., :3] + action[..., :3]
    grip = (pose[..., 6:7] + action[..., 6:7]).clamp(0.0, 1.0)
    return torch.cat((xyz, matrix_to_euler_xyz(rot), grip), -1)
