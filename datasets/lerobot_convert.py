"""Convert raw DROID episodes (ours or DROID's) to a LeRobot v3.0 dataset with DROID's port's names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.lerobot_writer import DROID_FEATURES, LeRobotWriter

__all__ = ["raw_to_lerobot", "RAW_CAMERA_FEATURES"]

# Raw DROID camera keys -> DROID's LeRobot video features.
RAW_CAMERA_FEATURES = {
    "left_mp4_path": "observation.images.exterior_1_left",
    "right_mp4_path": "observation.images.exterior_2_left",
    "wrist_mp4_path": "observation.images.wrist_left",
}


def raw_to_lerobot(
    source,
    out: str | os.PathLike,
    *,
    cameras: dict[str, str] | None = None,
    fps: int = 15,
    codec: str = "av1",
    gop: int = 2,
    episodes_per_file: int = 100,
    robot_type: str = "unknown",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Convert raw DROID episodes (:func:`~vjepa2_ac.datasets.raw.list_raw_episodes` sources) to LeRobot v3.

    States become ``observation.state.cartesian_position`` [6] and ``gripper_position`` [1] (as DROID's
    port, so ``preset="droid"`` reads them back), timestamps the robot clock from the first step, and
    the task the metadata's ``current_task``.

    Args:
        cameras: raw camera key (``left_mp4_path``, ...) -> LeRobot video feature; default: every role
            the first episode has, named as in DROID's port (:data:`RAW_CAMERA_FEATURES`).
        fps, codec, gop, episodes_per_file, robot_type, overwrite: as :class:`LeRobotWriter`.
    """
    from tqdm import tqdm

    from vjepa2_ac.datasets.errors import DataError
    from vjepa2_ac.datasets.raw import RawEpisode, list_raw_episodes

    paths = list_raw_episodes(source)
    if cameras is None:
        meta = RawEpisode(paths[0]).metadata()
        cameras = {k: v for k, v in RAW_CAMERA_FEATURES.items() if meta.get(k)}
        if not cameras:
            raise DataError(paths[0], f"metadata names none of the cameras {sorted(RAW_CAMERA_FEATURES)}")
    writer = LeRobotWriter(
        out,
        fps=fps,
        features=DROID_FEATURES,
        cameras=list(cameras.values()),
        codec=codec,
        gop=gop,
        episodes_per_file=episodes_per_file,
        robot_type=robot_type,
        overwrite=overwrite,
    )
    try:
        for path in tqdm(paths, desc="raw -> lerobot", unit="ep", disable=not progress):
            frames, data = {}, None
            for key, feature in cameras.items():
                ep = RawEpisode(path, key, frame_count_tolerance=1)
                d = ep.load()
                if data is not None and d.num_steps != data.num_steps:
                    raise DataError(
                        path, f"camera {key} has {d.num_steps} usable steps, others {data.num_steps}"
                    )
                data = d
                frames[feature] = ep.read_frames(np.arange(d.num_steps))
            task = RawEpisode(path).metadata().get("current_task") or ""
            writer.add_episode(
                {
                    "observation.state.cartesian_position": data.states[:, :6],
                    "observation.state.gripper_position": data.states[:, 6],
                },
                frames,
                task=str(task),
                timestamps=data.timestamps,
            )
    except BaseException:
        writer.abort()
        raise
    return writer.close()
