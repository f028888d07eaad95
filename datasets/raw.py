"""Reader for raw DROID episode directories (``metadata_*.json``, ``trajectory.h5``, MP4s)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from vjepa2_ac.datasets.episode import (
    Episode,
    EpisodeData,
    check_states,
    check_timestamps,
    reconcile_lengths,
)
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.video import VideoReader
from vjepa2_ac.datasets.writer import DROID_CONTROL_HZ

__all__ = ["RawEpisode", "list_raw_episodes", "TIME_SOURCES"]

TIME_SOURCES = ("auto", "robot_timestamps", "control_rate")
_CART = "observation/robot_state/cartesian_position"
_GRIP = "observation/robot_state/gripper_position"
_TS_SEC = "observation/timestamp/robot_state/robot_timestamp_seconds"
_TS_NANO = "observation/timestamp/robot_state/robot_timestamp_nanos"


def list_raw_episodes(source: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Episode directories from a directory tree, a file of paths, or an explicit list.

    * directory: every directory below it holding a ``trajectory.h5`` or a ``metadata_*.json``, and
      every directory next to one that is empty or holds only ``recordings/`` (sorted; hidden
      temporary directories of an interrupted writer are ignored). An episode folder missing a file,
      or empty, is listed so that reading it reports what is missing instead of it silently not
      being counted;
    * file: one episode directory per line (first whitespace-separated column, as the official CSV;
      blank lines and ``#`` comments ignored; relative paths are relative to the file);
    * iterable: the paths as given.
    """
    if isinstance(source, str | os.PathLike):
        src = Path(source)
        if src.is_dir():
            marked = {
                p.parent
                for pattern in ("trajectory.h5", "metadata_*.json")
                for p in src.rglob(pattern)
                if not any(part.startswith(".") for part in p.relative_to(src).parts)
            }
            # Folders beside episodes that are empty or hold only recordings are episodes whose other
            # files never arrived.
            partial = {
                d
                for parent in {e.parent for e in marked if e != src}
                for d in parent.iterdir()
                if d.is_dir()
                and not d.name.startswith(".")
                and (not any(d.iterdir()) or (d / "recordings").is_dir())
            }
            eps = sorted(marked | partial)
            if not eps:
                raise DataError(src, "no episode directories (with a trajectory.h5) found below it")
            return eps
        if src.is_file():
            eps = []
            for line in src.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                p = Path(line.split()[0])
                eps.append(p if p.is_absolute() else src.parent / p)
            if not eps:
                raise DataError(src, "the episode list file names no episodes")
            return eps
        raise DataError(src, "no such directory or episode list file")
    eps = [Path(p) for p in source]
    if not eps:
        raise ValueError("source: empty list of episodes")
    return eps


class RawEpisode(Episode):
    """One raw DROID episode directory.

    Args:
        path: the episode directory.
        camera: a metadata key (``"left_mp4_path"``, ``"right_mp4_path"``, ``"wrist_mp4_path"``,
            ``"ext1_mp4_path"``, ...) or a camera serial (``recordings/MP4/<serial>.mp4``).
        time_source: ``"robot_timestamps"`` (h5 ``observation/timestamp/robot_state``),
            ``"control_rate"`` (row index / 15 Hz), or ``"auto"`` (timestamps when present).
        frame_count_tolerance: how many frames the video and the h5 may differ by before it is an error.
        load_extrinsics: also read ``observation/camera_extrinsics/<serial>_left``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        camera: str = "left_mp4_path",
        *,
        time_source: str = "auto",
        frame_count_tolerance: int = 1,
        load_extrinsics: bool = False,
        decoder_threads: int = 1,
    ):
        if time_source not in TIME_SOURCES:
            raise ValueError(f"time_source: expected one of {TIME_SOURCES}, got {time_source!r}")
        self.dir = Path(path)
        self.path = str(self.dir)
        self.camera = camera
        self.time_source = time_source
        self.frame_count_tolerance = frame_count_tolerance
        self.load_extrinsics = load_extrinsics
        self.decoder_threads = decoder_threads

    # -- metadata --------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """The parsed ``metadata_*.json`` (exactly one must exist)."""
        if not self.dir.is_dir():
            raise DataError(self.path, "episode directory does not exist")
        files = sorted(self.dir.glob("metadata_*.json"))
        if not files:
            if not any(self.dir.iterdir()):
                raise DataError(self.path, "empty episode directory (no metadata_*.json, trajectory.h5)")
            raise DataError(self.path, "missing metadata_*.json")
        if len(files) > 1:
            raise DataError(self.path, f"expected one metadata_*.json, found {[f.name for f in files]}")
        try:
            meta = json.loads(files[0].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(self.path, f"unreadable metadata {files[0].name}: {e}") from e
        if not isinstance(meta, dict):
            raise DataError(self.path, f"{files[0].name}: expected a JSON object")
        return meta

    def cameras(self, meta: dict | None = None) -> dict[str, str]:
        """Metadata key -> serial of every camera the metadata names (``*_mp4_path`` keys)."""
        meta = self.metadata() if meta is None else meta
        out = {}
        for key, value in meta.items():
            if key.endswith("_mp4_path") and isinstance(value, str) and value:
                out[key] = Path(value.split("recordings/MP4/")[-1]).stem
        return out

    def video_path(self, meta: dict | None = None) -> tuple[Path, str]:
        """``(mp4 path, serial)`` of the selected camera."""
        if self.camera.endswith("_mp4_path"):
            meta = self.metadata() if meta is None else meta
            if self.camera not in meta:
                keys = sorted(k for k in meta if k.endswith("_mp4_path"))
                raise DataError(self.path, f"metadata has no camera key {self.camera!r} (has {keys})")
            value = meta[self.camera]
            if not isinstance(value, str) or not value:
                raise DataError(self.path, f"metadata key {self.camera!r} is empty (no such camera)")
            # Only the file name matters: DROID metadata may hold absolute paths of the collection machine.
            name = value.split("recordings/MP4/")[-1]
            serial = Path(name).stem
        else:
            name, serial = f"{self.camera}.mp4", self.camera
        return self.dir / "recordings" / "MP4" / name, serial

    # -- Episode API -----------------------------------------------------------------------------
    def load(self) -> EpisodeData:
        meta = self.metadata()
        video, serial = self.video_path(meta)
        h5_path = self.dir / "trajectory.h5"
        if not h5_path.is_file():
            raise DataError(self.path, "missing trajectory.h5")
        try:
            with h5py.File(h5_path, "r") as f:
                cart = _read(f, _CART, self.path)
                grip = _read(f, _GRIP, self.path)
                ts = None
                if self.time_source != "control_rate":
                    if _TS_SEC in f and _TS_NANO in f:
                        ts = _read(f, _TS_SEC, self.path).astype(np.float64)
                        ts = ts + _read(f, _TS_NANO, self.path).astype(np.float64) * 1e-9
                    elif self.time_source == "robot_timestamps":
                        raise DataError(
                            self.path, f"trajectory.h5 has no {_TS_SEC} (time_source='robot_timestamps')"
                        )
                extr = None
                if self.load_extrinsics:
                    key = f"observation/camera_extrinsics/{serial}_left"
                    extr = _read(f, key, self.path).astype(np.float64)
        except OSError as e:
            raise DataError(self.path, f"unreadable or truncated trajectory.h5: {e}") from e
        cart = np.asarray(cart, dtype=np.float64)
        grip = np.asarray(grip, dtype=np.float64)
        if grip.ndim == 2 and grip.shape[1] == 1:
            grip = grip[:, 0]
        if cart.ndim != 2 or cart.shape[1] != 6:
            raise DataError(self.path, f"{_CART}: expected shape [T, 6], got {cart.shape}")
        if grip.shape != (cart.shape[0],):
            raise DataError(self.path, f"{_GRIP}: expected shape [{cart.shape[0]}], got {grip.shape}")
        states = np.concatenate([cart, grip[:, None]], axis=1)
        check_states(self.path, states, "trajectory.h5 robot_state")
        n = states.shape[0]
        if n == 0:
            raise DataError(self.path, "trajectory.h5 has no steps")
        if ts is not None:
            if ts.shape != (n,):
                raise DataError(self.path, f"{_TS_SEC}: expected {n} rows, got {ts.shape}")
            check_timestamps(self.path, ts, "trajectory.h5 robot_state")
            source = "robot_timestamps"
        else:
            ts = np.arange(n, dtype=np.float64) / DROID_CONTROL_HZ
            source = "control_rate"
        if extr is not None:
            if extr.shape != (n, 6):
                raise DataError(
                    self.path, f"camera extrinsics of {serial}: expected shape [{n}, 6], got {extr.shape}"
                )
            check_states(self.path, extr, f"camera extrinsics of {serial}")
        with VideoReader(video, episode=self.path) as vr:
            num_frames, size = vr.num_frames, vr.frame_size
        length = reconcile_lengths(self.path, n, num_frames, self.frame_count_tolerance)
        return EpisodeData(
            states=states[:length],
            timestamps=ts[:length] - ts[0],
            extrinsics=None if extr is None else extr[:length],
            frame_size=size,
            time_source=source,
            camera=f"{self.camera} ({serial})" if self.camera != serial else serial,
        )

    def read_frames(self, indices) -> np.ndarray:
        video, _ = self.video_path()
        with VideoReader(video, episode=self.path, threads=self.decoder_threads) as vr:
            return vr.read(indices)


def _read(f: h5py.File, key: str, episode: str) -> np.ndarray:
    if key not in f:
        raise DataError(episode, f"trajectory.h5 has no dataset {key!r}")
    try:
        return f[key][()]
    except OSError as e:  # truncated files fail here, not at open
        raise DataError(episode, f"trajectory.h5: cannot read {key!r}: {e}") from e
