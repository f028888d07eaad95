"""Validate every episode of a raw DROID, RLDS or LeRobot directory (``vjepa2-ac data check``).

Each dataset format plugs in through :data:`FORMATS`: a detector, a lister of ``(name, item)`` episodes
and a per-episode check returning ``(duration_s, {camera: (H, W)})`` or raising :class:`DataError`.
One bad episode (or damaged file) is reported and the check goes on with the next.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vjepa2_ac.datasets.errors import DataError

__all__ = ["CheckOptions", "DatasetFormat", "FORMATS", "check_dataset", "detect_format"]

# Frames decoded per call when every frame is checked (bounds memory on long episodes).
DECODE_CHUNK = 64


@dataclass(frozen=True)
class CheckOptions:
    """What a per-episode check verifies: ``fast`` decodes only each video's first and last frame."""

    frame_count_tolerance: int = 1
    fast: bool = False


@dataclass(frozen=True)
class DatasetFormat:
    """How ``data check`` finds and checks the episodes of one dataset format."""

    detect: Callable[[Path], bool]  # does this directory hold the format?
    list_episodes: Callable[[Path, str], list[tuple[str, Any]]]  # (path, split) -> [(name, item)]
    check_episode: Callable[[Any, CheckOptions], tuple[float, dict[str, tuple[int, int]]]]


def _frame_batches(num_frames: int, fast: bool) -> list[list[int]]:
    """Frame indices to decode, in chunks: all of them, or the first and the last (``fast``)."""
    if fast:
        return [sorted({0, num_frames - 1})]
    return [list(range(i, min(i + DECODE_CHUNK, num_frames))) for i in range(0, num_frames, DECODE_CHUNK)]


def _is_rlds(p: Path) -> bool:
    return p.is_dir() and (
        (p / "dataset_info.json").is_file()
        or any(p.glob("*/dataset_info.json"))
        or any(p.glob("*/*/dataset_info.json"))
    )


def _list_raw(path: Path, split: str) -> list[tuple[str, Any]]:
    from vjepa2_ac.datasets.raw import list_raw_episodes

    return [(str(p), p) for p in list_raw_episodes(path)]


def _list_rlds(path: Path, split: str) -> list[tuple[str, Any]]:
    from vjepa2_ac.datasets.rlds import list_rlds_episodes

    return [(ep.path, ep) for ep in list_rlds_episodes(path, split)]


def detect_format(path: str | os.PathLike) -> str:
    """The first format of :data:`FORMATS` whose detector accepts ``path`` (``"rlds"`` if it holds a
    TFDS ``dataset_info.json`` up to two levels down); ``"raw"`` otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "no such file or directory")
    return next((name for name, f in FORMATS.items() if f.detect(p)), "raw")


def check_dataset(
    path: str | os.PathLike,
    *,
    clip_seconds: float | None = 2.0,
    frame_count_tolerance: int = 1,
    split: str = "train",
    progress: bool = True,
    fast: bool = False,
) -> dict:
    """Validate every episode and every camera of a dataset.

    Checks per episode: metadata present and parseable, h5/record readable (RLDS: every record's
    payload CRC), states finite, timestamps increasing, every camera's video present and every frame
    decodable (``fast``: only the first and last frame), frame count within
    ``frame_count_tolerance`` of the states (trims are reported as warnings), duration at least
    ``clip_seconds`` (``None`` to skip; the default is one default clip: 8 frames at 4 fps).

    Returns:
        A JSON-serialisable report: ``format``, ``path``, ``episodes``, ``good``, ``bad`` (list of
        ``{"episode", "problem"}``), ``total_duration_s`` (good episodes), ``cameras`` (name -> count of
        episodes having it), ``frame_sizes`` ("HxW" -> count), ``warnings``.
    """
    fmt = detect_format(path)
    handler = FORMATS[fmt]
    options = CheckOptions(frame_count_tolerance=frame_count_tolerance, fast=fast)
    items = handler.list_episodes(Path(path), split)
    report: dict = {
        "format": fmt,
        "path": str(path),
        "frames_checked": "first and last" if fast else "all",
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
                duration, cams = handler.check_episode(item, options)
                if clip_seconds is not None and duration + 1e-9 < clip_seconds:
                    raise DataError(name, f"too short: {duration:.2f} s, a clip needs {clip_seconds:.2f} s")
            except DataError as e:
                report["bad"].append({"episode": e.episode, "problem": e.problem})
            except (OSError, ValueError, RuntimeError) as e:  # a file no reader wraps: still one episode
                report["bad"].append({"episode": name, "problem": f"{type(e).__name__}: {e}"})
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


def _check_raw(path: Path, options: CheckOptions) -> tuple[float, dict]:
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
        ep = RawEpisode(path, key, frame_count_tolerance=options.frame_count_tolerance)
        data = ep.load()
        for batch in _frame_batches(data.num_steps, options.fast):
            ep.read_frames(batch)
        seen[key] = data.frame_size
        duration = data.duration_s if duration is None else min(duration, data.duration_s)
    return float(duration), seen


def _check_rlds(ep, options: CheckOptions) -> tuple[float, dict]:
    from vjepa2_ac.datasets.rlds import RLDSEpisode

    obs = ep.source.features["steps"]["observation"]
    cams = [k for k in obs.keys() if "image" in k]
    if not cams:
        raise DataError(ep.path, "features.json has no image features under steps/observation")
    seen = {}
    duration = None
    example = ep._example()  # read (payload CRC checked) and parse the record once for all cameras
    for cam in cams:
        e = RLDSEpisode(ep.source, ep.file, ep.offset, ep.length, int(ep.path.rsplit("#", 1)[1]), cam)
        e._cache = example
        data = e.load()
        for batch in _frame_batches(data.num_steps, options.fast):
            e._cache = example  # read_frames frees the record after each call
            e.read_frames(batch)
        seen[cam] = data.frame_size
        duration = data.duration_s
    ep._cache = None
    return float(duration), seen


def _list_lerobot(path: Path, split: str) -> list[tuple[str, Any]]:
    from vjepa2_ac.datasets.lerobot_check import lerobot_items

    items, checker = lerobot_items(path)  # the checker shares one cache of packet timestamps
    return [(name, (checker, rec)) for name, rec in items]


def _check_lerobot(item, options: CheckOptions) -> tuple[float, dict]:
    checker, rec = item  # LeRobot checks decode each video's first and last frame of the episode
    return checker(rec, options.frame_count_tolerance)


# Format name -> how to check it; detectors are tried in this order ("raw" accepts any directory).
FORMATS: dict[str, DatasetFormat] = {
    "lerobot": DatasetFormat(lambda p: (p / "meta" / "info.json").is_file(), _list_lerobot, _check_lerobot),
    "rlds": DatasetFormat(_is_rlds, _list_rlds, _check_rlds),
    "raw": DatasetFormat(lambda p: True, _list_raw, _check_raw),
}
