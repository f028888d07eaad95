"""Gymnasium reach and push tasks on the MuJoCo tabletop scene of :mod:`vjepa2_ac.envs.scene`.

Both tasks share :class:`ArmEnv`: a Cartesian-controlled arm commanded with DROID-like 7-D delta actions
``[dx, dy, dz, droll, dpitch, dyaw, dgripper]`` and observed through a fixed exterior camera plus the 7-D
state ``[x, y, z, roll, pitch, yaw, gripper]`` (conventions of :mod:`vjepa2_ac.pose`).

One ``step`` turns the action into a commanded pose with :func:`vjepa2_ac.pose.apply_action` applied to
the *measured* state (so the state change tracks the action and tracking errors never wind up), clips
it to the workspace, then moves the mocap target there along a smooth path over the physics substeps
and lets the welded hand settle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from vjepa2_ac.envs import scene

# EE workspace (TCP position) and orientation limits of the commanded pose.
WORKSPACE_LOW = np.array([0.25, -0.35, 0.01])
WORKSPACE_HIGH = np.array([0.80, 0.35, 0.40])
# roll, pitch limited (the hand stays roughly top-down); yaw half a turn.
EULER_LIMIT = np.array([0.4, 0.4, math.pi / 2])
# Fraction of the physics substeps during which the mocap target moves; the rest lets the weld settle.
MOVE_FRACTION = 0.6


# ---- pose maths in numpy (float64, one pose at a time) ---------------------------------------------------
# Scalar mirrors of vjepa2_ac.pose (same conventions, including scipy's gimbal-lock choice); calling the
# batched torch versions costs ~1 ms per env step in tensor overhead. tests/test_envs.py checks that both
# agree to 1e-12.
def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """``[3]`` extrinsic xyz euler angles -> ``[3, 3]`` rotation ``Rz(yaw) Ry(pitch) Rx(roll)``."""
    a, b, c = (float(v) for v in angles)
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    return np.array(
        [
            [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
            [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
            [-sb, cb * sa, cb * ca],
        ]
    )


def matrix_to_euler(matrix: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation -> ``[3]`` extrinsic xyz euler angles (roll, yaw in (-pi, pi], |pitch| <= pi/2)."""
    r = np.asarray(matrix, np.float64)
    cb = math.hypot(r[0, 0], r[1, 0])
    pitch = math.atan2(-r[2, 0], cb)
    if cb < 1e-6:  # gimbal lock: yaw := 0, roll carries the rest (as scipy and vjepa2_ac.pose)
        return np.array([math.atan2(math.copysign(1.0, -r[2, 0]) * r[0, 1], r[1, 1]), pitch, 0.0])
    return np.array([math.atan2(r[2, 1], r[2, 2]), pitch, math.atan2(r[1, 0], r[0, 0])])


def apply_action_np(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """``[7]`` pose + ``[7]`` action -> ``[7]`` pose, as :func:`vjepa2_ac.pose.apply_action`."""
    state = np.asarray(state, np.float64)
    action = np.asarray(action, np.float64)
    rot = euler_to_matrix(action[3:6]) @ euler_to_matrix(state[3:6])
    grip = min(max(state[6] + action[6], 0.0), 1.0)
    return np.concatenate([state[:3] + action[:3], matrix_to_euler(rot), [grip]])


def _matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(matrix, np.float64).reshape(9))
    return quat


@dataclass
class ArmEnvConfig:
    """Options shared by the tasks (passed as ``gymnasium.make`` keyword arguments).

    Attributes:
        image_size: side of the square RGB observation in pixels (16..512; 64-256 intended).
        camera: rendering camera, one of :data:`vjepa2_ac.envs.scene.CAMERA_NAMES`.
        max_delta_xyz: per-step bound on ``|dx|, |dy|, |dz|`` in metres.
        max_delta_rot: per-step bound on each euler delta in radians.
        max_delta_gripper: per-step bound on ``|dgripper|``.
        control_hz: control (and video) rate; DROID records at 15 Hz.
        physics_substeps: MuJoCo steps per env step (timestep = 1 / (control_hz * substeps)).
        terminate_on_success: end the episode (``terminated=True``) once successful.
        render_images: render the camera image; ``False`` returns black images (fast state-only
            evaluation of scripted policies).
    """

    image_size: int = 64
    camera: str = "exterior_1"
    max_delta_xyz: float = 0.05
    max_delta_rot: float = 0.2
    max_delta_gripper: float = 1.0
    control_hz: float = 15.0
    physics_substeps: int = 32
    terminate_on_success: bool = False
    render_images: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, (int, np.integer)) or not (16 <= self.image_size <= 512):
            raise ValueError(f"image_size: expected an integer in 16..512 pixels, got {self.image_size!r}")
        if self.camera not in scene.CAMERA_NAMES:
            raise ValueError(
                f"camera: unknown camera {self.camera!r}; valid cameras: {', '.join(scene.CAMERA_NAMES)}"
            )
        for name, hi in (("max_delta_xyz", 0.2), ("max_delta_rot", math.pi), ("max_delta_gripper", 1.0)):
            value = getattr(self, name)
            if not (0.0 < value <= hi):
                raise ValueError(f"{name}: expected a value in (0, {hi:.4g}], got {value!r}")
        if not (1.0 <= self.control_hz <= 100.0):
            raise ValueError(f"control_hz: expected 1..100 Hz, got {self.control_hz!r}")
        if not (4 <= self.physics_substeps <= 500):
            raise ValueError(f"physics_substeps: expected 4..500, got {self.physics_substeps!r}")
        if 1.0 / (self.control_hz * self.physics_substeps) > 0.005:
            raise ValueError(
                "physics timestep 1/(control_hz*physics_substeps) must be <= 5 ms for stable contacts; "
                f"got {1000.0 / (self.control_hz * self.physics_substeps):.2f} ms"
            )


class ArmEnv(gym.Env):
    """Base tabletop env: Cartesian 7-D delta control, image + state observations.

    Subclasses define the episode distribution (:meth:`_sample_episode`), the goal configuration and
    success. Observation: ``{"image": uint8[H, W, 3], "state": float32[7]}``. Action: ``float32[7]``
    deltas, clipped per step to ``[-bound, bound]`` (``info["action_clipped"]``); non-finite actions
    raise ``ValueError``. The commanded pose is also clipped to the workspace
    (``info["workspace_clipped"]``).

    ``info`` (reset and step): ``success``, ``distance`` (metres, task-specific), ``goal_state`` (the EE
    state of the goal configuration), ``goal_pos``, ``ee_pos``; Push adds ``block_pos``. Reset info also
    carries ``goal_image`` (as :meth:`goal_image`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    task_name = ""
    success_threshold = 0.0
    _option_keys: tuple[str, ...] = ()

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            valid = ", ".join(self.metadata["render_modes"])
            raise ValueError(f"render_mode: unsupported {render_mode!r}; valid: {valid} or None")
        self.render_mode = render_mode
        self.config = ArmEnvConfig(**kwargs)
        cfg = self.config
        self.metadata = {**self.metadata, "render_fps": cfg.control_hz}
        timestep = 1.0 / (cfg.control_hz * cfg.physics_substeps)
        spec = scene.SceneSpec(
            with_block=self._with_block, timestep=timestep, max_image_size=max(256, cfg.image_size)
        )
        self.model = mujoco.MjModel.from_xml_string(scene.build_mjcf(spec))
        self.data = mujoco.MjData(self.model)
        self._goal_data = mujoco.MjData(self.model)
        self._renderer: mujoco.Renderer | None = None
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, cfg.camera)
        self._ids = self._lookup_ids()

        self.bounds = np.array([cfg.max_delta_xyz] * 3 + [cfg.max_delta_rot] * 3 + [cfg.max_delta_gripper])
        self.action_space = spaces.Box(
            -self.bounds.astype(np.float32), self.bounds.astype(np.float32), (7,), np.float32
        )
        margin = 0.15
        state_low = np.concatenate([WORKSPACE_LOW - margin, [-math.pi] * 3, [0.0]]).astype(np.float32)
        state_high = np.concatenate([WORKSPACE_HIGH + margin, [math.pi] * 3, [1.0]]).astype(np.float32)
        size = cfg.image_size
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(state_low, state_high, (7,), np.float32),
            }
        )
        self._episode: dict[str, np.ndarray] | None = None
        self._goal_image: np.ndarray | None = None
        self._goal_state: np.ndarray | None = None
        # The measured state is read several times per step; cache it until the simulation moves.
        self._state_cache: np.ndarray | None = None
        self._cmd_rot = np.eye(3)

    # ---- model bookkeeping -------------------------------------------------------------------------
    _with_block = False

    def _lookup_ids(self) -> dict[str, int]:
        m = self.model

        def body(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)

        ids = {
            "hand": body("hand"),
            "tcp": mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "tcp"),
            "hand_qpos": int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "hand")]),
            "hand_dof": int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "hand")]),
            "finger_qpos": [
                int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)])
                for n in ("finger_left", "finger_right")
            ],
        }
        for name in ("ee_target", "upper_arm", "forearm", "ee_shadow"):
            ids[f"mocap_{name}"] = int(m.body_mocapid[body(name)])
        if self._with_block:
            ids["block"] = body("block")
            ids["block_qpos"] = int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "block")])
            ids["block_dof"] = int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "block")])
        return ids

    @property
    def dt(self) -> float:
        """Seconds per env step."""
        return 1.0 / self.config.control_hz

    # ---- state access --------------------------------------------------------------------------------
    def _state_of(self, data: mujoco.MjData) -> np.ndarray:
        """Measured 7-D EE state ``[xyz, euler xyz, gripper]`` (float64) of ``data`` (after kinematics)."""
        tcp = data.site_xpos[self._ids["tcp"]]
        rot = data.xmat[self._ids["hand"]].reshape(3, 3)
        closing = float(np.mean(data.qpos[self._ids["finger_qpos"]]))
        grip = min(max(closing / scene.FINGER_TRAVEL, 0.0), 1.0)
        return np.concatenate([tcp, matrix_to_euler(rot), [grip]])

    def ee_state(self) -> np.ndarray:
        """Current measured EE state, float64 ``[7]``."""
        if self._state_cache is None:
            self._state_cache = self._state_of(self.data)
        return self._state_cache.copy()

    def block_pose(self) -> np.ndarray | None:
        """Block ``[x, y, z, qw, qx, qy, qz]`` (Push) or ``None``."""
        if not self._with_block:
            return None
        a = self._ids["block_qpos"]
        return self.data.qpos[a : a + 7].copy()

    # ---- configuration setters ---------------------------------------------------------------------
    def _set_robot(self, data: mujoco.MjData, state: np.ndarray) -> None:
        """Teleport hand, mocap target and fingers of ``data`` to the 7-D ``state`` (no kinematics)."""
        state = np.asarray(state, np.float64)
        quat = _matrix_to_quat(euler_to_matrix(state[3:6]))
        a, dof = self._ids["hand_qpos"], self._ids["hand_dof"]
        data.qpos[a : a + 3] = state[:3]
        data.qpos[a + 3 : a + 7] = quat
        data.qvel[dof : dof + 6] = 0.0
        mid = self._ids["mocap_ee_target"]
        data.mocap_pos[mid] = state[:3]
        data.mocap_quat[mid] = quat
        closing = float(np.clip(state[6], 0.0, 1.0)) * scene.FINGER_TRAVEL
        data.qpos[self._ids["finger_qpos"]] = closing
        data.ctrl[:] = closing

    def _set_block(self, data: mujoco.MjData, xy: np.ndarray, yaw: float) -> None:
        a, dof = self._ids["block_qpos"], self._ids["block_dof"]
        data.qpos[a : a + 3] = (xy[0], xy[1], scene.BLOCK_HALF)
        data.qpos[a + 3 : a + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        data.qvel[dof : dof + 6] = 0.0

    def _pose_visuals(self, data: mujoco.MjData) -> None:
        """Pose the kinematic arm links (two-link IK to the wrist) and the fake shadow; runs kinematics."""
        mujoco.mj_kinematics(self.model, data)
        tcp = data.site_xpos[self._ids["tcp"]]
        rot = data.xmat[self._ids["hand"]].reshape(3, 3)
        wrist = tcp + rot[:, 2] * scene.WRIST_OFFSET
        shoulder = scene.SHOULDER
        l1, l2 = scene.UPPER_ARM_LENGTH, scene.FOREARM_LENGTH
        v = wrist - shoulder
        dist = float(np.linalg.norm(v))
        u = v / max(dist, 1e-9)
        d = min(max(dist, abs(l1 - l2) + 1e-4), l1 + l2 - 1e-6)
        along = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
        height = math.sqrt(max(l1 * l1 - along * along, 0.0))
        # Elbow up: offset in the vertical plane through shoulder and wrist.
        n = np.array([0.0, 0.0, 1.0]) - u[2] * u
        if np.linalg.norm(n) < 1e-6:
            n = np.array([-1.0, 0.0, 0.0])
        n /= np.linalg.norm(n)
        elbow = shoulder + along * u + height * n
        quat = np.empty(4)
        mid = self._ids["mocap_upper_arm"]
        data.mocap_pos[mid] = shoulder
        mujoco.mju_quatZ2Vec(quat, elbow - shoulder)
        data.mocap_quat[mid] = quat
        mid = self._ids["mocap_forearm"]
        data.mocap_pos[mid] = elbow
        mujoco.mju_quatZ2Vec(quat, wrist - elbow)
        data.mocap_quat[mid] = quat
        data.mocap_pos[self._ids["mocap_ee_shadow"]] = (tcp[0], tcp[1], 0.0005)
        mujoco.mj_forward(self.model, data)
        if data is self.data:
            self._state_cache = None

    # ---- task hooks --------------------------------------------------------------------------------
    def _sample_episode(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _episode_from_options(self, episode: dict[str, np.ndarray], options: dict) -> dict[str, np.ndarray]:
        unknown = sorted(set(options) - set(self._option_keys))
        if unknown:
            raise ValueError(
                f"reset options: unknown key(s) {unknown}; valid keys for {self.task_name}: "
                f"{', '.join(self._option_keys) or '(none)'}"
            )
        return episode

    def _apply_start(self, data: mujoco.MjData) -> None:
        raise NotImplementedError

    def _apply_goal(self, data: mujoco.MjData) -> None:
        raise NotImplementedError

    def _distance(self) -> float:
        raise NotImplementedError

    def _task_info(self) -> dict[str, Any]:
        return {}

    # ---- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Sample a new episode (``options`` may pin parts of it, see the task class)."""
        super().reset(seed=seed)
        episode = self._sample_episode(self.np_random)
        if options:
            episode = self._episode_from_options(episode, dict(options))
        self._episode = episode
        self._goal_image = None
        self._goal_state = None
        mujoco.mj_resetData(self.model, self.data)
        self._apply_start(self.data)
        self._cmd_rot = euler_to_matrix(self._episode["ee_start"][3:6])
        self._pose_visuals(self.data)
        # Let contacts settle (the block rests on the table) with the hand held in place.
        mujoco.mj_step(self.model, self.data, nstep=10)
        self._pose_visuals(self.data)
        info = self._info()
        if self.config.render_images:
            info["goal_image"] = self.goal_image()
        return self._obs(), info

    def step(self, action):
        """Apply one 7-D delta action; returns ``(obs, reward, terminated, truncated, info)``.

        Reward is the negative task distance in metres (dense, for convenience; planners ignore it).
        """
        if self._episode is None:
            raise RuntimeError("step() called before reset()")
        a = validate_action(action)
        applied = np.clip(a, -self.bounds, self.bounds)
        action_clipped = bool(np.any(applied != a))
        state = self.ee_state()
        target = apply_action_np(state, applied)
        # Orientation: rotate the previously *commanded* orientation, so that small weld errors under
        # gripper or contact torques do not accumulate into a drift (the position uses the measured
        # state, so a blocked hand never winds up).
        target[3:6] = matrix_to_euler(euler_to_matrix(applied[3:6]) @ self._cmd_rot)
        commanded = target.copy()
        commanded[:3] = np.clip(commanded[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        commanded[3:6] = np.clip(commanded[3:6], -EULER_LIMIT, EULER_LIMIT)
        self._cmd_rot = euler_to_matrix(commanded[3:6])
        workspace_clipped = bool(np.any(np.abs(commanded - target) > 1e-12))
        self._simulate(commanded)
        info = self._info()
        info.update(
            action_clipped=action_clipped,
            applied_action=applied.astype(np.float32),
            workspace_clipped=workspace_clipped,
            commanded_state=commanded.astype(np.float32),
        )
        terminated = bool(self.config.terminate_on_success and info["success"])
        return self._obs(), -float(info["distance"]), terminated, False, info

    def _simulate(self, commanded: np.ndarray) -> None:
        """Move the mocap target smoothly from the measured pose to ``commanded`` and step physics."""
        m, d = self.model, self.data
        mid = self._ids["mocap_ee_target"]
        start_pos = d.site_xpos[self._ids["tcp"]].copy()
        start_quat = d.xquat[self._ids["hand"]].copy()
        goal_pos = commanded[:3]
        goal_quat = _matrix_to_quat(euler_to_matrix(commanded[3:6]))
        if float(np.dot(start_quat, goal_quat)) < 0.0:
            goal_quat = -goal_quat
        d.ctrl[:] = float(commanded[6]) * scene.FINGER_TRAVEL
        n = self.config.physics_substeps
        # Move at constant speed during the first MOVE_FRACTION of the step, then hold so the weld settles
        # and the reached pose matches the commanded one (peak speed 1.25 m/s for a 5 cm step).
        n_move = max(1, int(round(MOVE_FRACTION * n)))
        chunk = 2
        for i in range(0, n, chunk):
            s = min(1.0, (i + chunk) / n_move)
            d.mocap_pos[mid] = start_pos + s * (goal_pos - start_pos)
            q = start_quat + s * (goal_quat - start_quat)
            d.mocap_quat[mid] = q / np.linalg.norm(q)
            mujoco.mj_step(m, d, nstep=min(chunk, n - i))
        self._pose_visuals(d)

    def _info(self) -> dict[str, Any]:
        state = self.ee_state()
        distance = self._distance()
        info = {
            "success": bool(distance < self.success_threshold),
            "distance": float(distance),
            "goal_state": self.goal_state().astype(np.float32),
            "goal_pos": self._episode["goal"].astype(np.float32).copy(),
            "ee_pos": state[:3].astype(np.float32),
        }
        info.update(self._task_info())
        return info

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._render(self.data), "state": self.ee_state().astype(np.float32)}

    def _render(self, data: mujoco.MjData) -> np.ndarray:
        size = self.config.image_size
        if not self.config.render_images:
            return np.zeros((size, size, 3), np.uint8)
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=size, width=size)
        self._renderer.update_scene(data, camera=self._camera_id)
        return self._renderer.render().copy()

    def render(self) -> np.ndarray | None:
        """The current camera image (``rgb_array``), ``uint8[H, W, 3]``; ``None`` without a render mode."""
        if self.render_mode != "rgb_array":
            return None
        size = self.config.image_size
        if not self.config.render_images:
            return np.zeros((size, size, 3), np.uint8)
        return self._render(self.data)

    _SIM_FIELDS = ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "qacc_warmstart")

    def get_sim_state(self) -> dict[str, Any]:
        """Snapshot of the full simulation (physics and controller state), e.g. for oracle planners.

        Restoring it with :meth:`set_sim_state` makes the next steps bit-identical to stepping from here.
        """
        if self._episode is None:
            raise RuntimeError("get_sim_state() called before reset()")
        snap: dict[str, Any] = {k: getattr(self.data, k).copy() for k in self._SIM_FIELDS}
        snap["time"] = float(self.data.time)
        snap["cmd_rot"] = self._cmd_rot.copy()
        return snap

    def set_sim_state(self, snap: dict[str, Any]) -> None:
        """Restore a :meth:`get_sim_state` snapshot taken in the same episode."""
        missing = [k for k in (*self._SIM_FIELDS, "time", "cmd_rot") if k not in snap]
        if missing:
            raise ValueError(f"set_sim_state: snapshot lacks {missing}; take it with get_sim_state()")
        for k in self._SIM_FIELDS:
            getattr(self.data, k)[:] = snap[k]
        self.data.time = snap["time"]
        self._cmd_rot = np.array(snap["cmd_rot"], np.float64)
        self._pose_visuals(self.data)

    def _camera_id_of(self, camera: str) -> int:
        if camera not in scene.CAMERA_NAMES:
            valid = ", ".join(scene.CAMERA_NAMES)
            raise ValueError(f"camera: unknown camera {camera!r}; valid cameras: {valid}")
        return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)

    def render_camera(self, camera: str, goal: bool = False) -> np.ndarray:
        """Render the current scene (or the goal configuration) from another camera, same image size."""
        cam = self._camera_id_of(camera)
        size = self.config.image_size
        if not self.config.render_images:
            return np.zeros((size, size, 3), np.uint8)
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=size, width=size)
        data = self.data
        if goal:
            self._pose_goal_data()
            data = self._goal_data
        self._renderer.update_scene(data, camera=cam)
        return self._renderer.render().copy()

    def camera_extrinsics(self, camera: str) -> np.ndarray:
        """Camera pose ``[x, y, z, roll, pitch, yaw]`` in the robot base frame, OpenCV axes.

        OpenCV camera axes (x right, y down, z forward), i.e. MuJoCo's camera frame (x right, y up,
        looking along -z) rotated by pi about x; euler angles in the :mod:`vjepa2_ac.pose` convention.
        """
        cam = self._camera_id_of(camera)
        rot = self.data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return np.concatenate([self.data.cam_xpos[cam], matrix_to_euler(rot)])

    def camera_intrinsics(self, camera: str) -> np.ndarray:
        """``[3, 3]`` pinhole matrix ``K`` of ``camera`` at this env's image size (pixel centres at .5)."""
        cam = self._camera_id_of(camera)
        size = self.config.image_size
        f = 0.5 * size / math.tan(math.radians(float(self.model.cam_fovy[cam])) / 2.0)
        return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])

    def goal_state(self) -> np.ndarray:
        """7-D EE state of the goal configuration (float64)."""
        if self._episode is None:
            raise RuntimeError("goal_state() called before reset()")
        if self._goal_state is None:
            self._pose_goal_data()
            self._goal_state = self._state_of(self._goal_data)
        return self._goal_state.copy()

    def _pose_goal_data(self) -> None:
        """Put the scratch ``_goal_data`` in the goal configuration (arm visuals included)."""
        mujoco.mj_resetData(self.model, self._goal_data)
        self._apply_goal(self._goal_data)
        self._pose_visuals(self._goal_data)

    def goal_image(self) -> np.ndarray:
        """uint8 ``[H, W, 3]`` image of the scene in the goal configuration (same camera and size)."""
        if self._episode is None:
            raise RuntimeError("goal_image() called before reset()")
        if self._goal_image is None:
            size = self.config.image_size
            if not self.config.render_images:
                self._goal_image = np.zeros((size, size, 3), np.uint8)
            else:
                self._pose_goal_data()
                self._goal_image = self._render(self._goal_data)
        return self._goal_image.copy()

    def render_state(self, state: np.ndarray, block_xy: np.ndarray | None = None) -> np.ndarray:
        """Render the scene with the EE teleported to ``state`` (and the block to ``block_xy`` if given).

        Uses a scratch copy of the simulation; the episode is not changed. Useful for energy landscapes.
        """
        scratch = mujoco.MjData(self.model)
        scratch.qpos[:] = self.data.qpos
        scratch.mocap_pos[:] = self.data.mocap_pos
        scratch.mocap_quat[:] = self.data.mocap_quat
        self._set_robot(scratch, state)
        if block_xy is not None:
            if not self._with_block:
                raise ValueError(f"block_xy: the {self.task_name} task has no block")
            self._set_block(scratch, np.asarray(block_xy, np.float64), 0.0)
        self._pose_visuals(scratch)
        return self._render(scratch)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def validate_action(action: Any) -> np.ndarray:
    """The 7-D delta action as float64, or a ValueError naming what is wrong with it."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (7,):
        raise ValueError(
            f"action: expected shape (7,) [dx, dy, dz, droll, dpitch, dyaw, dgripper], got {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action: contains NaN or inf, refusing to step: {a.tolist()}")
    return a


def _as_vector(name: str, value: Any, sizes: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] not in sizes or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"reset options[{name!r}]: expected a finite vector of length {sizes}, got {value!r}"
        )
    return arr


def _uniform(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + (high - low) * rng.random(len(low))


# Poses are top-down (identity orientation); only the gripper differs between tasks.
_NEUTRAL_EULER = np.zeros(3)


class ReachEnv(ArmEnv):
    """Reach: bring the TCP to a goal position; success within 4 cm.

    Start and goal TCP positions are uniform in ``[0.35, 0.70] x [-0.25, 0.25] x [0.05, 0.30]`` and at
    least 10 cm apart; the gripper starts open. The goal image shows the EE at the goal (same
    orientation and gripper). Reset ``options``: ``ee_start`` (xyz or 7-D state), ``goal`` (xyz).
    """

    task_name = "reach"
    success_threshold = 0.04
    min_start_goal_distance = 0.10
    SAMPLE_LOW = np.array([0.35, -0.25, 0.05])
    SAMPLE_HIGH = np.array([0.70, 0.25, 0.30])
    _option_keys = ("ee_start", "goal")

    def _sample_episode(self, rng):
        start = _uniform(rng, self.SAMPLE_LOW, self.SAMPLE_HIGH)
        while True:
            goal = _uniform(rng, self.SAMPLE_LOW, self.SAMPLE_HIGH)
            if np.linalg.norm(goal - start) >= self.min_start_goal_distance:
                break
        return {"ee_start": np.concatenate([start, _NEUTRAL_EULER, [0.0]]), "goal": goal}

    def _episode_from_options(self, episode, options):
        episode = super()._episode_from_options(episode, options)
        if "ee_start" in options:
            v = _as_vector("ee_start", options["ee_start"], (3, 7))
            episode["ee_start"] = v if v.shape[0] == 7 else np.concatenate([v, episode["ee_start"][3:]])
        if "goal" in options:
            episode["goal"] = _as_vector("goal", options["goal"], (3,))
        return episode

    def _apply_start(self, data):
        self._set_robot(data, self._episode["ee_start"])

    def _apply_goal(self, data):
        start = self._episode["ee_start"]
        self._set_robot(data, np.concatenate([self._episode["goal"], start[3:]]))

    def _distance(self):
        return float(np.linalg.norm(self.data.site_xpos[self._ids["tcp"]] - self._episode["goal"]))


class PushEnv(ArmEnv):
    """Push: push the block to a goal position on the table; success when its centre is within 5 cm.

    The block (5 cm cube, random yaw) starts uniform in ``x ∈ [0.42, 0.62], y ∈ [-0.15, 0.15]``; the goal
    is 10-20 cm away in a random direction (inside ``x ∈ [0.36, 0.70], |y| ≤ 0.22``). The EE starts at
    8-25 cm height, at least 10 cm (horizontally) from the block, gripper closed. The goal image shows the
    block at the goal with the EE just behind it on the push line at pushing height (where a successful
    push ends); ``goal_arm="home"`` instead retracts the EE to a fixed home pose.
    Reset ``options``: ``ee_start``, ``block_start`` (xy or xy+yaw), ``goal`` (xy).
    """

    task_name = "push"
    success_threshold = 0.05
    _with_block = True
    _option_keys = ("ee_start", "block_start", "goal")
    BLOCK_LOW = np.array([0.42, -0.15])
    BLOCK_HIGH = np.array([0.62, 0.15])
    GOAL_LOW = np.array([0.36, -0.22])
    GOAL_HIGH = np.array([0.70, 0.22])
    EE_LOW = np.array([0.35, -0.25, 0.08])
    EE_HIGH = np.array([0.70, 0.25, 0.25])
    HOME = np.array([0.40, 0.0, 0.25])
    PUSH_HEIGHT = 0.012
    # TCP distance behind the block centre where the closed fingers touch the block face.
    CONTACT_OFFSET = scene.BLOCK_HALF + 0.02

    def __init__(self, render_mode: str | None = None, goal_arm: str = "behind", **kwargs: Any) -> None:
        if goal_arm not in ("behind", "home"):
            raise ValueError(f"goal_arm: unknown {goal_arm!r}; valid: behind, home")
        self.goal_arm = goal_arm
        super().__init__(render_mode=render_mode, **kwargs)

    def _sample_episode(self, rng):
        block = _uniform(rng, self.BLOCK_LOW, self.BLOCK_HIGH)
        yaw = rng.uniform(-math.pi / 4, math.pi / 4)
        while True:
            angle = rng.uniform(-math.pi, math.pi)
            dist = rng.uniform(0.10, 0.20)
            goal = block + dist * np.array([math.cos(angle), math.sin(angle)])
            if np.all(goal >= self.GOAL_LOW) and np.all(goal <= self.GOAL_HIGH):
                break
        while True:
            ee = _uniform(rng, self.EE_LOW, self.EE_HIGH)
            if np.linalg.norm(ee[:2] - block) >= 0.10:
                break
        return {
            "ee_start": np.concatenate([ee, _NEUTRAL_EULER, [1.0]]),
            "block_start": np.array([block[0], block[1], yaw]),
            "goal": goal,
        }

    def _episode_from_options(self, episode, options):
        episode = super()._episode_from_options(episode, options)
        if "ee_start" in options:
            v = _as_vector("ee_start", options["ee_start"], (3, 7))
            episode["ee_start"] = v if v.shape[0] == 7 else np.concatenate([v, episode["ee_start"][3:]])
        if "block_start" in options:
            v = _as_vector("block_start", options["block_start"], (2, 3))
            episode["block_start"] = v if v.shape[0] == 3 else np.array([v[0], v[1], 0.0])
        if "goal" in options:
            episode["goal"] = _as_vector("goal", options["goal"], (2,))
        return episode

    def _apply_start(self, data):
        self._set_robot(data, self._episode["ee_start"])
        b = self._episode["block_start"]
        self._set_block(data, b[:2], float(b[2]))

    def goal_ee_state(self) -> np.ndarray:
        """EE state shown in the goal image."""
        ep = self._episode
        if self.goal_arm == "home":
            return np.concatenate([self.HOME, _NEUTRAL_EULER, [1.0]])
        direction = ep["goal"] - ep["block_start"][:2]
        direction /= max(np.linalg.norm(direction), 1e-9)
        xy = ep["goal"] - self.CONTACT_OFFSET * direction
        return np.concatenate([xy, [self.PUSH_HEIGHT], _NEUTRAL_EULER, [1.0]])

    def _apply_goal(self, data):
        self._set_robot(data, self.goal_ee_state())
        self._set_block(data, self._episode["goal"], float(self._episode["block_start"][2]))

    def _distance(self):
        block = self.data.xpos[self._ids["block"]]
        return float(np.linalg.norm(block[:2] - self._episode["goal"]))

    def _task_info(self):
        return {"block_pos": self.data.xpos[self._ids["block"]].astype(np.float32)}


TASKS: dict[str, type[ArmEnv]] = {"reach": ReachEnv, "push": PushEnv}
ENV_IDS: dict[str, str] = {"reach": "vjepa2_ac/Reach-v0", "push": "vjepa2_ac/Push-v0"}
MAX_EPISODE_STEPS: dict[str, int] = {"reach": 50, "push": 100}


def task_env_id(task: str) -> str:
    """Gymnasium id of a task name (``reach`` / ``push``); unknown names list the valid ones."""
    if task not in ENV_IDS:
        raise ValueError(f"task: unknown task {task!r}; valid tasks: {', '.join(ENV_IDS)}")
    return ENV_IDS[task]
