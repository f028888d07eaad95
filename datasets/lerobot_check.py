"""``vjepa2-ac data check`` for LeRobot v3.0 directories: the raw/RLDS report, per episode and camera.

Per episode: the data rows match ``meta/episodes`` (count, ``frame_index`` 0..L-1), timestamps are
finite, increasing and without gaps (a step more than 1.5 frame periods after the previous one), every
numeric feature is finite, and for every camera the video file exists, holds as many frames in the
episode's ``[from_timestamp, to_timestamp)`` as the data has rows (within ``frame_count_tolerance``),
and decodes at the first and last row's time. Frames are counted from the packets' timestamps (each
MP4 is demuxed once, nothing decoded).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.lerobot_meta import EpisodeRecord, LeRobotMeta, read_columns
from vjepa2_ac.datasets.lerobot_video import decode_at_times, packet_times

__all__ = ["lerobot_items", "check_lerobot_episode"]

GAP_PERIODS = 1.5  # a step later than this many frame periods after the previous one is a gap


def lerobot_items(path: str | os.PathLike) -> tuple[list[tuple[str, EpisodeRecord]], Callable]:
    """``([(episode name, record)], checker)`` for ``check_dataset``'s loop over episodes.

    ``checker(record, frame_count_tolerance)`` returns ``(duration_s, camera -> (H, W))`` or raises
    :class:`DataError`; it shares one cache of packet timestamps, so each MP4 is demuxed once.
    """
    meta = LeRobotMeta(path)
    packets: dict[Path, np.ndarray] = {}

    def checker(rec: EpisodeRecord, tolerance: int):
        return check_lerobot_episode(meta, rec, tolerance, packets)

    return [(f"{meta.root}#episode_{rec.index}", rec) for rec in meta.episodes()], checker


def check_lerobot_episode(
    meta: LeRobotMeta, rec: EpisodeRecord, tolerance: int = 1, packets: dict | None = None
) -> tuple[float, dict[str, tuple[int, int]]]:
    """Check one episode; returns ``(duration_s, camera -> (H, W))`` or raises :class:`DataError`."""
    name = f"{meta.root}#episode_{rec.index}"
    numeric = [
        k
        for k, f in meta.features.items()
        if isinstance(f, dict) and str(f.get("dtype", "")).startswith(("float", "int"))
    ]
    cols = read_columns(meta.data_file(rec.data_chunk, rec.data_file), rec.index, tuple(numeric), name)
    if "timestamp" not in cols:
        raise DataError(name, "the data has no timestamp column")
    n = len(cols["timestamp"])
    if n != rec.length:
        raise DataError(name, f"meta/episodes says length {rec.length}, the data file holds {n} rows")
    if n == 0:
        raise DataError(name, "episode has no rows")
    if "frame_index" in cols and not np.array_equal(cols["frame_index"], np.arange(n)):
        k = int(np.flatnonzero(cols["frame_index"] != np.arange(n))[0])
        raise DataError(name, f"frame_index is not 0..{n - 1} (row {k} holds {int(cols['frame_index'][k])})")
    for key in numeric:
        x = np.asarray(cols[key], dtype=np.float64).reshape(n, -1)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise DataError(name, f"{key} has NaN/inf values at rows {np.flatnonzero(bad)[:5].tolist()}")
    ts = np.asarray(cols["timestamp"], dtype=np.float64)
    if n > 1:
        dt = np.diff(ts)
        if not (dt > 0).all():
            raise DataError(
                name, f"timestamps are not strictly increasing (row {int(np.argmax(dt <= 0)) + 1})"
            )
        gaps = np.flatnonzero(dt > GAP_PERIODS / meta.fps)
        if gaps.size:
            k = int(gaps[0])
            raise DataError(
                name,
                f"timestamp gap of {dt[k]:.3f} s after row {k} (expected {1 / meta.fps:.3f} s; "
                f"{gaps.size} gap(s))",
            )
    if not meta.video_keys:
        raise DataError(meta.root / "meta/info.json", "no video features")
    sizes = {}
    tol_s = 0.25 / meta.fps
    for cam in meta.video_keys:
        seg = rec.videos.get(cam)
        if seg is None:
            raise DataError(name, f"meta/episodes has no videos/{cam}/from_timestamp for this episode")
        path = meta.video_file(cam, seg.chunk, seg.file)
        times = packet_times(path, name, packets)
        count = int(np.count_nonzero((times >= seg.from_s - tol_s) & (times < seg.to_s - tol_s)))
        if abs(count - n) > tolerance:
            raise DataError(
                name,
                f"{cam}: {path.name} has {count} frames in [{seg.from_s:.3f}, {seg.to_s:.3f}) s "
                f"but the data has {n} rows (difference > tolerance {tolerance})",
            )
        if count != n:
            warnings.warn(f"{name}: {cam} has {count} frames, the data {n} rows", stacklevel=2)
        # Decoding the first and last row's frames proves the file decodes where the episode lies.
        usable = min(count, n)
        frames = decode_at_times(path, seg.from_s + ts[[0, usable - 1]], tol_s, name)
        sizes[cam] = tuple(frames.shape[1:3])
    return float(ts[-1] - ts[0]), sizes
