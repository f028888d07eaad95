"""A tiny synthetic "moving blob" robot dataset in the raw DROID layout, for smoke tests and benchmarks.

The end effector is a disc seen from above: its image position follows ``x, y`` and its radius grows with
``z``. Each episode is a random walk of small per-step moves (like the random-motion sim data), rendered
at ``image_size`` pixels and written with :func:`vjepa2_ac.datasets.write_raw_episode`. Fast (no physics,
no MuJoCo), deterministic per seed, and the state is recoverable from pixels, so losses and probes have
something real to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORKSPACE = 0.2  # x, y in [-0.2, 0.2] m
Z_RANGE = (0.05, 0.3)


def render_blob(xyz: np.ndarray, image_size: int) -> np.ndarray:
    """``uint8 [T, S, S, 3]`` frames of a red disc on a grey table for positions ``xyz[T, 3]``."""
    t = len(xyz)
    yy, xx = np.mgrid[:image_size, :image_size].astype(np.float32) + 0.5
    frames = np.full((t, image_size, image_size, 3), 60, np.uint8)
    frames[..., 2] = 90
    cx = (xyz[:, 0] / WORKSPACE * 0.4 + 0.5) * image_size
    cy = (xyz[:, 1] / WORKSPACE * 0.4 + 0.5) * image_size
    r = (0.06 + 0.12 * (xyz[:, 2] - Z_RANGE[0]) / (Z_RANGE[1] - Z_RANGE[0])) * image_size
    inside = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2 < r[:, None, None] ** 2
    frames[inside] = (230, 50, 40)
    return frames


def write_blob_episodes(
    root: str | Path,
    num_episodes: int = 8,
    steps: int = 24,
    image_size: int = 32,
    seed: int = 0,
    max_move: float = 0.03,
) -> list[Path]:
    """Write ``num_episodes`` random-walk episodes of ``steps`` frames under ``root``; returns their dirs."""
    from vjepa2_ac.datasets import write_raw_episode

    rng = np.random.default_rng(seed)
    lo = np.array([-WORKSPACE, -WORKSPACE, Z_RANGE[0]])
    hi = np.array([WORKSPACE, WORKSPACE, Z_RANGE[1]])
    out = []
    for e in range(num_episodes):
        xyz = np.empty((steps, 3))
        xyz[0] = rng.uniform(lo, hi)
        for t in range(1, steps):
            xyz[t] = np.clip(xyz[t - 1] + rng.uniform(-max_move, max_move, 3), lo, hi)
        cart = np.concatenate([xyz, np.zeros((steps, 3))], 1)  # fixed orientation
        grip = np.zeros(steps)
        path = Path(root) / f"episode_{e:04d}"
        write_raw_episode(
            path,
            {"blobcam": render_blob(xyz, image_size)},
            cart,
            grip,
            camera_roles={"left": "blobcam"},
            metadata={"task": "blob random walk"},
            overwrite=True,
        )
        out.append(path)
    return out
