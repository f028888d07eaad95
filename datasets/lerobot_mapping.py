"""Which LeRobot features make the 7-D state ``[x, y, z, roll, pitch, yaw, gripper]``, and the conversion.

A :class:`LeRobotMapping` names the feature (optionally a slice of it, ``"observation.state[0:3]"``)
holding the end-effector position, the orientation (extrinsic euler ``"xyz"``, quaternion ``xyzw`` or
``wxyz``, or a row-major 3x3 rotation matrix), the gripper, and the default camera. Orientations are
converted to the euler ``"xyz"`` angles of :mod:`vjepa2_ac.pose`, so actions derived from the states
mean the same for every robot. ``PRESETS["droid"]`` is DROID as published in LeRobot format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = [
    "LeRobotMapping",
    "PRESETS",
    "CAMERA_ROLES",
    "ORIENTATION_FORMATS",
    "parse_key",
    "mapping_from_options",
]

ORIENTATION_FORMATS = {"euler_xyz": 3, "quaternion_xyzw": 4, "quaternion_wxyz": 4, "matrix": 9}
_KEY = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<a>\d*):(?P<b>\d*)\]|\[(?P<i>\d+)\])?$")


def parse_key(spec: str, what: str) -> tuple[str, slice]:
    """``"name"`` / ``"name[a:b]"`` / ``"name[i]"`` -> ``(name, slice)``."""
    m = _KEY.match(spec) if isinstance(spec, str) else None
    if not m:
        raise ValueError(f"{what}: expected a feature name, optionally with [a:b] or [i], got {spec!r}")
    if m["i"] is not None:
        i = int(m["i"])
        return m["name"], slice(i, i + 1)
    a = int(m["a"]) if m["a"] else None
    b = int(m["b"]) if m["b"] else None
    return m["name"], slice(a, b)


@dataclass
class LeRobotMapping:
    """Feature keys of the end-effector pose, gripper and camera of a LeRobot dataset.

    Attributes:
        position: feature (or slice) with the end-effector ``x, y, z`` in metres (3 values).
        orientation: feature (or slice) with the end-effector orientation in the robot base frame.
        orientation_format: ``"euler_xyz"`` (roll, pitch, yaw, extrinsic, radians), ``"quaternion_xyzw"``,
            ``"quaternion_wxyz"`` or ``"matrix"`` (9 values, row-major).
        gripper: feature (or slice) with the gripper opening (1 value), or ``None`` for an arm without
            one (the gripper state is then 0 throughout).
        gripper_range: ``(open, closed)`` raw gripper values mapped linearly to 0 and 1 (the DROID
            convention), or ``None`` when the values already are in ``[0, 1]``.
        camera: the default video feature (e.g. ``"observation.images.front"``).
    """

    position: str
    orientation: str
    orientation_format: str = "euler_xyz"
    gripper: str | None = None
    gripper_range: tuple[float, float] | None = None
    camera: str | None = None

    def __post_init__(self):
        parse_key(self.position, "position")
        parse_key(self.orientation, "orientation")
        if self.orientation_format not in ORIENTATION_FORMATS:
            raise ValueError(
                f"orientation_format: expected one of {sorted(ORIENTATION_FORMATS)}, "
                f"got {self.orientation_format!r}"
            )
        if self.gripper is not None:
            parse_key(self.gripper, "gripper")
        if self.gripper_range is not None:
            lo, hi = (float(v) for v in self.gripper_range)
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
                raise ValueError(
                    f"gripper_range: expected (open, closed) with open != closed, got {self.gripper_range}"
                )
            self.gripper_range = (lo, hi)
        if self.camera is not None and (not isinstance(self.camera, str) or not self.camera):
            raise ValueError(f"camera: expected a video feature name, got {self.camera!r}")

    # -- keys ------------------------------------------------------------------------------------
    def parts(self) -> list[tuple[str, str, slice, int]]:
        """``(role, feature, slice, expected width)`` of position, orientation and gripper."""
        out = [
            ("position", *parse_key(self.position, "position"), 3),
            (
                "orientation",
                *parse_key(self.orientation, "orientation"),
                ORIENTATION_FORMATS[self.orientation_format],
            ),
        ]
        if self.gripper is not None:
            out.append(("gripper", *parse_key(self.gripper, "gripper"), 1))
        return out

    def columns(self) -> tuple[str, ...]:
        """Data columns the conversion reads."""
        return tuple(dict.fromkeys(name for _, name, _, _ in self.parts()))

    def check_features(self, features: dict, where: object) -> None:
        """Raise :class:`DataError` naming every mapped feature that is missing or too narrow."""
        problems = []
        for role, name, sl, width in self.parts():
            f = features.get(name)
            if not isinstance(f, dict):
                problems.append(f"{role}: no feature {name!r}")
                continue
            shape = tuple(f.get("shape") or (1,))
            got = len(range(int(np.prod(shape)))[sl])
            if got != width:
                problems.append(f"{role}: {name!r}{_sl(sl)} has {got} values, expected {width}")
        if problems:
            have = ", ".join(
                f"{k} {list(f.get('shape', []))}"
                for k, f in features.items()
                if isinstance(f, dict) and f.get("dtype") not in ("video", "image")
            )
            raise DataError(
                where,
                "cannot build the 7-D end-effector state [x, y, z, roll, pitch, yaw, gripper]: "
                + "; ".join(problems)
                + f". The dataset has: {have}. A dataset with joint positions only needs the arm's "
                "forward kinematics first; map existing end-effector features with "
                "LeRobotMapping(position=..., orientation=..., orientation_format=..., gripper=...)",
            )

    # -- conversion ------------------------------------------------------------------------------
    def states(self, columns: dict[str, np.ndarray], episode: str) -> np.ndarray:
        """``float64 [L, 7]`` states from the episode's data columns (as :func:`read_columns` returns)."""
        vals = {}
        for role, name, sl, width in self.parts():
            col = np.asarray(columns[name], dtype=np.float64)
            col = col[:, None] if col.ndim == 1 else col.reshape(col.shape[0], -1)
            part = col[:, sl]
            if part.shape[1] != width:
                raise DataError(
                    episode, f"{role}: {name}{_sl(sl)} has {part.shape[1]} values, expected {width}"
                )
            vals[role] = part
        n = vals["position"].shape[0]
        euler = orientation_to_euler(vals["orientation"], self.orientation_format, episode)
        if "gripper" in vals:
            grip = vals["gripper"][:, 0]
            if self.gripper_range is not None:
                lo, hi = self.gripper_range
                grip = (grip - lo) / (hi - lo)
        else:
            grip = np.zeros(n)
        return np.concatenate([vals["position"], euler, grip[:, None]], axis=1)


def orientation_to_euler(x: np.ndarray, fmt: str, episode: str) -> np.ndarray:
    """``[L, 3|4|9]`` orientations -> ``float64 [L, 3]`` extrinsic euler ``"xyz"`` angles."""
    import torch  # only here: `data check` and the config reach this module without needing torch

    from vjepa2_ac.pose import matrix_to_euler_xyz

    if fmt == "euler_xyz":
        return x
    if fmt == "matrix":
        mat = x.reshape(-1, 3, 3)
        err = np.abs(mat @ np.swapaxes(mat, 1, 2) - np.eye(3)).max(axis=(1, 2)) if len(mat) else np.zeros(0)
        bad = ~(err < 1e-3) | ~(np.linalg.det(mat) > 0)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise DataError(episode, f"orientation: rows {rows} are not rotation matrices (row-major 3x3)")
    else:
        q = x if fmt == "quaternion_xyzw" else x[:, [1, 2, 3, 0]]
        norm = np.linalg.norm(q, axis=1)
        bad = ~(norm > 1e-6)
        if bad.any():
            raise DataError(
                episode, f"orientation: zero or NaN quaternions at rows {np.flatnonzero(bad)[:5].tolist()}"
            )
        mat = quaternion_xyzw_to_matrix(q / norm[:, None])
    return matrix_to_euler_xyz(torch.from_numpy(np.array(mat, dtype=np.float64))).numpy()


def quaternion_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[L, 4]`` (``x, y, z, w``, scalar last as scipy) -> rotations ``[L, 3, 3]``."""
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _sl(sl: slice) -> str:
    if sl.start is None and sl.stop is None:
        return ""
    return f"[{'' if sl.start is None else sl.start}:{'' if sl.stop is None else sl.stop}]"


# DROID 1.0.1 in LeRobot format: the same cartesian_position (xyz + extrinsic euler xyz) and
# gripper_position as raw DROID; its `action` is joint positions and is not used.
PRESETS = {
    "droid": LeRobotMapping(
        position="observation.state.cartesian_position[0:3]",
        orientation="observation.state.cartesian_position[3:6]",
        orientation_format="euler_xyz",
        gripper="observation.state.gripper_position",
        camera="observation.images.exterior_1_left",
    ),
}

# Camera roles of the training config (`data.camera: left | right | wrist`) per preset.
CAMERA_ROLES = {
    "droid": {
        "left": "observation.images.exterior_1_left",
        "right": "observation.images.exterior_2_left",
        "wrist": "observation.images.wrist_left",
    },
}


def mapping_from_options(options: dict) -> tuple[str | None, LeRobotMapping | None]:
    """``(preset, mapping)`` from a config section: ``{}``, ``{"preset": name}`` or mapping fields."""
    options = dict(options or {})
    if "preset" in options:
        preset = options.pop("preset")
        if options:
            raise ValueError(
                f"give either preset or mapping fields, not both (got preset and {sorted(options)})"
            )
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        return preset, None
    if not options:
        return None, None
    fields = set(LeRobotMapping.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"unknown mapping field(s) {unknown}; valid: preset, {', '.join(sorted(fields))}")
    if "gripper_range" in options and options["gripper_range"] is not None:
        options["gripper_range"] = tuple(options["gripper_range"])
    return None, LeRobotMapping(**options)
