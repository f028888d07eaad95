"""The per-episode interface shared by the raw-DROID and RLDS readers.

An :class:`Episode` is cheap to create and holds no open files; :meth:`Episode.load` reads the small
per-step arrays (states, timestamps, extrinsics) and :meth:`Episode.read_frames` decodes only the frames
asked for. Files are opened inside those calls and closed before they return, so DataLoader workers
never share or leak handles.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["Episode", "EpisodeData", "reconcile_lengths"]


@dataclass
class EpisodeData:
    """Per-step arrays of one episode (after reconciling the video and state lengths).

    Attributes:
        states: ``float64 [L, 7]`` ``[x, y, z, roll, pitch, yaw, gripper]``.
        timestamps: ``float64 [L]`` robot time in seconds, relative to the first step.
        extrinsics: ``float64 [L, 6]`` camera pose per step, or ``None``.
        frame_size: ``(H, W)`` of the camera's frames.
        time_source: ``"robot_timestamps"`` or ``"control_rate"`` (index / 15 Hz).
        camera: the camera actually read (metadata key and serial, or RLDS feature name).
    """

    states: np.ndarray
    timestamps: np.ndarray
    extrinsics: np.ndarray | None
    frame_size: tuple[int, int]
    time_source: str
    camera: str

    @property
    def num_steps(self) -> int:
        return int(self.states.shape[0])

    @property
    def duration_s(self) -> float:
        """Robot time spanned from the first to the last step."""
        return float(self.timestamps[-1] - self.timestamps[0]) if self.num_steps else 0.0


class Episode:
    """One episode of a DROID-like dataset (abstract)."""

    #: identifier used in every error message (episode directory or RLDS file + index)
    path: str

    def load(self) -> EpisodeData:
        """Read and validate the per-step arrays; raise :class:`DataError` on bad data."""
        raise NotImplementedError

    def read_frames(self, indices) -> np.ndarray:
        """Decode the frames at ``indices``: ``uint8 [len(indices), H, W, 3]``."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop what :meth:`load` kept in memory for a following :meth:`read_frames` (default: nothing)."""


def check_states(episode: str, states: np.ndarray, what: str) -> None:
    """Raise if ``states`` ``[L, 7]`` holds NaN/inf (names the first bad rows)."""
    bad = ~np.isfinite(states).all(axis=-1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(episode, f"{what} has NaN/inf values at rows {rows[:5].tolist()} ({bad.sum()} rows)")


def check_timestamps(episode: str, ts: np.ndarray, what: str) -> None:
    """Raise unless ``ts`` is finite and strictly increasing."""
    if not np.isfinite(ts).all():
        raise DataError(episode, f"{what} has NaN/inf timestamps")
    if ts.size > 1 and not (np.diff(ts) > 0).all():
        k = int(np.flatnonzero(np.diff(ts) <= 0)[0])
        raise DataError(episode, f"{what} timestamps are not strictly increasing (row {k + 1})")


def reconcile_lengths(episode: str, num_states: int, num_frames: int, tolerance: int) -> int:
    """Usable number of steps when the video and the state arrays disagree.

    DROID MP4s are often one frame shorter than ``trajectory.h5``. Within ``tolerance`` frames the
    longer one is trimmed (the first rows/frames correspond) with a warning; beyond, it is an error.
    """
    if num_states == num_frames:
        return num_states
    diff = abs(num_states - num_frames)
    if diff > tolerance:
        raise DataError(
            episode,
            f"video has {num_frames} frames but the states have {num_states} rows "
            f"(difference {diff} > tolerance {tolerance})",
        )
    n = min(num_states, num_frames)
    warnings.warn(
        f"{episode}: video has {num_frames} frames, states have {num_states} rows; using the first {n}",
        stacklevel=3,
    )
    return n
