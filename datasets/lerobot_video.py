"""Frames of multi-episode video files located by presentation time (PyAV; no torch).

LeRobot stores many episodes one after the other in one MP4; an episode's frame ``i`` is the one shown
at ``from_timestamp + timestamp[i]``. :func:`decode_at_times` finds frames by that time within a
tolerance (never by a frame count), seeking once to the keyframe at or before the earliest one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["decode_at_times", "frame_size", "packet_times", "open_video"]


@contextmanager
def open_video(path: Path, episode: str):
    """``(container, stream)`` of the first video stream; :class:`DataError` for a missing file, one
    without video, or an FFmpeg error while it is open (truncated or corrupt data)."""
    if not path.is_file():
        raise DataError(episode, f"missing video file {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise DataError(episode, f"unreadable video {path}: {e}") from e
    try:
        if not container.streams.video:
            raise DataError(episode, f"no video stream in {path}")
        yield container, container.streams.video[0]
    except (av.FFmpegError, OSError) as e:
        raise DataError(episode, f"cannot decode {path}: {e}") from e
    finally:
        container.close()


def frame_size(path: Path, episode: str) -> tuple[int, int]:
    """``(H, W)`` of the first video stream of ``path`` (nothing decoded)."""
    with open_video(path, episode) as (_, stream):
        return int(stream.codec_context.height), int(stream.codec_context.width)


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
    with open_video(path, episode) as (container, stream):
        # One thread unless asked: DataLoader workers are the parallelism (dav1d would take every core).
        stream.thread_type, stream.thread_count = ("AUTO", threads) if threads != 1 else ("SLICE", 1)
        best_err, frames = _nearest_frames(container, stream, want, tolerance_s, f"{path}", episode)
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


def _nearest_frames(container, stream, want: np.ndarray, tolerance_s: float, path: str, episode: str):
    """``(error [W], index -> rgb frame)``: for each sorted wanted time, the nearest decoded frame."""
    best_err = np.full(len(want), np.inf)
    frames: dict[int, np.ndarray] = {}
    tb = float(stream.time_base)
    # backward=True lands on the keyframe at or before the target (possibly in the previous episode).
    container.seek(max(0, int((want[0] - tolerance_s) / tb)), stream=stream, backward=True, any_frame=False)
    first = True
    for frame in container.decode(stream):
        if frame.pts is None:
            raise DataError(episode, f"{path}: frame without a timestamp")
        t = frame.pts * tb
        if first and t > want[0] + tolerance_s:
            raise DataError(episode, f"{path}: seek landed at {t:.3f} s, after the wanted {want[0]:.3f} s")
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
                best_err[j], frames[j] = err, rgb
        if t > want[-1] + tolerance_s:
            break
    return best_err, frames


def packet_times(path: Path, episode: str, cache: dict | None) -> np.ndarray:
    """Sorted presentation times (s) of every video packet of ``path`` (demuxed once per check run)."""
    if cache is not None and path in cache:
        return cache[path]
    with open_video(path, episode) as (container, stream):
        tb = float(stream.time_base)
        pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
    times = np.sort(np.asarray(pts, dtype=np.float64)) * tb
    if cache is not None:
        if len(cache) >= 16:  # episodes come in file order: a few tables at a time bound memory
            cache.pop(next(iter(cache)))
        cache[path] = times
    return times
