"""Validate every episode of a raw DROID, RLDS or LeRobot directory (``vjepa2-ac data check``)."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from vjepa2_ac.datasets.errors import DataError

__all__ = ["check_dataset", "detect_format"]


def detect_format(path: str | os.PathLike) -> str:
    """``"lerobot"`` if ``path`` holds ``meta/info.json``, ``"rlds"`` if it holds a TFDS
    ``dataset_info.json`` (up to two levels down), else ``"raw"``."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "no such file or directory")
    if (p / "meta" / "info.json").is_file():
        return "lerobot"
    if p.is_dir() and (
        (p / "dataset_info.json").is_file()
        or any(p.glob("*/dataset_info.json"))
        or any(p.glob("*/*/dataset_info.json"))
    ):
        return "rlds"
    return "raw"


def check_dataset(
    path: str | os.PathLike,
    *,
    clip_seconds: float | None = 2.0,
    frame_count_tolerance: int = 1,
    split: str = "train",
    progress: bool = True,
) -> dict:
    """Validate every episode and every camera of a dataset.

    Checks per episode: metadata present and parseable, h5/record readable, states finite, timestamps
    increasing, every camera's video present and decodable (first and last frame), frame count within
    ``frame_count_tolerance`` of the states (trims are reported as warnings), duration at least
    ``clip_seconds`` (``None`` to skip; the default is one default clip: 8 frames at 4 fps).

    Returns:
        A JSON-serialisable report: ``format``, ``path``, ``episodes``, ``good``, ``bad`` (list of
        ``{"episode", "problem"}``), ``total_duration_s`` (good episodes), ``cameras`` (name -> count of
        episodes having it), ``frame_sizes`` ("HxW" -> count), ``warnings``.
    """
    fmt = detect_format(path)
    if fmt == "lerobot":
        from vjepa2_ac.datasets.lerobot_check import lerobot_items

        items, checker = lerobot_items(path)
    elif fmt == "raw":
        from vjepa2_ac.datasets.raw import list_raw_episodes

        items, checker = [(str(p), p) for p in list_raw_episodes(path)], _check_raw
    else:
        from vjepa2_ac.datasets.rlds import list_rlds_episodes

        items, checker = [(ep.path, ep) for ep in list_rlds_episodes(path, split)], _check_rlds
    report: dict = {
        "format": fmt,
        "path": str(path),
        "episodes": len(items),
        "good": 0,
        "bad": [],
        "total_duration_s": 0.0,
        "cameras": Counter(),
        "frame_sizes": Counter(),
        "warnings": [],
    }
    for name, item in tqdm(items, desc="checking episodes", unit="ep", disable=not progress, leave=False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                duration, cams = checker(item, frame_count_tolerance)
                if clip_seconds is not None and duration + 1e-9 < clip_seconds:
                    raise DataError(name, f"too short: {duration:.2f} s, a clip needs {clip_seconds:.2f} s")
            except DataError as e:
                report["bad"].append({"episode": e.episode, "problem": e.problem})
            else:
                report["good"] += 1
                report["total_duration_s"] += duration
                for cam, size in cams.items():
                    report["cameras"][cam] += 1
                    report["frame_sizes"][f"{size[0]}x{size[1]}"] += 1
        report["warnings"] += [str(w.message) for w in caught]
    report["cameras"] = dict(report["cameras"])
    report["frame_sizes"] = dict(report["frame_sizes"])
    report["total_duration_s"] = round(report["total_duration_s"], 3)
    return report


def _check_raw(path: Path, tolerance: int) -> tuple[float, dict]:
    from vjepa2_ac.datasets.raw import RawEpisode

    meta_ep = RawEpisode(path)
    cameras = meta_ep.cameras()
    if not cameras:
        raise DataError(path, "metadata names no camera (*_mp4_path keys are all empty)")
    seen: dict[str, tuple[int, int]] = {}
    duration = None
    done_serials = set()
    # Role keys first, so a camera is reported as left/right/wrist rather than ext1/ext2.
    order = sorted(cameras, key=lambda k: (k not in ("left_mp4_path", "right_mp4_path", "wrist_mp4_path"), k))
    for key in order:
        serial = cameras[key]
        if serial in done_serials:  # left_mp4_path and ext1_mp4_path usually name the same file
            continue
        done_serials.add(serial)
        ep = RawEpisode(path, key, frame_count_tolerance=tolerance)
        data = ep.load()
        ep.read_frames([0, data.num_steps - 1])
        seen[key] = data.frame_size
        duration = data.duration_s if duration is None else min(duration, data.duration_s)
    return float(duration), seen


def _check_rlds(ep, tolerance: int) -> tuple[float, dict]:
    from vjepa2_ac.datasets.rlds import RLDSEpisode

    obs = ep.source.features["steps"]["observation"]
    cams = [k for k in obs.keys() if "image" in k]
    if not cams:
        raise DataError(ep.path, "features.json has no image features under steps/observation")
    seen = {}
    duration = None
    example = ep._example()  # parse the record once for all cameras
    for cam in cams:
        e = RLDSEpisode(ep.source, ep.file, ep.offset, ep.length, int(ep.path.rsplit("#", 1)[1]), cam)
        e._cache = example
        data = e.load()
        e.read_frames([0, data.num_steps - 1])
        seen[cam] = data.frame_size
        duration = data.duration_s
    ep._cache = None
    return float(duration), seen
