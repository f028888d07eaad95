"""MJCF scene of the simulated tabletop robot (our own model, MuJoCo primitives only).

Frame conventions (all in metres, the robot base frame = MuJoCo world frame):

* The robot base sits at the origin on the table top, which is the plane ``z = 0``; ``+x`` points away
  from the robot across the table, ``+y`` to the robot's left.
* The end-effector (EE) frame has its origin at the tool centre point (TCP), i.e. between the two
  fingertips. At the identity orientation the fingers point straight down (``-z``) and close along the
  EE ``y`` axis, so the nominal top-down grasp pose has euler angles ``(0, 0, 0)`` and the state never
  wraps around ``±π`` in normal use.
* The gripper is two slide fingers; gripper value ``0`` = open, ``1`` = closed (DROID convention).

Physics: the hand is a free body welded to a mocap target (Cartesian control); the fingers are
position-controlled slide joints; for Push a free block rests on the table with friction, so pushing is
real contact. The visible arm (pedestal, upper arm, forearm) is kinematic and visual only: its two links
are mocap bodies posed every step by analytic two-link IK from the shoulder to the wrist of the hand.

Rendering: shadows and multisampling are compiled off (``shadowsize=0 offsamples=0``), which makes
llvmpipe rendering 20-70x faster. To still cue the EE height, a flat dark disc (a fake shadow) is kept
on the table under the TCP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---- geometry constants shared with the env (metres) --------------------------------------------------
SHOULDER = np.array([0.0, 0.0, 0.36])  # shoulder joint centre, on top of the pedestal
UPPER_ARM_LENGTH = 0.5
FOREARM_LENGTH = 0.5
WRIST_OFFSET = 0.15  # wrist point above the TCP along the EE +z axis (the forearm attaches there)
FINGER_OPEN = 0.045  # |y| of each finger's centre when the gripper is open
FINGER_TRAVEL = 0.036  # inward slide from open to closed
FINGER_HALF = (0.013, 0.008, 0.03)  # finger box half sizes in the EE frame (x, y, z)
BLOCK_HALF = 0.03  # push block: a 6 cm cube
SHADOW_RADIUS = 0.035

# Camera name -> (position, look-at point). Exterior cameras mimic DROID's third-person views: 1 m from
# the workspace centre, 30 deg to either side, 50 deg above the table. They frame the whole sampled
# workspace: every reach goal and push configuration is fully in view (an earlier, farther framing lost
# the hand above the top edge for high goals near the robot, and those episodes could not be planned).
EXTERIOR_CAMERAS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "exterior_1": ((1.08, 0.32, 0.95), (0.52, 0.0, 0.18)),
    "exterior_2": ((1.08, -0.32, 0.95), (0.52, 0.0, 0.18)),
    "top": ((0.52, 0.0, 1.9), (0.52, 0.0, 0.0)),
}
CAMERA_NAMES: tuple[str, ...] = (*EXTERIOR_CAMERAS, "wrist")

# High-contrast palette: dark plain background, light table, dark arm, orange hand, yellow fingers,
# green block.
COLORS = {
    "background": (0.10, 0.12, 0.17),
    "table": (0.72, 0.70, 0.66),
    "table_edge": (0.45, 0.40, 0.35),
    "arm": (0.22, 0.26, 0.34),
    "joint": (0.12, 0.13, 0.16),
    "hand": (1.00, 0.45, 0.05),
    "finger": (1.00, 0.90, 0.10),
    "block": (0.10, 0.70, 0.25),
    "shadow": (0.05, 0.05, 0.05),
}


def _rgba(name: str, alpha: float = 1.0) -> str:
    r, g, b = COLORS[name]
    return f"{r:.3f} {g:.3f} {b:.3f} {alpha:.3f}"


def _rgb(name: str) -> str:
    return " ".join(f"{v:.3f}" for v in COLORS[name])


def _xyaxes(pos: tuple[float, float, float], target: tuple[float, float, float]) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` with world ``+z`` up in the image."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight down: image up = +x (away from the robot)
        right = np.array([0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.6f}" for v in (*right, *up))


@dataclass(frozen=True)
class SceneSpec:
    """What to put in the scene.

    Attributes:
        with_block: add the free push block.
        timestep: physics timestep in seconds.
        max_image_size: offscreen buffer size (must be >= the rendered image size).
    """

    with_block: bool = False
    timestep: float = 0.002
    max_image_size: int = 256

    def __post_init__(self) -> None:
        if not (0.0 < self.timestep <= 0.01):
            raise ValueError(f"SceneSpec.timestep: expected a value in (0, 0.01] s, got {self.timestep}")
        if not (16 <= self.max_image_size <= 2048):
            raise ValueError(f"SceneSpec.max_image_size: expected 16..2048, got {self.max_image_size}")


def build_mjcf(spec: SceneSpec) -> str:
    """Return the MJCF XML string of the scene described by ``spec``."""
    fx, fy, fz = FINGER_HALF
    cams = "\n".join(
        f'    <camera name="{name}" pos="{p[0]} {p[1]} {p[2]}" xyaxes="{_xyaxes(p, t)}" fovy="40"/>'
        for name, (p, t) in EXTERIOR_CAMERAS.items()
    )
    block = ""
    if spec.with_block:
        h = BLOCK_HALF
        block = f"""
    <body name="block" pos="0.5 0 {h}">
      <freejoint name="block"/>
      <geom name="block" type="box" size="{h} {h} {h}" mass="0.12" rgba="{_rgba("block")}"
            friction="0.5 0.005 0.0001" condim="4"/>
    </body>"""
    # Arm link bodies are mocap (kinematic) with capsules along their local +z; visual only.
    visual = 'contype="0" conaffinity="0" group="1"'
    return f"""<mujoco model="vjepa2_ac_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{spec.timestep}" integrator="implicitfast" cone="elliptic" impratio="2"/>
  <visual>
    <global offwidth="{spec.max_image_size}" offheight="{spec.max_image_size}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3" specular="0.0 0.0 0.0"/>
    <rgba haze="{_rgba("background")}"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="flat" rgb1="{_rgb("background")}"
             rgb2="{_rgb("background")}" width="8" height="8"/>
  </asset>
  <default>
    <geom solref="0.004 1" solimp="0.95 0.99 0.001"/>
  </default>
  <worldbody>
    <light name="key" pos="0.6 0.6 2.0" dir="-0.1 -0.3 -1" directional="true" castshadow="false"
           diffuse="0.4 0.4 0.4" specular="0 0 0"/>
{cams}
    <geom name="table" type="box" pos="0.45 0 -0.03" size="0.6 0.65 0.03" rgba="{_rgba("table")}"
          friction="0.5 0.005 0.0001"/>
    <geom name="table_edge" type="box" pos="0.45 0 -0.4" size="0.6 0.65 0.34" rgba="{_rgba("table_edge")}"
          {visual}/>
    <geom name="pedestal" type="cylinder" fromto="-0.02 0 0 -0.02 0 {SHOULDER[2] - 0.04}" size="0.065"
          rgba="{_rgba("arm")}" {visual}/>
    <geom name="shoulder" type="sphere" pos="{SHOULDER[0]} {SHOULDER[1]} {SHOULDER[2]}" size="0.06"
          rgba="{_rgba("joint")}" {visual}/>
    <body name="upper_arm" mocap="true">
      <geom name="upper_arm" type="capsule" fromto="0 0 0 0 0 {UPPER_ARM_LENGTH}" size="0.04"
            rgba="{_rgba("arm")}" {visual}/>
    </body>
    <body name="forearm" mocap="true">
      <geom name="elbow" type="sphere" size="0.05" rgba="{_rgba("joint")}" {visual}/>
      <geom name="forearm" type="capsule" fromto="0 0 0 0 0 {FOREARM_LENGTH}" size="0.034"
            rgba="{_rgba("arm")}" {visual}/>
    </body>
    <body name="ee_shadow" mocap="true">
      <geom name="ee_shadow" type="cylinder" size="{SHADOW_RADIUS} 0.0004" rgba="{_rgba("shadow", 0.55)}"
            {visual}/>
    </body>
    <body name="ee_target" mocap="true"/>
    <body name="hand" pos="0.5 0 0.2" gravcomp="1">
      <freejoint name="hand"/>
      <site name="tcp" size="0.005" rgba="1 0 0 0" group="4"/>
      <inertial pos="0 0 0.09" mass="0.6" diaginertia="0.002 0.002 0.002"/>
      <geom name="palm" type="box" pos="0 0 {2 * fz + 0.016}" size="0.024 {FINGER_OPEN + fy + 0.006} 0.016"
            rgba="{_rgba("hand")}" friction="0.5 0.005 0.0001"/>
      <geom name="flange" type="cylinder" fromto="0 0 {2 * fz + 0.03} 0 0 {WRIST_OFFSET}" size="0.03"
            rgba="{_rgba("hand")}" {visual}/>
      <geom name="wrist" type="sphere" pos="0 0 {WRIST_OFFSET}" size="0.042" rgba="{_rgba("joint")}"
            {visual}/>
      <camera name="wrist" pos="0.08 0 0.12" xyaxes="0 -1 0 0.95 0 -0.3" fovy="75"/>
      <body name="finger_left" pos="0 {FINGER_OPEN} {fz}" gravcomp="1">
        <joint name="finger_left" type="slide" axis="0 -1 0" range="0 {FINGER_TRAVEL}" damping="1"/>
        <geom name="finger_left" type="box" size="{fx} {fy} {fz}" mass="0.04" rgba="{_rgba("finger")}"
              friction="0.6 0.005 0.0001" solref="0.03 1"/>
      </body>
      <body name="finger_right" pos="0 {-FINGER_OPEN} {fz}" gravcomp="1">
        <joint name="finger_right" type="slide" axis="0 1 0" range="0 {FINGER_TRAVEL}" damping="1"/>
        <geom name="finger_right" type="box" size="{fx} {fy} {fz}" mass="0.04" rgba="{_rgba("finger")}"
              friction="0.6 0.005 0.0001" solref="0.03 1"/>
      </body>
    </body>{block}
  </worldbody>
  <contact>
    <exclude body1="finger_left" body2="finger_right"/>
  </contact>
  <equality>
    <weld name="ee_weld" body1="ee_target" body2="hand" relpose="0 0 0 1 0 0 0" solref="0.006 1"
          solimp="0.95 0.99 0.001"/>
  </equality>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="600" kv="10" ctrlrange="0 {FINGER_TRAVEL}"/>
    <position name="finger_right" joint="finger_right" kp="600" kv="10" ctrlrange="0 {FINGER_TRAVEL}"/>
  </actuator>
</mujoco>
"""
