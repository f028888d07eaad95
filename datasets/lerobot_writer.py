"""Write episodes as a LeRobot v3.0 dataset (parquet + multi-episode MP4s), without the ``lerobot`` package.

:class:`LeRobotWriter` streams episodes into ``data/chunk-000/file-XXX.parquet`` and
``videos/<key>/chunk-000/file-XXX.mp4`` (``episodes_per_file`` episodes per file, one after the other
on the video's clock), then writes ``meta/episodes``, ``meta/tasks.parquet``, ``meta/stats.json`` and
``meta/info.json``. Everything goes into a hidden temporary sibling directory that is renamed into
place by :meth:`LeRobotWriter.close`, so a crash never leaves a half-written dataset.

Videos are AV1 (``libsvtav1``, LeRobot's default) or H.264, ``yuv420p``; frame ``k`` of a file has the
presentation time ``k / fps``, and an episode's ``from_timestamp`` is the time of its first frame.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vjepa2_ac.datasets.lerobot_meta import DEFAULT_DATA_PATH, DEFAULT_VIDEO_PATH

__all__ = ["LeRobotWriter", "CODECS", "DROID_FEATURES"]

CODECS = {
    # codec -> (encoder, options): LeRobot's AV1 defaults (crf 30, preset 12), H.264 as the raw writer.
    "av1": ("libsvtav1", {"crf": "30", "preset": "12"}),
    "h264": ("libx264", {"crf": "18", "preset": "veryfast"}),
}
CHUNK_SIZE = 1000  # files per chunk directory, as LeRobot
ROW_GROUP = 2048  # data rows per parquet row group

# The state features of DROID's LeRobot port, which our collected episodes also use.
DROID_FEATURES = {
    "observation.state.cartesian_position": {"dtype": "float32", "shape": [6], "names": None},
    "observation.state.gripper_position": {"dtype": "float32", "shape": [1], "names": None},
}


class LeRobotWriter:
    """Stream episodes into a new LeRobot v3.0 dataset directory.

    Args:
        root: the dataset directory to create.
        fps: frame rate of the data and the videos.
        features: non-video features: name -> ``{"dtype": "float32", "shape": [D], "names": ...}``.
        cameras: video feature names (e.g. ``"observation.images.exterior_1_left"``).
        codec: ``"av1"`` (LeRobot's default) or ``"h264"``.
        gop: keyframe interval in frames (LeRobot uses 2: random access decodes at most one extra frame).
        episodes_per_file: episodes per data parquet and per MP4 before a new file is started.
        robot_type: stored in info.json.
        overwrite: replace an existing ``root`` instead of raising ``FileExistsError``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        fps: int,
        features: dict[str, dict],
        cameras: list[str] | tuple[str, ...],
        codec: str = "av1",
        gop: int = 2,
        episodes_per_file: int = 100,
        robot_type: str = "unknown",
        overwrite: bool = False,
    ):
        self.root = Path(root)
        if self.root.exists() and not overwrite:
            raise FileExistsError(f"{self.root}: already exists (pass overwrite=True)")
        if codec not in CODECS:
            raise ValueError(f"codec: expected one of {sorted(CODECS)}, got {codec!r}")
        if not int(fps) == fps or fps < 1:
            raise ValueError(f"fps: expected a positive integer, got {fps}")
        if gop < 1 or episodes_per_file < 1:
            raise ValueError(f"gop and episodes_per_file: expected >= 1, got {gop}, {episodes_per_file}")
        if not cameras:
            raise ValueError("cameras: expected at least one video feature")
        for name, f in features.items():
            if "/" in name or not isinstance(f, dict) or "shape" not in f or "dtype" not in f:
                raise ValueError(f"features[{name!r}]: expected {{'dtype', 'shape'}} and no '/' in the name")
        self.fps, self.codec, self.gop = int(fps), codec, int(gop)
        self.features = {k: {**v, "shape": [int(s) for s in v["shape"]]} for k, v in features.items()}
        self.cameras = list(cameras)
        self.episodes_per_file = int(episodes_per_file)
        self.robot_type = robot_type
        self.tmp = self.root.parent / f".{self.root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)
        self._file = -1
        self._rows: dict[str, list] = {}
        self._videos: dict[str, tuple] = {}  # camera -> (container, stream, frames written)
        self._sizes: dict[str, tuple[int, int]] = {}
        self._episodes: list[dict] = []
        self._tasks: dict[str, int] = {}
        self._total = 0
        self._stats: dict[str, list[np.ndarray]] = {k: [] for k in self.features}

    # -- episodes --------------------------------------------------------------------------------
    def add_episode(
        self,
        columns: dict[str, np.ndarray],
        frames: dict[str, np.ndarray],
        *,
        task: str = "",
        timestamps=None,
    ) -> int:
        """Append one episode; returns its ``episode_index``.

        Args:
            columns: every non-video feature -> ``[T]`` or ``[T, D]`` values.
            frames: every camera -> ``uint8 [T, H, W, 3]`` RGB (even H, W; one size per camera).
            task: the episode's task string.
            timestamps: ``[T]`` seconds from the episode start (default ``frame_index / fps``).
        """
        if set(columns) != set(self.features):
            raise ValueError(f"columns: expected exactly {sorted(self.features)}, got {sorted(columns)}")
        if set(frames) != set(self.cameras):
            raise ValueError(f"frames: expected exactly {self.cameras}, got {sorted(frames)}")
        t = None
        cols = {}
        for name, f in self.features.items():
            a = np.asarray(columns[name], dtype=f["dtype"])
            width = int(np.prod(f["shape"]))
            a = a.reshape(a.shape[0], width) if a.ndim >= 1 else a
            if a.ndim != 2 or (t is not None and a.shape[0] != t):
                raise ValueError(
                    f"columns[{name!r}]: expected [T, {width}] with T = {t}, got {np.shape(columns[name])}"
                )
            t = a.shape[0]
            cols[name] = a
        if not t:
            raise ValueError("columns: the episode has no steps")
        for cam, fr in frames.items():
            fr = np.asarray(fr)
            if fr.dtype != np.uint8 or fr.ndim != 4 or fr.shape[0] != t or fr.shape[-1] != 3:
                raise ValueError(f"frames[{cam!r}]: expected uint8 [{t}, H, W, 3], got {fr.dtype} {fr.shape}")
            if self._sizes.setdefault(cam, fr.shape[1:3]) != fr.shape[1:3]:
                raise ValueError(
                    f"frames[{cam!r}]: {fr.shape[1:3]} differs from earlier episodes' {self._sizes[cam]}"
                )
        ts = np.arange(t) / self.fps if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (t,):
            raise ValueError(f"timestamps: expected [{t}], got {ts.shape}")

        ep = len(self._episodes)
        if ep % self.episodes_per_file == 0:
            self._roll_file()
        task_index = self._tasks.setdefault(task, len(self._tasks))
        row = {
            "episode_index": ep,
            "tasks": [task],
            "length": t,
            "data/chunk_index": self._file // CHUNK_SIZE,
            "data/file_index": self._file % CHUNK_SIZE,
            "dataset_from_index": self._total,
            "dataset_to_index": self._total + t,
        }
        for cam in self.cameras:
            container, stream, done = self._videos[cam]
            _encode(container, stream, np.asarray(frames[cam]), done, self.fps)
            self._videos[cam] = (container, stream, done + t)
            row[f"videos/{cam}/chunk_index"] = self._file // CHUNK_SIZE
            row[f"videos/{cam}/file_index"] = self._file % CHUNK_SIZE
            row[f"videos/{cam}/from_timestamp"] = done / self.fps
            row[f"videos/{cam}/to_timestamp"] = (done + t) / self.fps
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        self._episodes.append(row)
        r = self._rows
        for name in self.features:
            r.setdefault(name, []).extend(cols[name] if cols[name].shape[1] > 1 else cols[name][:, 0])
            self._stats[name].append(cols[name])
        r.setdefault("timestamp", []).extend(ts.astype(np.float32))
        r.setdefault("frame_index", []).extend(range(t))
        r.setdefault("episode_index", []).extend([ep] * t)
        r.setdefault("index", []).extend(range(self._total, self._total + t))
        r.setdefault("task_index", []).extend([task_index] * t)
        self._total += t
        return ep

    def _roll_file(self) -> None:
        self._flush()
        self._file += 1
        for cam in self.cameras:
            path = self.tmp / DEFAULT_VIDEO_PATH.format(
                video_key=cam, chunk_index=self._file // CHUNK_SIZE, file_index=self._file % CHUNK_SIZE
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(path), mode="w", format="mp4")
            encoder, opts = CODECS[self.codec]
            stream = container.add_stream(encoder, rate=Fraction(self.fps))
            h, w = self._sizes[cam]
            if h % 2 or w % 2:
                raise ValueError(f"frames[{cam!r}]: yuv420p needs even frame sizes, got {h}x{w}")
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {**opts, "g": str(self.gop), "keyint_min": str(self.gop)}
            self._videos[cam] = (container, stream, 0)

    def _flush(self) -> None:
        """Finish the current data parquet and MP4s."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        for container, stream, _ in self._videos.values():
            for packet in stream.encode():
                container.mux(packet)
            container.close()
        self._videos = {}
        if not self._rows:
            return
        arrays = {}
        for name, values in self._rows.items():
            if name in self.features and np.prod(self.features[name]["shape"]) > 1:
                flat = np.stack(values).astype(self.features[name]["dtype"])
                arrays[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
            elif name in self.features:
                arrays[name] = pa.array(np.asarray(values, dtype=self.features[name]["dtype"]))
            else:
                arrays[name] = pa.array(
                    np.asarray(values, dtype=np.float32 if name == "timestamp" else np.int64)
                )
        path = self.tmp / DEFAULT_DATA_PATH.format(
            chunk_index=self._file // CHUNK_SIZE, file_index=self._file % CHUNK_SIZE
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Small row groups let a reader's filter on episode_index skip most of the file.
        pq.write_table(pa.table(arrays), path, row_group_size=ROW_GROUP)
        self._rows = {}

    # -- finishing -------------------------------------------------------------------------------
    def close(self) -> Path:
        """Write the metadata and move the dataset into place; returns ``root``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._episodes:
            self.abort()
            raise ValueError(f"{self.root}: no episodes were added")
        try:
            self._flush()
            meta = self.tmp / "meta"
            (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
            pq.write_table(
                pa.Table.from_pylist(self._episodes), meta / "episodes" / "chunk-000" / "file-000.parquet"
            )
            _write_tasks(meta / "tasks.parquet", self._tasks)
            (meta / "stats.json").write_text(json.dumps(self._stats_json(), indent=2), encoding="utf-8")
            (meta / "info.json").write_text(json.dumps(self._info(), indent=2), encoding="utf-8")
            if self.root.exists():
                shutil.rmtree(self.root)
            os.replace(self.tmp, self.root)
        except BaseException:
            self.abort()
            raise
        return self.root

    def abort(self) -> None:
        """Discard everything written (the temporary directory)."""
        for container, _, _ in self._videos.values():
            try:
                container.close()
            except Exception:  # noqa: BLE001 - best effort while failing already
                pass
        self._videos = {}
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _info(self) -> dict:
        encoder = CODECS[self.codec][0]
        features = {
            **self.features,
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        }
        for cam in self.cameras:
            h, w = self._sizes[cam]
            features[cam] = {
                "dtype": "video",
                "shape": [h, w, 3],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": "av1" if encoder == "libsvtav1" else "h264",
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": 3,
                    "has_audio": False,
                },
            }
        n = len(self._episodes)
        return {
            "codebase_version": "v3.0",
            "robot_type": self.robot_type,
            "total_episodes": n,
            "total_frames": self._total,
            "total_tasks": len(self._tasks),
            "chunks_size": CHUNK_SIZE,
            # LeRobot's own limits when it appends to a dataset (it starts new files past them).
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 500,
            "fps": self.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": DEFAULT_DATA_PATH,
            "video_path": DEFAULT_VIDEO_PATH,
            "features": features,
        }

    def _stats_json(self) -> dict:
        out = {}
        for name, parts in self._stats.items():
            x = np.concatenate(parts).astype(np.float64)
            out[name] = {
                "min": x.min(0).tolist(),
                "max": x.max(0).tolist(),
                "mean": x.mean(0).tolist(),
                "std": x.std(0).tolist(),
                "count": [int(len(x))],
            }
        return out


def _encode(container, stream, frames: np.ndarray, start: int, fps: int) -> None:
    for i, fr in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(fr, format="rgb24")
        frame.pts = start + i
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """``meta/tasks.parquet``: ``task_index`` indexed by the task string (what pandas reads as its index)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(tasks)
    table = pa.table(
        {"task_index": pa.array([tasks[t] for t in names], pa.int64()), "__index_level_0__": names}
    )
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)
