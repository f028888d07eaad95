"""Frames of multi-episode video files located by presentation time (PyAV; no torch).

LeRobot stores many episodes one after the other in one MP4; an episode's frame ``i`` is the one shown
at ``from_timestamp + timestamp[i]``. :func:`decode_at_times` finds frames by that time within a
tolerance (never by a frame count), seeking once to the keyframe at or before the earliest one.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["decode_at_times", "frame_size", "packet_times"]


def frame_size(path: Path, episode: str) -> tuple[int, int]:
    """``(H, W)`` of the first video stream of ``path`` (nothing decoded)."""
    if not path.is_file():
        raise DataError(episode, f"missing video file {path}")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(episode, f"no video stream in {path}")
            cc = c.streams.video[0].codec_context
            return int(cc.height), int(cc.width)
    except (av.FFmpegError, OSError) as e:
        raise DataError(episode, f"unreadable video {path}: {e}") from e


def decode_at_times(
    path: str | os.PathLike, times, tolerance_s: float, episode: str = "", threads: int = 1
) -> np.ndarray:
    """Decode the frames of ``path`` presented nearest the given times (seconds on the stream's clock).

    Seeks once, to the keyframe at or before the earliest time, and decodes forward until past the
    latest one. Each time gets the frame whose timestamp is nearest; if none is within ``tolerance_s``
    it is an error (a dropped frame, a wrong ``from_timestamp``, a truncated file).

    Returns:
        ``uint8 [len(times), H, W, 3]`` RGB frames, in the order of ``times`` (repeats allowed).
    """
    path = Path(path)
    q = np.asarray(times, dtype=np.float64).reshape(-1)
    if q.size == 0:
        raise ValueError("times: expected at least one time")
    want = np.unique(q)  # sorted
    best_err = np.full(len(want), np.inf)
    best_time = np.full(len(want), np.nan)
    frames: dict[int, np.ndarray] = {}
    if not path.is_file():
        raise DataError(episode, f"missing video file {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(episode, f"no video stream in {path}")
            stream = container.streams.video[0]
            if threads != 1:
                stream.thread_type, stream.thread_count = "AUTO", threads
            tb = float(stream.time_base)
            container.seek(
                max(0, int((want[0] - tolerance_s) / tb)), stream=stream, backward=True, any_frame=False
            )
            first = True
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise DataError(episode, f"{path}: frame without a timestamp")
                t = frame.pts * tb
                if first and t > want[0] + tolerance_s:
                    raise DataError(
                        episode, f"{path}: seek landed at {t:.3f} s, after the wanted {want[0]:.3f} s"
                    )
                first = False
                # Frames come in presentation order: only the wanted times around t can improve.
                lo = np.searchsorted(want, t - tolerance_s, side="left")
                hi = np.searchsorted(want, t + tolerance_s, side="right")
                rgb = None
                for j in range(lo, hi):
                    err = abs(t - want[j])
                    if err < best_err[j]:
                        if rgb is None:
                            rgb = frame.to_ndarray(format="rgb24")
                        best_err[j], best_time[j], frames[j] = err, t, rgb
                if t > want[-1] + tolerance_s:
                    break
    except (av.FFmpegError, OSError) as e:
        raise DataError(episode, f"cannot decode {path}: {e}") from e
    missing = np.flatnonzero(~np.isfinite(best_err))
    if missing.size:
        raise DataError(
            episode,
            f"{path}: no frame within {tolerance_s:.4f} s of time(s) "
            f"{[round(float(want[j]), 4) for j in missing[:5]]} "
            "(video shorter than the data, or wrong from_timestamp?)",
        )
    pos = np.searchsorted(want, q)
    return np.stack([frames[int(j)] for j in pos])


def packet_times(path: Path, episode: str, cache: dict | None) -> np.ndarray:
    """Sorted presentation times (s) of every video packet of ``path`` (demuxed once per check run)."""
    if cache is not None and path in cache:
        return cache[path]
    if not path.is_file():
        raise DataError(episode, f"missing video file {path}")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(episode, f"no video stream in {path}")
            stream = c.streams.video[0]
            tb = float(stream.time_base)
            pts = [p.pts for p in c.demux(stream) if p.size and p.pts is not None]
    except (av.FFmpegError, OSError) as e:
        raise DataError(episode, f"unreadable video {path}: {e}") from e
    times = np.sort(np.asarray(pts, dtype=np.float64)) * tb
    if cache is not None:
        if len(cache) >= 16:  # episodes come in file order: a few tables at a time bound memory
            cache.pop(next(iter(cache)))
        cache[path] = times
    return times
