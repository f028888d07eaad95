"""Gymnasium-Robotics Fetch tasks behind this package's env interface: plan from pixels on FetchReach/Push.

:class:`FetchAdapter` wraps a goal-conditioned ``gymnasium_robotics`` env (``FetchReach-v4``,
``FetchPush-v4``) so that ``collect``, the DROID loader, ``train`` and ``plan`` treat it exactly like the
package's own tasks. It needs the ``fetch`` extra (``pip install -e ".[fetch]"``), which pins the MuJoCo
version gymnasium-robotics 1.4.2 runs with (3.3.0; MuJoCo 4 fails in its reset).

What the adapter defines:

* **Pixels**: a fixed free camera framed on the table (:data:`CAMERA`), rendered at ``image_size``; it is
  named ``exterior_1`` (DROID role ``left``) so data and checkpoints look like the package's own. The
  env's goal marker (red sphere) is drawn, as ``env.render()`` would.
* **State** (7-D, as DROID records): the gripper site's position, the fixed gripper orientation the Fetch
  controller holds (:data:`ORIENTATION`, euler xyz) and the gripper closure in ``[0, 1]`` (1 closed:
  both Fetch tasks block the fingers closed).
* **Actions**: a 7-D state change ``[dx, dy, dz, droll, dpitch, dyaw, dgripper]``, clipped per axis to
  ``±MAX_DELTA`` (5 cm, the Fetch controller's full scale). The Fetch action is
  ``[dx, dy, dz] / 0.05`` (so ``±1`` at 5 cm) and gripper ``-dgripper`` (closing is negative for Fetch;
  ignored while the task blocks the fingers). Rotations are ignored: the Fetch controller holds the
  orientation fixed.
* **Goal image**: at reset the scripted expert (no noise) is run from the start in a copy of the
  simulation until it has solved the task; the frame where it stops is the goal image and its end-effector
  state the goal state. The image therefore shows the task solved by the robot, never a teleported scene.
* **Success**: the env's own ``info["is_success"]`` (achieved goal within 5 cm); ``distance`` is the
  achieved-to-desired goal distance in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "FETCH_ENVS",
    "FetchAdapter",
    "FetchConfig",
    "fetch_available",
    "CAMERA",
    "ORIENTATION",
    "MAX_DELTA",
    "EPISODE_STEPS",
]

# Fetch env id -> the kind of task it is (which scripted expert, which planning defaults).
FETCH_ENVS = {"FetchReach-v4": "reach", "FetchPush-v4": "push"}
EPISODE_STEPS = 50  # the Fetch tasks' own time limit (25 Hz control)
MAX_DELTA = 0.05  # metres per control step at the Fetch action's full scale
FETCH_GRIP_SITE = "robot0:grip"
# Free camera framed on the table from the robot's right: the gripper, block and target stay in view and
# height reads as vertical position in the image.
CAMERA = {"lookat": (1.3, 0.75, 0.45), "azimuth": 90.0, "elevation": -45.0, "distance": 0.8}
CAMERA_NAME = "exterior_1"
# The Fetch controller's fixed gripper quaternion (w, x, y, z) = (1, 0, 1, 0)/sqrt(2): a rotation of
# +90 degrees about y, as euler xyz.
ORIENTATION = np.array([0.0, math.pi / 2.0, 0.0])
# Scripted push geometry of the Fetch scene (metres): block half size, pushing height of the grip site,
# the grip site's distance to the fingers' front when pushing, the height to fly above the block.
FETCH_PUSH_GEOMETRY = {"block_half": 0.025, "push_height": 0.418, "contact": 0.02, "travel_height": 0.50}
# Box the random exploration policy moves in (metres, world frame of the Fetch scene).
FETCH_RANDOM_BOX = (np.array([1.10, 0.45, 0.42]), np.array([1.55, 1.05, 0.70]))
# MjData fields that make a snapshot: restoring them makes the next steps identical.
_SIM_FIELDS = ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "qacc_warmstart", "act_dot")
INSTALL_HINT = 'install the Fetch extra: pip install -e ".[fetch]" (gymnasium-robotics 1.4.2, mujoco 3.3.0)'


def fetch_available() -> tuple[bool, str]:
    """Whether the Fetch tasks can run here, and why not."""
    try:
        import gymnasium_robotics  # noqa: F401
        import mujoco
    except ImportError as e:
        return False, f"gymnasium-robotics is not installed ({e}); {INSTALL_HINT}"
    if not mujoco.__version__.startswith("3."):
        return False, f"gymnasium-robotics 1.4.2 needs mujoco 3.x, found {mujoco.__version__}; {INSTALL_HINT}"
    return True, ""


@dataclass
class FetchConfig:
    """Rendering options of a :class:`FetchAdapter` (``render_images=False`` returns black frames, for
    planners that only need the simulator's distances)."""

    image_size: int = 64
    camera: str = CAMERA_NAME
    render_images: bool = True

    def __post_init__(self) -> None:
        if not (16 <= self.image_size <= 512):
            raise ValueError(f"image_size: expected 16..512 pixels, got {self.image_size}")
        if self.camera != CAMERA_NAME:
            raise ValueError(
                f"camera: the Fetch adapter renders one camera, {CAMERA_NAME!r}; got {self.camera!r}"
            )


class FetchAdapter(gym.Env):
    """A Fetch task with image + 7-D state observations and 7-D delta actions (see the module docstring).

    Observation ``{"image": uint8[H, W, 3], "state": float32[7]}``; ``info`` (reset and step): ``success``,
    ``is_success``, ``distance``, ``goal_state``, ``goal_pos`` (the env's desired goal), ``ee_pos``; Push
    adds ``block_pos``. Episodes end by the registered time limit (50 steps), never by termination.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, env_id: str, render_mode: str | None = "rgb_array", **kwargs: Any) -> None:
        if env_id not in FETCH_ENVS:
            raise ValueError(f"env_id: unknown Fetch env {env_id!r}; valid: {', '.join(FETCH_ENVS)}")
        ok, why = fetch_available()
        if not ok:
            raise ImportError(f"{env_id}: {why}")
        import gymnasium_robotics
        import mujoco

        gym.register_envs(gymnasium_robotics)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: unsupported {render_mode!r}; valid: rgb_array or None")
        self.render_mode = render_mode
        self.env_id, self.task_name = env_id, FETCH_ENVS[env_id]
        self.config = FetchConfig(**kwargs)
        self.inner = gym.make(env_id).unwrapped  # no wrappers: this adapter steps it directly
        self.model, self.data = self.inner.model, self.inner.data
        self.success_threshold = float(self.inner.distance_threshold)
        self._mj = mujoco
        self._grip = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, FETCH_GRIP_SITE)
        self._fingers = [
            int(self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n)])
            for n in ("robot0:l_gripper_finger_joint", "robot0:r_gripper_finger_joint")
        ]
        self._finger_range = float(self.model.jnt_range[
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "robot0:l_gripper_finger_joint")
        ][1])  # fmt: skip
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.lookat[:] = CAMERA["lookat"]
        self._camera.azimuth, self._camera.elevation = CAMERA["azimuth"], CAMERA["elevation"]
        self._camera.distance = CAMERA["distance"]
        self._renderer = None
        # Rotations are accepted and ignored (the Fetch controller holds the orientation).
        self.bounds = np.array([MAX_DELTA] * 3 + [math.pi] * 3 + [1.0])
        self.action_space = spaces.Box(-self.bounds.astype(np.float32), self.bounds.astype(np.float32))
        size = self.config.image_size
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(
                    np.array([0.5, 0.0, 0.0, -math.pi, -math.pi, -math.pi, 0.0], np.float32),
                    np.array([2.0, 1.5, 1.2, math.pi, math.pi, math.pi, 1.0], np.float32),
                ),
            }
        )
        self._ready = False
        self._goal_image: np.ndarray | None = None
        self._goal_state: np.ndarray | None = None
        self._goal_solved = False

    # ---- state ------------------------------------------------------------------------------------------
    @property
    def dt(self) -> float:
        return float(self.inner.dt)

    def ee_state(self) -> np.ndarray:
        """Measured 7-D state ``[xyz, euler xyz, closure]`` (float64)."""
        opening = float(np.sum(self.data.qpos[self._fingers])) / (2.0 * self._finger_range)
        closure = min(max(1.0 - opening, 0.0), 1.0)
        return np.concatenate([self.data.site_xpos[self._grip], ORIENTATION, [closure]])

    def block_pose(self) -> np.ndarray | None:
        """Block ``[x, y, z, qw, qx, qy, qz]`` (Push) or ``None``."""
        if self.task_name != "push":
            return None
        return self.inner._utils.get_joint_qpos(self.model, self.data, "object0:joint").copy()

    def _achieved(self) -> np.ndarray:
        """The env's achieved goal now (the gripper or the block position)."""
        return self.inner._get_obs()["achieved_goal"]

    def _info(self, achieved: np.ndarray, is_success: float | None = None) -> dict[str, Any]:
        """``info`` given the achieved goal of the env's last observation."""
        distance = float(np.linalg.norm(achieved - self.inner.goal))
        if is_success is None:
            is_success = float(distance < self.success_threshold)
        state = self.ee_state()
        info = {
            "success": bool(is_success),
            "is_success": float(is_success),
            "distance": distance,
            "goal_state": self.goal_state().astype(np.float32),
            "goal_pos": np.asarray(self.inner.goal, np.float32).copy(),
            "ee_pos": state[:3].astype(np.float32),
        }
        if self.task_name == "push":
            info["block_pos"] = self.block_pose()[:3].astype(np.float32)
        return info

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._render(), "state": self.ee_state().astype(np.float32)}

    # ---- gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the Fetch env (its own start and goal distribution) and render the expert's goal image."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options: {self.env_id} takes none, got {sorted(options)}")
        try:
            inner_obs, _ = self.inner.reset(seed=seed)
        except AssertionError as e:  # gymnasium-robotics 1.4.2 under MuJoCo 4
            raise RuntimeError(f"{self.env_id}: reset failed ({e!r}); {INSTALL_HINT}") from e
        self._ready = True
        self._goal_image, self._goal_state = None, None
        self.inner._render_callback()  # the goal marker: placed once per episode
        self._solve_goal()
        return self._obs(), self._info(inner_obs["achieved_goal"])

    def step(self, action):
        """Apply one 7-D delta action (see the module docstring for the mapping)."""
        if not self._ready:
            raise RuntimeError("step() called before reset()")
        from vjepa2_ac.envs.tasks import validate_action

        a = validate_action(action)
        applied = np.clip(a, -self.bounds, self.bounds)
        applied[3:6] = 0.0
        before = self.ee_state()
        inner_obs, _, _, _, inner_info = self.inner.step(fetch_action(applied))
        info = self._info(inner_obs["achieved_goal"], float(inner_info["is_success"]))
        commanded = before + applied
        commanded[3:6] = ORIENTATION
        info.update(
            action_clipped=bool(np.any(np.abs(a) > self.bounds)),
            applied_action=applied.astype(np.float32),
            workspace_clipped=False,
            commanded_state=commanded.astype(np.float32),
        )
        return self._obs(), -info["distance"], False, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.inner.close()

    # ---- rendering --------------------------------------------------------------------------------------
    def _render(self) -> np.ndarray:
        size = self.config.image_size
        if not self.config.render_images:
            return np.zeros((size, size, 3), np.uint8)
        if self._renderer is None:
            self._renderer = self._mj.Renderer(self.model, height=size, width=size)
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render().copy()

    def _check_camera(self, camera: str) -> None:
        if camera != CAMERA_NAME:
            raise ValueError(f"camera: unknown camera {camera!r}; the Fetch adapter renders {CAMERA_NAME!r}")

    def render_camera(self, camera: str, goal: bool = False) -> np.ndarray:
        """The current image (or the goal image) of ``camera``."""
        self._check_camera(camera)
        return self.goal_image() if goal else self._render()

    def camera_extrinsics(self, camera: str) -> np.ndarray:
        """Camera pose ``[x, y, z, roll, pitch, yaw]`` in the world frame, OpenCV axes (x right, y down,
        z forward), euler angles in the :mod:`vjepa2_ac.pose` convention."""
        from vjepa2_ac.envs.tasks import matrix_to_euler

        self._check_camera(camera)
        az, el = math.radians(CAMERA["azimuth"]), math.radians(CAMERA["elevation"])
        forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        position = np.asarray(CAMERA["lookat"]) - CAMERA["distance"] * forward
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.concatenate([position, matrix_to_euler(np.stack([right, down, forward], axis=1))])

    def camera_intrinsics(self, camera: str) -> np.ndarray:
        """``[3, 3]`` pinhole matrix of ``camera`` at this env's image size."""
        self._check_camera(camera)
        size = self.config.image_size
        f = 0.5 * size / math.tan(math.radians(float(self.model.vis.global_.fovy)) / 2.0)
        return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])

    # ---- snapshots and goals -------------------------------------------------------------------------------
    def get_sim_state(self) -> dict[str, Any]:
        """Snapshot of the simulation; :meth:`set_sim_state` makes the next steps identical."""
        if not self._ready:
            raise RuntimeError("get_sim_state() called before reset()")
        snap = {k: getattr(self.data, k).copy() for k in _SIM_FIELDS}
        snap["time"] = float(self.data.time)
        return {"data": snap, "goal": np.array(self.inner.goal, copy=True)}

    def set_sim_state(self, snap: dict[str, Any]) -> None:
        """Restore a :meth:`get_sim_state` snapshot taken in the same episode."""
        if not isinstance(snap, dict) or set(snap) != {"data", "goal"}:
            raise ValueError("set_sim_state: expected a snapshot from FetchAdapter.get_sim_state()")
        for k in _SIM_FIELDS:
            getattr(self.data, k)[:] = snap["data"][k]
        self.data.time = snap["data"]["time"]
        self.inner.goal = np.array(snap["goal"], copy=True)
        self._mj.mj_forward(self.model, self.data)

    def goal_state(self) -> np.ndarray:
        """7-D state where the scripted expert solved the episode (float64)."""
        if not self._ready:
            raise RuntimeError("goal_state() called before reset()")
        if self._goal_state is None:  # while the expert runs: the desired goal itself
            return np.concatenate([np.asarray(self.inner.goal, np.float64), ORIENTATION, [1.0]])
        return self._goal_state.copy()

    def goal_image(self) -> np.ndarray:
        """uint8 ``[H, W, 3]``: the scene as the scripted expert left it, the task solved."""
        if not self._ready:
            raise RuntimeError("goal_image() called before reset()")
        if self._goal_image is None:
            self._solve_goal()
        return self._goal_image.copy()

    def _solve_goal(self) -> None:
        """Run the noise-free expert in a copy of the episode until it has settled on the goal; keep the
        frame and state where it stopped; restore the episode."""
        from vjepa2_ac.envs.policies import run_expert

        snap = self.get_sim_state()
        keep = self.config.render_images
        self.config.render_images = False
        try:
            obs = {"state": self.ee_state().astype(np.float32)}
            _, info = run_expert(self, self.env_id, obs, self._info(self._achieved()), 4 * EPISODE_STEPS)
            self.config.render_images = keep
            state = self.ee_state()
            image = self._render()
        finally:
            self.config.render_images = keep
            self.set_sim_state(snap)
        self._goal_state, self._goal_image = state, image
        self._goal_solved = bool(info["success"])


def fetch_action(delta: np.ndarray) -> np.ndarray:
    """The Fetch action ``float32[4]`` of a (clipped) 7-D delta: ``[dxyz / MAX_DELTA, -dgripper]``."""
    a = np.concatenate([np.asarray(delta[:3], np.float64) / MAX_DELTA, [-float(delta[6])]])
    return np.clip(a, -1.0, 1.0).astype(np.float32)
