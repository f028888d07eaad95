"""Exploration policies for data collection: smooth random Cartesian motion and noisy scripted experts.

Policies act from the env's observation and ``info`` (the experts use privileged simulator positions in
``info``: ``ee_pos``, ``goal_pos``, ``block_pos``), so they work with plain and vectorised envs. Each
policy owns a numpy ``Generator``; give it a seed per episode for deterministic episodes.

* :class:`RandomPolicy`: persistent (AR(1)-correlated) Cartesian velocities that bounce off the
  workspace, plus occasional gripper toggles: wide coverage of the workspace and long straight-ish
  motions, which a per-step i.i.d. policy would not give.
* :class:`ReachExpert`: proportional move to the goal with correlated noise.
* :class:`PushExpert`: closed-loop pusher: lift if needed, go behind the block on the goal line, lower,
  push toward the goal while steering back onto the line, stop at the goal.
* :class:`MixedPolicy`: per episode, an expert (with probability ``p_expert``) or random motion.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vjepa2_ac.envs import scene
from vjepa2_ac.envs.tasks import PushEnv

POLICY_NAMES = ("random", "expert", "mixed")


class Policy:
    """Interface: ``reset(seed)`` at the start of an episode, then ``act(obs, info) -> float32[7]``."""

    name = "policy"

    def __init__(self, max_delta_xyz: float = 0.05, seed: int | None = None) -> None:
        if not (0.0 < max_delta_xyz <= 0.2):
            raise ValueError(f"max_delta_xyz: expected a value in (0, 0.2] m, got {max_delta_xyz!r}")
        self.max_delta_xyz = max_delta_xyz
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; reseeds the policy's generator when ``seed`` is given."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def _action(self, dxyz: np.ndarray, dgrip: float = 0.0) -> np.ndarray:
        a = np.zeros(7, np.float32)
        a[:3] = np.clip(dxyz, -self.max_delta_xyz, self.max_delta_xyz)
        a[6] = dgrip
        return a


class RandomPolicy(Policy):
    """Smooth random Cartesian motion.

    Velocity ``v_{t+1} = rho * v_t + sqrt(1 - rho^2) * sigma * eps`` per axis (metres per step), reflected
    when the EE nears the sampling box so that episodes keep moving through the workspace. The gripper
    target toggles with probability ``p_gripper`` per step. Rotations stay 0 unless ``rot_sigma > 0``.
    """

    name = "random"
    LOW = np.array([0.30, -0.30, 0.02])
    HIGH = np.array([0.75, 0.30, 0.35])

    def __init__(
        self,
        sigma: float = 0.03,
        rho: float = 0.8,
        p_gripper: float = 0.05,
        rot_sigma: float = 0.0,
        max_delta_xyz: float = 0.05,
        seed: int | None = None,
        box: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__(max_delta_xyz, seed)
        if box is not None:
            self.LOW, self.HIGH = (np.asarray(b, np.float64) for b in box)
        if not (0.0 <= rho < 1.0):
            raise ValueError(f"rho: expected a value in [0, 1), got {rho!r}")
        if sigma <= 0.0 or rot_sigma < 0.0 or not (0.0 <= p_gripper <= 1.0):
            raise ValueError(
                "sigma > 0, rot_sigma >= 0 and p_gripper in [0, 1] expected, "
                f"got {sigma}, {rot_sigma}, {p_gripper}"
            )
        self.sigma, self.rho, self.p_gripper, self.rot_sigma = sigma, rho, p_gripper, rot_sigma
        self._v = np.zeros(3)
        self._grip_target: float | None = None

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._v = self.rng.normal(0.0, self.sigma, 3)
        self._grip_target = None

    def act(self, obs, info):
        state = np.asarray(obs["state"], np.float64)
        pos = state[:3]
        self._v = self.rho * self._v + math.sqrt(1.0 - self.rho**2) * self.rng.normal(0.0, self.sigma, 3)
        # Reflect off the box: push the velocity back inside when at/over a face.
        self._v = np.where(pos + self._v < self.LOW, np.abs(self._v), self._v)
        self._v = np.where(pos + self._v > self.HIGH, -np.abs(self._v), self._v)
        if self._grip_target is None:
            self._grip_target = float(state[6] > 0.5)
        if self.rng.random() < self.p_gripper:
            self._grip_target = 1.0 - self._grip_target
        a = self._action(self._v, self._grip_target - float(state[6]))
        if self.rot_sigma > 0.0:
            # Small rotations, pulled back toward the top-down orientation so angles stay bounded.
            a[3:6] = self.rng.normal(0.0, self.rot_sigma, 3) - 0.2 * state[3:6]
        return a


class ReachExpert(Policy):
    """Move the TCP toward ``info["goal_pos"]`` with gain ``gain`` plus AR(1) noise of std ``noise``."""

    name = "expert"

    def __init__(
        self, gain: float = 0.6, noise: float = 0.0, max_delta_xyz: float = 0.05, seed: int | None = None
    ):
        super().__init__(max_delta_xyz, seed)
        if not (0.0 < gain <= 1.0) or noise < 0.0:
            raise ValueError(f"gain in (0, 1] and noise >= 0 expected, got gain={gain!r}, noise={noise!r}")
        self.gain, self.noise = gain, noise
        self._n = np.zeros(3)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._n = np.zeros(3)

    def act(self, obs, info):
        ee = np.asarray(info["ee_pos"], np.float64)
        goal = np.asarray(info["goal_pos"], np.float64)
        self._n = (
            0.7 * self._n + math.sqrt(1 - 0.49) * self.rng.normal(0.0, self.noise, 3)
            if self.noise
            else self._n
        )
        grip = float(info["goal_state"][6]) - float(obs["state"][6])
        return self._action(self.gain * (goal - ee) + self._n, grip)


class PushExpert(Policy):
    """Closed-loop scripted pusher (gripper closed).

    With ``d`` the unit vector from the block to the goal, the pre-push point is ``block - d * (contact
    offset + clearance)``. If the TCP is not behind the block on that line it lifts to ``travel_height``
    (when near the block), flies above the pre-push point and lowers to ``push_height``; once behind
    the block and low it moves along ``d`` and steers the contact point back onto the block-goal line.
    Noise: AR(1) xyz noise of std ``noise`` (metres per step). ``geometry`` overrides the scene's
    ``block_half``, ``push_height``, ``contact`` (TCP to pusher front) and ``travel_height`` (metres).
    """

    name = "expert"

    def __init__(
        self,
        push_step: float = 0.02,
        noise: float = 0.0,
        travel_height: float = 0.10,
        max_delta_xyz: float = 0.05,
        seed: int | None = None,
        geometry: dict[str, float] | None = None,
    ) -> None:
        super().__init__(max_delta_xyz, seed)
        if not (0.0 < push_step <= max_delta_xyz) or noise < 0.0:
            raise ValueError(
                f"push_step in (0, max_delta_xyz] and noise >= 0 expected, got {push_step}, {noise}"
            )
        self.push_step, self.noise, self.travel_height = push_step, noise, travel_height
        self.push_height = PushEnv.PUSH_HEIGHT
        self.contact = PushEnv.CONTACT_OFFSET
        self.block_half = scene.BLOCK_HALF
        unknown = set(geometry or {}) - {"block_half", "push_height", "contact", "travel_height"}
        if unknown:
            raise ValueError(f"geometry: unknown key(s) {sorted(unknown)}")
        for key, value in (geometry or {}).items():
            setattr(self, key, float(value))
        self._n = np.zeros(3)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._n = np.zeros(3)

    def _target(self, ee: np.ndarray, block: np.ndarray, goal: np.ndarray) -> np.ndarray:
        to_goal = goal - block
        dist = float(np.linalg.norm(to_goal))
        if dist < 0.012:
            return ee.copy()  # done: hold still
        d = to_goal / dist
        rel = ee[:2] - block
        along = float(rel @ d)  # negative when behind the block
        lateral = float(rel @ np.array([-d[1], d[0]]))
        pre = block - d * (self.contact + 0.03)
        behind = along < -(self.contact - 0.012) and abs(lateral) < 0.02
        if behind and ee[2] < self.push_height + 0.02:
            # Push along d, steering the TCP back onto the block-goal line. Worst-case face distance (a
            # block rotated by 45 degrees): close a large gap without touching the block, then push slowly
            # (quasi-static contact), slowing down near the goal so the block does not overshoot.
            gap = -along - (self.block_half * math.sqrt(2.0) + 0.015)
            push = min(self.push_step, max(0.5 * dist, 0.005))
            step = gap - 0.005 if gap > push + 0.005 else push
            xy = ee[:2] + d * step - 0.5 * lateral * np.array([-d[1], d[0]])
            return np.array([xy[0], xy[1], self.push_height])
        near_block = float(np.linalg.norm(rel)) < self.block_half + 0.07
        to_pre = float(np.linalg.norm(ee[:2] - pre))
        if to_pre < 0.012:
            return np.array([pre[0], pre[1], self.push_height])  # lower at the pre-push point
        if near_block and ee[2] < self.travel_height - 0.01:
            return np.array([ee[0], ee[1], self.travel_height])  # lift before moving around the block
        z = self.travel_height if (near_block or to_pre > 0.06) else max(self.push_height, ee[2] - 0.03)
        return np.array([pre[0], pre[1], max(z, self.push_height)])

    def act(self, obs, info):
        ee = np.asarray(info["ee_pos"], np.float64)
        block = np.asarray(info["block_pos"], np.float64)[:2]
        goal = np.asarray(info["goal_pos"], np.float64)[:2]
        target = self._target(ee, block, goal)
        if self.noise:
            self._n = 0.7 * self._n + math.sqrt(1 - 0.49) * self.rng.normal(0.0, self.noise, 3)
        grip = 1.0 - float(obs["state"][6])  # keep the gripper closed: fingers form one pusher
        return self._action(target - ee + self._n, grip)


class MixedPolicy(Policy):
    """Per episode: the task expert with probability ``p_expert``, else random motion.

    Expert episodes are perturbed: with probability ``p_burst`` per step a burst of 2-6 random-motion
    steps replaces the expert, so the data also shows recoveries and off-nominal contacts.
    """

    name = "mixed"

    def __init__(
        self,
        expert: Policy,
        random: RandomPolicy,
        p_expert: float = 0.5,
        p_burst: float = 0.05,
        seed: int | None = None,
    ):
        super().__init__(expert.max_delta_xyz, seed)
        if not (0.0 <= p_expert <= 1.0) or not (0.0 <= p_burst <= 1.0):
            raise ValueError(
                f"p_expert and p_burst: expected values in [0, 1], got {p_expert!r}, {p_burst!r}"
            )
        self.expert, self.random, self.p_expert, self.p_burst = expert, random, p_expert, p_burst
        self.current: Policy = expert
        self._burst = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.current = self.expert if self.rng.random() < self.p_expert else self.random
        self.expert.reset(int(self.rng.integers(2**63 - 1)))
        self.random.reset(int(self.rng.integers(2**63 - 1)))
        self._burst = 0

    def act(self, obs, info):
        if self.current is self.random:
            return self.random.act(obs, info)
        if self._burst == 0 and self.rng.random() < self.p_burst:
            self._burst = int(self.rng.integers(2, 7))
        if self._burst > 0:
            self._burst -= 1
            return self.random.act(obs, info)
        return self.expert.act(obs, info)


def make_policy(task: str, name: str, noise: float | None = None, seed: int | None = None) -> Policy:
    """Build a named exploration policy for ``task`` (``reach``, ``push`` or a Fetch env id).

    ``noise`` sets the expert's xyz noise std in metres (default: 0.005 for ``mixed``/``expert``
    collection, use 0 for a clean expert).
    """
    from vjepa2_ac.envs.fetch import FETCH_ENVS, FETCH_PUSH_GEOMETRY, FETCH_RANDOM_BOX

    kind = FETCH_ENVS.get(task, task)
    if kind not in ("reach", "push"):
        valid = ", ".join(("reach", "push", *FETCH_ENVS))
        raise ValueError(f"task: unknown task {task!r}; valid tasks: {valid}")
    if name not in POLICY_NAMES:
        raise ValueError(f"policy: unknown policy {name!r}; valid policies: {', '.join(POLICY_NAMES)}")
    noise = 0.005 if noise is None else noise
    fetch = task in FETCH_ENVS
    if kind == "reach":
        expert: Policy = ReachExpert(noise=noise, seed=seed)
    else:
        expert = PushExpert(noise=noise, seed=seed, geometry=FETCH_PUSH_GEOMETRY if fetch else None)
    if name == "expert":
        return expert
    # Push is defined with a closed gripper (the fingers form one pusher): random motion keeps it closed.
    random = RandomPolicy(
        seed=seed, p_gripper=0.0 if kind == "push" or fetch else 0.05, box=FETCH_RANDOM_BOX if fetch else None
    )
    if name == "random":
        return random
    return MixedPolicy(expert, random, seed=seed)


def run_expert(env, task: str, obs: dict, info: dict, max_control_steps: int) -> tuple[list[dict], dict]:
    """Step the bare ``env`` with ``task``'s noise-free scripted expert from ``(obs, info)`` until it has
    solved the task and stopped (two successful steps without motion: a pusher stops with the block on the
    goal, not as it enters the success radius), the episode ends, or ``max_control_steps`` pass.

    Returns the observations up to where it stopped (the still repeats dropped) and the last ``info``;
    the env is left where the expert stopped (callers snapshot and restore it)."""
    policy = make_policy(task, "expert", noise=0.0)
    policy.reset(0)
    seen: list[dict] = []
    settled = 0
    for _ in range(max_control_steps):
        obs, _, terminated, _, info = env.step(policy.act(obs, info))
        seen.append(obs)
        still = float(np.abs(info["applied_action"][:3]).max()) < 2e-3
        settled = settled + 1 if info.get("success") and still else 0
        if settled >= 2 or terminated:
            break
    return seen[: len(seen) - settled], info


__all__ = [
    "run_expert",
    "Policy",
    "RandomPolicy",
    "ReachExpert",
    "PushExpert",
    "MixedPolicy",
    "make_policy",
    "POLICY_NAMES",
]
