"""Tiny synthetic DROID episodes with frames whose index can be read back after H.264."""

from __future__ import annotations

import numpy as np

from vjepa2_ac.datasets import write_raw_episode

H, W = 48, 64
LEVEL = 4  # grey-level step per frame index; H.264 errors on flat blocks are ~1-2 levels


def coded_frames(t: int, h: int = H, w: int = W, offset: int = 0) -> np.ndarray:
    """``uint8 [t, h, w, 3]``: left half grey ``LEVEL·(i+offset)``, right half the complement."""
    fr = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        v = LEVEL * (i + offset)
        fr[i, :, : w // 2] = v
        fr[i, :, w // 2 :] = 255 - v
    return fr


def decode_index(frames) -> list[int]:
    """Frame indices encoded by :func:`coded_frames` in uint8 ``[T, h, w, 3]`` frames."""
    f = np.asarray(frames, dtype=np.float64)
    w = f.shape[2]
    left = f[:, 4:-4, 4 : w // 2 - 4].mean(axis=(1, 2, 3))
    return [int(round(v / LEVEL)) for v in left]


def smooth_states(t: int, seed: int = 0) -> np.ndarray:
    """``float64 [t, 7]`` plausible end-effector trajectory (rotations included)."""
    rng = np.random.default_rng(seed)
    s = np.zeros((t, 7))
    s[:, :3] = np.array([0.5, 0.0, 0.3]) + np.cumsum(rng.normal(0, 0.01, (t, 3)), 0)
    s[:, 3:6] = np.array([3.0, 0.1, -1.9]) + np.cumsum(rng.normal(0, 0.02, (t, 3)), 0)
    s[:, 6] = np.clip(np.linspace(0, 1, t) + rng.normal(0, 0.01, t), 0, 1)
    return s


def make_episode(
    path, t: int = 40, states=None, *, h: int = H, w: int = W, video_frames: int | None = None, **kw
):
    """Write an episode with two cameras ("left" = ``cam_left``, "wrist" = ``cam_wrist``)."""
    states = smooth_states(t) if states is None else np.asarray(states)
    n_video = t if video_frames is None else video_frames
    frames = {"cam_left": coded_frames(t, h, w), "cam_wrist": coded_frames(t, h, w, offset=10)}
    ep = write_raw_episode(
        path,
        frames,
        states[:, :6],
        states[:, 6],
        camera_roles={"left": "cam_left", "wrist": "cam_wrist"},
        extrinsics={"cam_left": np.tile(np.arange(6.0), (t, 1)) + np.arange(t)[:, None]},
        **kw,
    )
    if n_video != t:  # rewrite the left video with a different length (DROID's off-by-one files)
        from vjepa2_ac.datasets import write_mp4

        write_mp4(ep / "recordings" / "MP4" / "cam_left.mp4", coded_frames(n_video, h, w), kw.get("fps", 15))
    return ep
