"""Clip sampling by robot time (never by the video container's reported fps).

A clip of ``N`` frames at ``fps`` starting at episode time ``t0`` asks for the times
``t0 + k / fps`` for ``k = 0 .. N`` (``N + 1`` times: the extra one is the state after the last frame,
needed for the last token step's action). Each time is mapped to the nearest step of the episode's
timestamps; if the nearest step is further than ``tolerance_s`` away (dropped frames, a gap in the
recording) that is an error, not a silent substitution.

At DROID's 15 Hz control rate and 4 fps, requested times fall between steps (15 / 4 = 3.75 steps per
frame); the nearest step is at most half a period (1/30 s) away, under the default tolerance of 0.04 s.
"""

from __future__ import annotations

import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["clip_offsets", "nearest_indices", "valid_starts", "DEFAULT_TOLERANCE_S"]

DEFAULT_TOLERANCE_S = 0.04
TIE_S = 1e-5  # float32 resolution of a timestamp near 2 minutes is ~8e-6 s


def clip_offsets(num_frames: int, fps: float) -> np.ndarray:
    """``float64 [num_frames + 1]`` time offsets ``k / fps`` of a clip's frames plus the following state."""
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    if not fps > 0:
        raise ValueError(f"fps: expected > 0, got {fps}")
    return np.arange(num_frames + 1, dtype=np.float64) / float(fps)


def nearest_indices(
    timestamps: np.ndarray, times: np.ndarray, tolerance_s: float, episode: str
) -> np.ndarray:
    """Index of the step nearest each requested time.

    Args:
        timestamps: ``[L]`` strictly increasing step times (seconds).
        times: ``[Q]`` requested times (seconds, same clock).
        tolerance_s: maximum allowed ``|timestamps[i] − time|``.
        episode: used in the error message.

    Returns:
        ``int64 [Q]`` indices into ``timestamps``.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    q = np.asarray(times, dtype=np.float64)
    right = np.clip(np.searchsorted(ts, q), 1, len(ts) - 1) if len(ts) > 1 else np.zeros(len(q), np.int64)
    left = np.maximum(right - 1, 0)
    # Ties go to the earlier step. "Tie" allows TIE_S of rounding: the same times stored as float32
    # (LeRobot) or as integer nanoseconds (raw DROID) must pick the same steps.
    choose_left = np.abs(q - ts[left]) <= np.abs(ts[right] - q) + TIE_S
    idx = np.where(choose_left, left, right).astype(np.int64)
    err = np.abs(ts[idx] - q)
    if (err > tolerance_s + 1e-9).any():
        k = int(np.argmax(err))
        raise DataError(
            episode,
            f"no frame within {tolerance_s:.3f} s of requested time {q[k]:.3f} s "
            f"(nearest step {idx[k]} at {ts[idx[k]]:.3f} s; episode spans {ts[0]:.3f}..{ts[-1]:.3f} s)",
        )
    return idx


def valid_starts(timestamps: np.ndarray, span_s: float, tolerance_s: float) -> np.ndarray:
    """Steps at which a clip spanning ``span_s`` seconds fits inside the episode (``int64 [K]``)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    return np.flatnonzero(ts + span_s <= ts[-1] + tolerance_s).astype(np.int64)
