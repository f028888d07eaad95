"""Write episodes in the raw DROID layout, so simulated data trains through the same loader as DROID.

Layout of one episode directory (as DROID's ``droid_raw``)::

    <episode_dir>/
        metadata_<uuid>.json   DROID TRAJECTORY_SCHEMA keys (left_mp4_path, trajectory_length, ...)
        trajectory.h5
            observation/robot_state/{cartesian_position [T,6], gripper_position [T]}
            observation/camera_extrinsics/<serial>_left [T,6]   (if given)
            observation/camera_type/<serial> [T]                (0 = wrist, 1 = exterior)
            observation/timestamp/robot_state/robot_timestamp_{seconds,nanos} [T]
            observation/timestamp/cameras/<serial>_{estimated_capture,frame_received} [T]  (ms)
            attrs: success, current_task, building, scene_id, robot_serial_number, version_number
        recordings/MP4/<serial>.mp4   H.264, one frame per h5 row

The whole directory is written into a hidden temporary sibling and renamed into place, so a crash never
leaves a half-written episode that a loader could pick up.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid as uuid_lib
from pathlib import Path

import h5py
import numpy as np

from vjepa2_ac.datasets.video import write_mp4

__all__ = ["write_raw_episode", "ROLE_KEYS", "DROID_CONTROL_HZ"]

DROID_CONTROL_HZ = 15
ROLE_KEYS = {"left": "left_mp4_path", "right": "right_mp4_path", "wrist": "wrist_mp4_path"}


def _as_array(name: str, x, shape_tail: tuple[int, ...], t: int | None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != shape_tail:
        raise ValueError(
            f"{name}: expected shape [T{''.join(', ' + str(s) for s in shape_tail)}], got {a.shape}"
        )
    if t is not None and a.shape[0] != t:
        raise ValueError(f"{name}: expected {t} rows (one per step), got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def write_raw_episode(
    episode_dir: str | os.PathLike,
    frames: dict[str, np.ndarray],
    cartesian_position,
    gripper_position,
    *,
    camera_roles: dict[str, str],
    extrinsics: dict[str, np.ndarray] | None = None,
    timestamps=None,
    metadata: dict | None = None,
    fps: int = DROID_CONTROL_HZ,
    overwrite: bool = False,
    lossless_video: bool = False,
) -> Path:
    """Write one episode in the raw DROID layout (atomically).

    Args:
        episode_dir: directory to create (its parent is created if needed).
        frames: camera serial -> ``uint8 [T, H, W, 3]`` RGB frames (even H, W), one per step.
        cartesian_position: ``[T, 6]`` end-effector ``[x, y, z, roll, pitch, yaw]`` (m, rad, euler "xyz").
        gripper_position: ``[T]`` (or ``[T, 1]``) gripper closure in ``[0, 1]``.
        camera_roles: role -> serial for roles ``"left"``, ``"right"``, ``"wrist"``; written as the
            metadata keys ``left_mp4_path``, ``right_mp4_path``, ``wrist_mp4_path``.
        extrinsics: optional serial -> ``[T, 6]`` camera pose ``[x, y, z, roll, pitch, yaw]`` per step.
        timestamps: optional ``[T]`` robot clock in seconds (strictly increasing); default ``i / fps``.
        metadata: extra metadata keys (e.g. ``success``, ``current_task``, ``uuid``); they override defaults.
        fps: MP4 container rate and the rate of the default timestamps.
        overwrite: replace an existing ``episode_dir`` instead of raising ``FileExistsError``.
        lossless_video: near-lossless H.264 (yuv444p, crf 0) instead of DROID-like yuv420p crf 18.

    Returns:
        The episode directory.
    """
    episode_dir = Path(episode_dir)
    if episode_dir.exists() and not overwrite:
        raise FileExistsError(f"{episode_dir}: episode directory already exists (pass overwrite=True)")
    if not frames:
        raise ValueError("frames: expected at least one camera")
    cart = _as_array("cartesian_position", cartesian_position, (6,), None)
    t = cart.shape[0]
    if t < 1:
        raise ValueError("cartesian_position: episode has no steps")
    grip = np.asarray(gripper_position, dtype=np.float64)
    if grip.ndim == 2 and grip.shape[1] == 1:
        grip = grip[:, 0]
    grip = _as_array("gripper_position", grip, (), t)
    for serial, fr in frames.items():
        fr = np.asarray(fr)
        if fr.dtype != np.uint8 or fr.ndim != 4 or fr.shape[-1] != 3 or fr.shape[0] != t:
            raise ValueError(f"frames[{serial!r}]: expected uint8 [{t}, H, W, 3], got {fr.dtype} {fr.shape}")
        if "/" in serial or not serial:
            raise ValueError(f"frames: invalid camera serial {serial!r}")
    for role, serial in camera_roles.items():
        if role not in ROLE_KEYS:
            raise ValueError(f"camera_roles: unknown role {role!r}; expected one of {sorted(ROLE_KEYS)}")
        if serial not in frames:
            raise ValueError(f"camera_roles[{role!r}] = {serial!r} has no frames; cameras: {sorted(frames)}")
    if timestamps is None:
        ts = np.arange(t, dtype=np.float64) / fps
    else:
        ts = _as_array("timestamps", timestamps, (), t)
        if t > 1 and not (np.diff(ts) > 0).all():
            raise ValueError("timestamps: expected strictly increasing robot times")
    extr = {}
    for serial, e in (extrinsics or {}).items():
        if serial not in frames:
            raise ValueError(f"extrinsics[{serial!r}]: no camera with that serial; cameras: {sorted(frames)}")
        extr[serial] = _as_array(f"extrinsics[{serial!r}]", e, (6,), t)

    meta = _droid_metadata(episode_dir, frames, camera_roles, extr, t, metadata or {})
    episode_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = episode_dir.parent / f".{episode_dir.name}.tmp-{os.getpid()}-{uuid_lib.uuid4().hex[:8]}"
    try:
        (tmp / "recordings" / "MP4").mkdir(parents=True)
        for serial, fr in frames.items():
            write_mp4(
                tmp / "recordings" / "MP4" / f"{serial}.mp4", np.asarray(fr), fps, lossless=lossless_video
            )
        _write_h5(tmp / "trajectory.h5", cart, grip, ts, extr, frames, camera_roles, meta)
        with open(tmp / f"metadata_{meta['uuid']}.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        if episode_dir.exists():
            shutil.rmtree(episode_dir)
        os.replace(tmp, episode_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return episode_dir


def _droid_metadata(episode_dir, frames, camera_roles, extr, t, extra) -> dict:
    wrist = camera_roles.get("wrist")
    exterior = sorted(s for s in frames if s != wrist)  # DROID sorts ext1/ext2 by serial
    uid = str(extra.get("uuid") or episode_dir.name)
    if "/" in uid or not uid:
        raise ValueError(f"metadata['uuid']: invalid value {uid!r}")
    mp4 = {s: f"recordings/MP4/{s}.mp4" for s in frames}
    meta: dict = {
        "uuid": uid,
        "lab": "sim",
        "user": "vjepa2-ac",
        "user_id": "vjepa2-ac",
        "date": "",
        "timestamp": "",
        "hdf5_path": "trajectory.h5",
        "building": "sim",
        "scene_id": 0,
        "success": None,
        "robot_serial": "sim",
        "droid_version": "1.0.1",
        "current_task": "",
        "trajectory_length": int(t),
        "wrist_cam_serial": wrist or "",
    }
    for i in (1, 2):
        s = exterior[i - 1] if len(exterior) >= i else ""
        meta[f"ext{i}_cam_serial"] = s
        meta[f"ext{i}_mp4_path"] = mp4.get(s, "")
        meta[f"ext{i}_svo_path"] = ""
        meta[f"ext{i}_cam_extrinsics"] = extr[s][0].tolist() if s in extr else []
    meta["wrist_mp4_path"] = mp4.get(wrist, "") if wrist else ""
    meta["wrist_svo_path"] = ""
    meta["wrist_cam_extrinsics"] = extr[wrist][0].tolist() if wrist in extr else []
    for role, key in ROLE_KEYS.items():
        if role in camera_roles:
            meta[key] = mp4[camera_roles[role]]
        else:
            meta.setdefault(key, "")
    meta.update(extra)
    meta["uuid"] = uid
    meta["trajectory_length"] = int(t)
    return meta


def _write_h5(path, cart, grip, ts, extr, frames, camera_roles, meta) -> None:
    wrist = camera_roles.get("wrist")
    secs = np.floor(ts).astype(np.int64)
    nanos = np.round((ts - secs) * 1e9).astype(np.int64)
    ms = np.round(ts * 1e3).astype(np.int64)
    with h5py.File(path, "w") as f:
        rs = f.create_group("observation/robot_state")
        rs.create_dataset("cartesian_position", data=cart)
        rs.create_dataset("gripper_position", data=grip)
        for serial, e in extr.items():
            f.create_dataset(f"observation/camera_extrinsics/{serial}_left", data=e)
        for serial in frames:
            f.create_dataset(
                f"observation/camera_type/{serial}", data=np.full(len(ts), 0 if serial == wrist else 1)
            )
            f.create_dataset(f"observation/timestamp/cameras/{serial}_estimated_capture", data=ms)
            f.create_dataset(f"observation/timestamp/cameras/{serial}_frame_received", data=ms)
        f.create_dataset("observation/timestamp/robot_state/robot_timestamp_seconds", data=secs)
        f.create_dataset("observation/timestamp/robot_state/robot_timestamp_nanos", data=nanos)
        for key, attr in (
            ("success", "success"),
            ("current_task", "current_task"),
            ("building", "building"),
            ("scene_id", "scene_id"),
            ("robot_serial", "robot_serial_number"),
            ("droid_version", "version_number"),
        ):
            value = meta.get(key)
            if value is not None and isinstance(value, str | int | float | bool):
                f.attrs[attr] = value
