"""``vjepa2-ac collect --format lerobot``: simulated episodes as a LeRobot v3.0 dataset.

Episodes are first collected in the raw DROID layout into a hidden sibling ``.<OUT>.raw/`` (the raw
collector's resume, workers and determinism apply unchanged), then written as one LeRobot dataset
at ``OUT`` with DROID's port's feature names, so ``preset="droid"`` reads it and LeRobot's own tools
can load or share it. The per-episode simulator ground truth goes to ``OUT/sim/episode_<i>.npz``.
Rerunning the command resumes the raw collection and rebuilds ``OUT`` (atomically).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from vjepa2_ac.envs.collect import SIM_FILE, CollectConfig, collect, episode_dir

__all__ = ["collect_lerobot", "staging_dir", "lerobot_camera"]

# Sim camera -> LeRobot video feature (DROID's port's names where the role matches).
_DROID_NAMES = {"exterior_1": "exterior_1_left", "exterior_2": "exterior_2_left", "wrist": "wrist_left"}


def lerobot_camera(camera: str) -> str:
    """The LeRobot video feature a sim camera is written as."""
    return f"observation.images.{_DROID_NAMES.get(camera, camera)}"


def staging_dir(out: str | os.PathLike) -> Path:
    """Where the raw episodes of ``collect_lerobot(out=...)`` are kept (for resuming)."""
    out = Path(out)
    return out.parent / f".{out.name}.raw"


def collect_lerobot(
    cfg: CollectConfig,
    out: str | os.PathLike,
    episodes: int,
    workers: int = 1,
    mp_context: str = "spawn",
    codec: str = "av1",
) -> dict:
    """Collect ``episodes`` episodes and write them as a LeRobot dataset at ``out``; returns the summary."""
    from vjepa2_ac.datasets.lerobot_convert import raw_to_lerobot

    out = Path(out)
    staging = staging_dir(out)
    summary = collect(cfg, staging, episodes, workers=workers, mp_context=mp_context)
    raw = [episode_dir(staging, i) for i in range(episodes)]
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        # Serials are the sim camera names (recordings/MP4/<camera>.mp4).
        raw_to_lerobot(
            raw,
            tmp,
            cameras={cam: lerobot_camera(cam) for cam in cfg.cameras},
            codec=codec,
            robot_type=f"vjepa2-ac sim ({cfg.task})",
        )
        (tmp / "sim").mkdir()
        for i, path in enumerate(raw):
            shutil.copyfile(path / SIM_FILE, tmp / "sim" / f"episode_{i:06d}.npz")
        for name in ("collect_config.json", "collect_summary.json"):
            shutil.copyfile(staging / name, tmp / "sim" / name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "format": "lerobot", "out": str(out), "raw_staging": str(staging)}
