"""The metadata and tables of a LeRobot v3.0 dataset directory (read locally with pyarrow; no network).

Layout (LeRobot's ``CODEBASE_VERSION = "v3.0"``)::

    <root>/meta/info.json                             codebase_version, fps, features, data_path, video_path
    <root>/meta/episodes/chunk-XXX/file-XXX.parquet   one row per episode (see below)
    <root>/meta/tasks.parquet                         task strings -> task_index
    <root>/data/chunk-XXX/file-XXX.parquet            one row per step, many episodes per file
    <root>/videos/<key>/chunk-XXX/file-XXX.mp4        many episodes per file, one after the other

An episode row holds ``episode_index``, ``length``, ``data/chunk_index``, ``data/file_index``,
``dataset_from_index``, ``dataset_to_index`` and, per video key, ``videos/<key>/chunk_index``,
``videos/<key>/file_index``, ``videos/<key>/from_timestamp`` and ``videos/<key>/to_timestamp``: the
episode's frames are those of the MP4 whose time is ``from_timestamp + timestamp`` of each data row.
Columns named ``stats/...`` (per-episode statistics) are never read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["LeRobotMeta", "EpisodeRecord", "VideoSegment", "read_columns", "is_lerobot_dir"]

INFO = "meta/info.json"
EPISODES_DIR = "meta/episodes"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
_EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index")


def is_lerobot_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding ``meta/info.json``."""
    return (Path(path) / INFO).is_file()


@dataclass(frozen=True, slots=True)
class VideoSegment:
    """Where one camera of one episode lies: ``file`` from ``from_s`` to ``to_s`` seconds."""

    chunk: int
    file: int
    from_s: float
    to_s: float


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One row of ``meta/episodes`` (slots: a million of them fit in a few hundred MB)."""

    index: int
    length: int
    data_chunk: int
    data_file: int
    videos: dict[str, VideoSegment] = field(default_factory=dict)


class LeRobotMeta:
    """``meta/info.json`` and ``meta/episodes`` of a LeRobot v3.0 dataset.

    Args:
        root: the dataset directory (the one holding ``meta/``).

    Raises:
        DataError: no ``meta/info.json``, an older or newer codebase version, or malformed fields.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        info_path = self.root / INFO
        if not info_path.is_file():
            raise DataError(self.root, f"not a LeRobot dataset: missing {INFO}")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(info_path, f"unreadable JSON: {e}") from e
        if not isinstance(info, dict):
            raise DataError(info_path, "expected a JSON object")
        version = str(info.get("codebase_version", ""))
        if not version.startswith("v3."):
            raise DataError(
                info_path,
                f"codebase_version is {version or 'missing'!r}; this reader supports LeRobot v3.x "
                "(convert v2.x datasets with LeRobot's convert_dataset_v21_to_v30 first)",
            )
        fps = info.get("fps")
        if not isinstance(fps, int | float) or not fps > 0:
            raise DataError(info_path, f"field 'fps': expected a positive number, got {fps!r}")
        features = info.get("features")
        if not isinstance(features, dict) or not features:
            raise DataError(info_path, "field 'features': expected a non-empty object")
        self.info = info
        self.fps = float(fps)
        self.features: dict[str, dict] = features
        self.data_path = str(info.get("data_path") or DEFAULT_DATA_PATH)
        self.video_path = str(info.get("video_path") or DEFAULT_VIDEO_PATH)
        self._episodes: list[EpisodeRecord] | None = None

    @property
    def video_keys(self) -> list[str]:
        """Features stored as video (``dtype == "video"``), in info.json order."""
        return [k for k, f in self.features.items() if isinstance(f, dict) and f.get("dtype") == "video"]

    def shape(self, key: str) -> tuple[int, ...]:
        """The ``shape`` info.json gives feature ``key``."""
        f = self.features.get(key)
        if not isinstance(f, dict) or not isinstance(f.get("shape"), list | tuple):
            raise DataError(self.root / INFO, f"feature {key!r} has no shape")
        return tuple(int(v) for v in f["shape"])

    def describe_features(self) -> str:
        """``name [shape]`` of every non-video feature, for error messages."""
        out = []
        for k, f in self.features.items():
            if isinstance(f, dict) and f.get("dtype") not in ("video", "image"):
                out.append(f"{k} {list(f.get('shape', []))}")
        return ", ".join(out)

    def data_file(self, chunk: int, file: int) -> Path:
        return self.root / self.data_path.format(chunk_index=chunk, file_index=file)

    def video_file(self, key: str, chunk: int, file: int) -> Path:
        return self.root / self.video_path.format(video_key=key, chunk_index=chunk, file_index=file)

    def episodes(self) -> list[EpisodeRecord]:
        """Every episode of ``meta/episodes/*/*.parquet``, sorted by ``episode_index``."""
        if self._episodes is None:
            self._episodes = self._read_episodes()
        return self._episodes

    def _read_episodes(self) -> list[EpisodeRecord]:
        import pyarrow.parquet as pq

        files = sorted((self.root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise DataError(
                self.root, f"no episode metadata: {EPISODES_DIR}/chunk-*/file-*.parquet is missing"
            )
        records: list[EpisodeRecord] = []
        for path in files:
            try:
                schema = pq.read_schema(path)
                video_cols = [c for c in schema.names if c.startswith("videos/")]
                missing = [c for c in _EPISODE_COLUMNS if c not in schema.names]
                if missing:
                    raise DataError(path, f"episode metadata lacks the columns {missing}")
                table = pq.read_table(path, columns=list(_EPISODE_COLUMNS) + video_cols)
            except DataError:
                raise
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(path, f"unreadable parquet: {e}") from e
            cols = {c: table.column(c).to_pylist() for c in table.column_names}
            for row in range(table.num_rows):
                videos = {}
                for key in self.video_keys:
                    names = [
                        f"videos/{key}/{s}"
                        for s in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
                    ]
                    if not all(n in cols for n in names):
                        continue  # the reader reports a missing camera when it is asked for
                    vals = [cols[n][row] for n in names]
                    if any(v is None for v in vals):
                        continue
                    videos[key] = VideoSegment(int(vals[0]), int(vals[1]), float(vals[2]), float(vals[3]))
                vals = [cols[c][row] for c in _EPISODE_COLUMNS]
                if any(v is None for v in vals):
                    raise DataError(path, f"row {row}: null in {list(_EPISODE_COLUMNS)}")
                records.append(EpisodeRecord(*(int(v) for v in vals), videos=videos))
        records.sort(key=lambda r: r.index)
        dup = [a.index for a, b in zip(records, records[1:], strict=False) if a.index == b.index]
        if dup:
            raise DataError(self.root / EPISODES_DIR, f"episode_index {dup[0]} appears more than once")
        return records


def read_columns(
    path: Path, episode_index: int, columns: tuple[str, ...], episode: str
) -> dict[str, np.ndarray]:
    """The rows of one episode in a data parquet file: column -> ``[L]`` or ``[L, D]`` numpy array.

    Rows are selected by ``episode_index`` (parquet filters skip row groups without it) and returned in
    ``frame_index`` order. Results are kept in a small per-process cache keyed by the file's mtime, so
    an episode's ``load()`` and the following ``read_frames()`` read the file once.
    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise DataError(episode, f"missing data file {path}") from None
    return _read_columns_cached(str(path), mtime, int(episode_index), tuple(columns), episode)


# As many episodes as the clip dataset's cache of per-step arrays, so a clip whose EpisodeData is cached
# finds its timestamps here too (DROID: ~300 rows x 9 columns, ~25 kB an episode, ~25 MB a process).
@lru_cache(maxsize=1024)
def _read_columns_cached(
    path: str, mtime: int, episode_index: int, columns: tuple[str, ...], episode: str
) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(episode, f"data file {path} has no column(s) {missing}")
        want = list(dict.fromkeys((*columns, "frame_index")))
        want = [c for c in want if c in names]
        table = pq.read_table(path, columns=want, filters=[("episode_index", "=", episode_index)])
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(episode, f"unreadable data file {path}: {e}") from e
    if table.num_rows and "frame_index" in table.column_names:
        table = table.sort_by("frame_index")
    out = {}
    for name in table.column_names:
        out[name] = _to_numpy(table.column(name), f"{path} column {name!r}", episode)
    return out


def _to_numpy(col, what: str, episode: str) -> np.ndarray:
    """A parquet column as numpy: scalars -> ``[L]``, fixed-length lists -> ``[L, D]`` (float64 or int64)."""
    import pyarrow as pa

    if col.null_count:
        raise DataError(episode, f"{what} has {col.null_count} null values")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    if (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        values = arr.flatten()
        if n and len(values) % n:
            raise DataError(episode, f"{what}: rows have different lengths")
        d = len(values) // n if n else 0
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            lengths = np.diff(np.asarray(arr.offsets))
            if n and (lengths != d).any():
                raise DataError(
                    episode, f"{what}: rows have different lengths {sorted(set(lengths.tolist()))}"
                )
        flat = values.to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(n, d)
    return np.asarray(arr.to_numpy(zero_copy_only=False))
