"""Reader for LeRobot v3.0 datasets (local directories; the ``lerobot`` package is not needed).

:func:`list_lerobot_episodes` returns one :class:`LeRobotEpisode` per episode of ``meta/episodes``;
they plug into the clip datasets like raw and RLDS episodes. States come from the features a
:class:`~vjepa2_ac.datasets.lerobot_mapping.LeRobotMapping` names (``preset="droid"`` for DROID's port),
timestamps from the data's ``timestamp`` column. A frame is found in its (multi-episode) MP4 by its time
``from_timestamp + timestamp`` within a tolerance, never by assuming a frame count: the decoder seeks to
the keyframe at or before the first wanted frame and decodes forward to the last one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.dataset import ClipConfig, DroidClipDataset
from vjepa2_ac.datasets.episode import Episode, EpisodeData, check_states, check_timestamps
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.lerobot_mapping import CAMERA_ROLES, PRESETS, LeRobotMapping
from vjepa2_ac.datasets.lerobot_meta import EpisodeRecord, LeRobotMeta, read_columns
from vjepa2_ac.datasets.lerobot_video import decode_at_times, frame_size

__all__ = [
    "LeRobotEpisode",
    "LeRobotClipDataset",
    "list_lerobot_episodes",
    "resolve_mapping",
]

TIME_SOURCES = ("auto", "robot_timestamps", "control_rate")


def resolve_mapping(
    meta: LeRobotMeta, preset: str | None, mapping: LeRobotMapping | dict | None
) -> LeRobotMapping:
    """``mapping`` if given, else ``PRESETS[preset or "droid"]``; checked against info.json's features."""
    if mapping is not None and preset is not None:
        raise ValueError("give either preset or mapping, not both")
    if isinstance(mapping, dict):
        mapping = LeRobotMapping(**mapping)
    if mapping is None:
        if preset is None:
            preset = "droid"
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        mapping = PRESETS[preset]
    mapping.check_features(meta.features, meta.root)
    return mapping


def list_lerobot_episodes(
    path: str | os.PathLike,
    camera: str | None = None,
    *,
    preset: str | None = None,
    mapping: LeRobotMapping | dict | None = None,
    episodes=None,
    time_source: str = "auto",
    video_tolerance_s: float | None = None,
    decoder_threads: int = 1,
) -> list[LeRobotEpisode]:
    """Episodes of a LeRobot v3.0 dataset directory.

    Args:
        path: the dataset root (holding ``meta/info.json``).
        camera: a video feature (``"observation.images.exterior_1_left"``), a role of the preset
            (``"left"``, ``"right"``, ``"wrist"``), or ``None`` for the mapping's camera.
        preset: a key of ``PRESETS`` (default ``"droid"`` when no ``mapping`` is given).
        mapping: a :class:`LeRobotMapping` (or its fields as a dict) for any other robot.
        episodes: optional episode indices to keep (in the order given).
        time_source: ``"auto"``/``"robot_timestamps"`` (the ``timestamp`` column) or ``"control_rate"``
            (row / ``fps``); frames are always found by their stored timestamps.
        video_tolerance_s: max distance between a wanted frame time and the decoded frame's time
            (default a quarter of the frame period).
    """
    meta = LeRobotMeta(path)
    m = resolve_mapping(meta, preset, mapping)
    roles = CAMERA_ROLES.get(preset or ("droid" if mapping is None else ""), {})
    cam = roles.get(camera, camera) if camera is not None else m.camera
    keys = meta.video_keys
    if cam is None:
        if len(keys) != 1:
            raise ValueError(f"camera: the mapping names no camera; choose one of {keys}")
        cam = keys[0]
    if cam not in keys:
        if meta.features.get(cam, {}).get("dtype") == "image":
            raise DataError(
                meta.root,
                f"camera {cam!r} is stored as images in the parquet files; only video features are read",
            )
        raise DataError(meta.root, f"camera {cam!r} is not a video feature of info.json (has {keys})")
    records = meta.episodes()
    if episodes is not None:
        by_index = {r.index: r for r in records}
        wanted = [int(i) for i in episodes]
        missing = [i for i in wanted if i not in by_index]
        if missing:
            raise DataError(meta.root, f"no episode(s) {missing[:5]} in meta/episodes")
        records = [by_index[i] for i in wanted]
    if not records:
        raise DataError(meta.root, "meta/episodes lists no episodes")
    return [
        LeRobotEpisode(
            meta.root,
            # Only this camera's segment: every DataLoader worker holds a copy of every episode.
            replace(rec, videos={cam: rec.videos[cam]} if cam in rec.videos else {}),
            m,
            cam,
            fps=meta.fps,
            data_path=meta.data_file(rec.data_chunk, rec.data_file),
            video_path=(
                meta.video_file(cam, rec.videos[cam].chunk, rec.videos[cam].file)
                if cam in rec.videos
                else None
            ),
            time_source=time_source,
            video_tolerance_s=video_tolerance_s,
            decoder_threads=decoder_threads,
        )
        for rec in records
    ]


class LeRobotEpisode(Episode):
    """One episode of a LeRobot v3.0 dataset (cheap to create and to pickle; no open files)."""

    def __init__(
        self,
        root: Path,
        record: EpisodeRecord,
        mapping: LeRobotMapping,
        camera: str,
        *,
        fps: float,
        data_path: Path,
        video_path: Path | None,
        time_source: str = "auto",
        video_tolerance_s: float | None = None,
        decoder_threads: int = 1,
    ):
        if time_source not in TIME_SOURCES:
            raise ValueError(f"time_source: expected one of {TIME_SOURCES}, got {time_source!r}")
        self.root = Path(root)
        self.record = record
        self.index = record.index
        self.path = f"{self.root}#episode_{record.index}"
        self.mapping = mapping
        self.camera = camera
        self.fps = float(fps)
        self.data_path = Path(data_path)
        self.video_path = None if video_path is None else Path(video_path)
        self.time_source = time_source
        self.tolerance_s = 0.25 / self.fps if video_tolerance_s is None else float(video_tolerance_s)
        self.decoder_threads = decoder_threads

    @property
    def segment(self):
        """This camera's :class:`VideoSegment` of the episode (error if meta/episodes has none)."""
        seg = self.record.videos.get(self.camera)
        if seg is None or self.video_path is None:
            raise DataError(
                self.path, f"meta/episodes has no videos/{self.camera}/from_timestamp for this episode"
            )
        return seg

    def columns(self) -> dict[str, np.ndarray]:
        """The episode's data rows: ``timestamp``, ``frame_index`` and the mapped features."""
        cols = read_columns(self.data_path, self.index, ("timestamp", *self.mapping.columns()), self.path)
        n = len(cols["timestamp"])
        if n != self.record.length:
            raise DataError(
                self.path,
                f"meta/episodes says length {self.record.length}, {self.data_path.name} holds {n} rows",
            )
        if "frame_index" in cols and not np.array_equal(cols["frame_index"], np.arange(n)):
            k = int(np.flatnonzero(cols["frame_index"] != np.arange(n))[0])
            raise DataError(
                self.path, f"frame_index is not 0..{n - 1} (row {k} holds {int(cols['frame_index'][k])})"
            )
        return cols

    def load(self) -> EpisodeData:
        cols = self.columns()
        n = len(cols["timestamp"])
        if n == 0:
            raise DataError(self.path, "episode has no rows")
        ts = np.asarray(cols["timestamp"], dtype=np.float64)
        check_timestamps(self.path, ts, "data timestamp")
        states = self.mapping.states(cols, self.path)
        check_states(self.path, states, "state " + "/".join(self.mapping.columns()))
        seg = self.segment
        # The episode's rows must fit in its video segment; a frame-exact count is `data check`'s job.
        if seg.from_s + ts[-1] > seg.to_s + self.tolerance_s:
            raise DataError(
                self.path,
                f"{self.camera}: the last row's time {ts[-1]:.3f} s is past the episode's video segment "
                f"[{seg.from_s:.3f}, {seg.to_s:.3f}) s",
            )
        size = frame_size(self.video_path, self.path)
        source = "control_rate" if self.time_source == "control_rate" else "robot_timestamps"
        rel = np.arange(n, dtype=np.float64) / self.fps if source == "control_rate" else ts - ts[0]
        return EpisodeData(
            states=states,
            timestamps=rel,
            extrinsics=None,
            frame_size=size,
            time_source=source,
            camera=self.camera,
        )

    def read_frames(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        ts = np.asarray(self.columns()["timestamp"], dtype=np.float64)
        if idx.size == 0:
            raise ValueError("indices: expected at least one frame index")
        if idx.min() < 0 or idx.max() >= len(ts):
            raise DataError(self.path, f"frame index {int(idx.max())} out of range for {len(ts)} rows")
        times = self.segment.from_s + ts[idx]
        return decode_at_times(self.video_path, times, self.tolerance_s, self.path, self.decoder_threads)

    def __repr__(self) -> str:
        return f"LeRobotEpisode({self.path!r}, camera={self.camera!r})"


class LeRobotClipDataset(DroidClipDataset):
    """Clips from a LeRobot v3.0 dataset (same samples, alignment and :class:`ClipConfig` as raw DROID).

    Args:
        path: the dataset root, or a list of roots (episodes of all, in order).
        camera, preset, mapping, episodes: as :func:`list_lerobot_episodes`.
        config / overrides: :class:`~vjepa2_ac.datasets.dataset.ClipConfig` fields.
    """

    def __init__(
        self,
        path,
        camera: str | None = None,
        *,
        preset: str | None = None,
        mapping: LeRobotMapping | dict | None = None,
        episodes=None,
        config=None,
        **overrides,
    ):
        cfg = config if config is not None else ClipConfig(**overrides)
        if config is not None and overrides:
            cfg = ClipConfig(**{**asdict(config), **overrides})
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
        eps = [
            ep
            for p in paths
            for ep in list_lerobot_episodes(
                p, camera, preset=preset, mapping=mapping, episodes=episodes, time_source=cfg.time_source
            )
        ]
        super().__init__(eps, cfg)
