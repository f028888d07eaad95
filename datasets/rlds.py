"""RLDS (TFDS) DROID datasets, read and written without TensorFlow.

TensorFlow in a process that renders MuJoCo segfaults (Mesa and TF clash over LLVM symbols), and it is a
1.6 GB dependency, so neither direction needs it:

* **Reading**: the TFRecord shards are unframed by :mod:`vjepa2_ac.datasets.tfrecord` (``u64 length,
  u32 masked-crc, payload, u32 masked-crc``; every payload's CRC is checked when read) and each
  episode's ``tf.train.Example`` is parsed with tensorflow-datasets' numpy parser (``ExampleParserNp``,
  TF-free). Images stay JPEG bytes until a clip asks for them; only those frames are decoded (PIL). A
  shard index (file, offset, length per episode) is built once by reading the 12-byte record headers, so
  random access to episode ``i`` reads only that record; a damaged header ends its shard's index there
  (the rest of the shard is one bad episode). ``array_record`` datasets are read through the
  ``array_record`` package.
* **Writing**: images are JPEG-encoded with PIL and handed to tfds' feature encoder as encoded bytes
  (TF-free), examples are serialised with tfds' own protobuf module, framed with the masked CRC32C, and
  ``dataset_info.json``/``features.json`` come from ``tfds.folder_dataset.write_metadata`` so that
  ``tfds.builder_from_directory`` (with or without TF) opens the result.

State is ``observation/cartesian_position`` (6) + ``observation/gripper_position`` (1); RLDS has no
per-step timestamps, so steps are placed on DROID's 15 Hz control clock.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid as uuid_lib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.episode import Episode, EpisodeData, check_states
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.tfrecord import (  # noqa: F401 (crc32c, tfrecord_index: part of this module's API)
    crc32c,
    read_record,
    tfrecord_frame,
    tfrecord_index,
    tfrecord_scan,
)
from vjepa2_ac.datasets.writer import DROID_CONTROL_HZ

__all__ = [
    "RLDSEpisode",
    "write_rlds_dataset",
    "raw_to_rlds",
    "find_rlds_dir",
    "list_rlds_episodes",
    "crc32c",
    "DROID_IMAGE_FEATURES",
]

DROID_IMAGE_FEATURES = ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left")


# -- dataset discovery ----------------------------------------------------------------------------------
def find_rlds_dir(path: str | os.PathLike) -> Path:
    """The version directory (holding ``dataset_info.json``) of an RLDS dataset at or below ``path``."""
    p = Path(path)
    if (p / "dataset_info.json").is_file():
        return p
    found = sorted(q.parent for q in p.glob("*/dataset_info.json")) or sorted(
        q.parent for q in p.glob("*/*/dataset_info.json")
    )
    if not found:
        raise DataError(p, "not an RLDS/TFDS dataset (no dataset_info.json here or one or two levels below)")
    if len(found) > 1:
        raise DataError(p, f"several RLDS datasets below it: {[str(f) for f in found]}; pass one of them")
    return found[0]


def _builder(version_dir: Path):
    import tensorflow_datasets as tfds  # lazy: 0.3-0.5 s import, no TensorFlow

    try:
        return tfds.builder_from_directory(str(version_dir))
    except Exception as e:  # tfds raises many types for malformed metadata
        raise DataError(version_dir, f"unreadable RLDS metadata: {e}") from e


class _Source:
    """Where the episodes of one RLDS split live and how to parse them (picklable; opens files lazily)."""

    def __init__(self, version_dir: Path, split: str):
        builder = _builder(version_dir)
        if split not in builder.info.splits:
            raise DataError(version_dir, f"no split {split!r} (splits: {list(builder.info.splits)})")
        self.dir = version_dir
        self.name = builder.name
        self.format = str(getattr(builder.info.file_format, "value", builder.info.file_format))
        self.files = [str(f.filename) for f in builder.info.splits[split].file_instructions]
        self.features = builder.info.features
        self.serialized_info = self.features.get_serialized_info()
        self._parser = None
        # (file, byte position) -> problem, for the damaged tail of a shard (listed as one bad episode).
        self.damaged: dict[tuple[str, int], str] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_parser"] = None
        return state

    @property
    def parser(self):
        if self._parser is None:
            from tensorflow_datasets.core import example_parser

            self._parser = example_parser.ExampleParserNp(self.serialized_info)
        return self._parser

    def index(self) -> list[tuple[str, int, int]]:
        """``(file, offset or record number, length)`` per episode, in file order."""
        out = []
        for fp in self.files:
            if not Path(fp).is_file():
                raise DataError(fp, "missing RLDS shard")
            if self.format == "tfrecord":
                records, damage = tfrecord_scan(fp)
                out += [(fp, off, n) for off, n in records]
                if damage is not None:
                    pos, problem = damage
                    self.damaged[(fp, pos)] = f"{problem}; the shard's records from there on are lost"
                    out.append((fp, pos, 0))
            elif self.format == "array_record":
                from array_record.python import array_record_module

                reader = array_record_module.ArrayRecordReader(fp)
                try:
                    out += [(fp, i, -1) for i in range(reader.num_records())]
                finally:
                    reader.close()
            else:
                raise DataError(self.dir, f"unsupported RLDS file format {self.format!r}")
        return out

    def read(self, file: str, offset: int, length: int, episode: str) -> dict:
        if (file, offset) in self.damaged:
            raise DataError(episode, self.damaged[(file, offset)])
        try:
            if length >= 0:
                payload = read_record(file, offset, length, episode)
            else:
                from array_record.python import array_record_module

                reader = array_record_module.ArrayRecordReader(file)
                try:
                    (payload,) = reader.read([offset])
                finally:
                    reader.close()
        except OSError as e:
            raise DataError(episode, f"cannot read RLDS record: {e}") from e
        try:
            return self.parser.parse_example(payload)
        except Exception as e:  # protobuf/parse errors
            raise DataError(episode, f"cannot parse RLDS episode: {e}") from e


class RLDSEpisode(Episode):
    """One episode (one record) of an RLDS DROID dataset.

    Args:
        source: the split's shard set (internal).
        file, offset, length: where the record is.
        camera: image feature name under ``steps/observation`` (default ``"exterior_image_1_left"``).
    """

    def __init__(self, source: _Source, file: str, offset: int, length: int, number: int, camera: str):
        self.source, self.file, self.offset, self.length, self.camera = source, file, offset, length, camera
        self.path = f"{file}#{number}"
        self._cache = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def _example(self) -> dict:
        if self._cache is None:
            self._cache = self.source.read(self.file, self.offset, self.length, self.path)
        return self._cache

    def release(self) -> None:
        self._cache = None

    def _image_shape(self) -> tuple[int, int]:
        obs = self.source.features["steps"]["observation"]
        if self.camera not in obs.keys():
            images = [k for k in obs.keys() if "image" in k]
            raise DataError(self.path, f"no image feature {self.camera!r} (image features: {images})")
        shape = obs[self.camera].shape
        return int(shape[0]), int(shape[1])

    def load(self) -> EpisodeData:
        size = self._image_shape()
        ex = self._example()
        steps = ex.get("steps", {})
        obs = steps.get("observation", {})
        for key in ("cartesian_position", "gripper_position", self.camera):
            if key not in obs:
                raise DataError(self.path, f"RLDS episode has no steps/observation/{key}")
        cart = np.asarray(obs["cartesian_position"], dtype=np.float64)
        grip = np.asarray(obs["gripper_position"], dtype=np.float64).reshape(len(cart), -1)
        if cart.ndim != 2 or cart.shape[1] != 6 or grip.shape[1] != 1:
            raise DataError(self.path, f"bad state shapes: cartesian {cart.shape}, gripper {grip.shape}")
        states = np.concatenate([cart, grip], axis=1)
        check_states(self.path, states, "observation/cartesian_position+gripper_position")
        n = len(states)
        if n == 0:
            raise DataError(self.path, "RLDS episode has no steps")
        if len(obs[self.camera]) != n:
            raise DataError(self.path, f"{self.camera} has {len(obs[self.camera])} images for {n} steps")
        return EpisodeData(
            states=states,
            timestamps=np.arange(n, dtype=np.float64) / DROID_CONTROL_HZ,
            extrinsics=None,
            frame_size=size,
            time_source="control_rate",
            camera=self.camera,
        )

    def read_frames(self, indices) -> np.ndarray:
        from PIL import Image

        images = self._example()["steps"]["observation"][self.camera]
        out = []
        try:
            for i in np.asarray(indices, dtype=np.int64).reshape(-1):
                if not 0 <= i < len(images):
                    raise DataError(self.path, f"frame index {int(i)} out of range ({len(images)} steps)")
                try:
                    with Image.open(io.BytesIO(images[i])) as im:
                        out.append(np.asarray(im.convert("RGB")))
                except OSError as e:
                    raise DataError(self.path, f"cannot decode image {int(i)} of {self.camera}: {e}") from e
        finally:
            self._cache = None  # one clip per load: free the episode's JPEG bytes
        frames = np.stack(out)
        if frames.shape[1:3] != self._image_shape():
            raise DataError(
                self.path, f"images are {frames.shape[1:3]}, features.json says {self._image_shape()}"
            )
        return frames


def list_rlds_episodes(path: str | os.PathLike, split: str = "train", camera: str = DROID_IMAGE_FEATURES[0]):
    """All episodes of ``split`` of the RLDS dataset at or below ``path``."""
    source = _Source(find_rlds_dir(path), split)
    return [RLDSEpisode(source, f, o, n, i, camera) for i, (f, o, n) in enumerate(source.index())]


# -- writing ----------------------------------------------------------------------------------------
def droid_features(image_size: tuple[int, int], cameras: Iterable[str]):
    """tfds ``FeaturesDict`` with DROID's RLDS layout for the given image features."""
    import tensorflow_datasets as tfds

    h, w = image_size
    img = {c: tfds.features.Image(shape=(h, w, 3), dtype=np.uint8, encoding_format="jpeg") for c in cameras}

    def vec(n):
        return tfds.features.Tensor(shape=(n,), dtype=np.float64)

    return tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": {**img, "cartesian_position": vec(6), "gripper_position": vec(1)},
                    "action": vec(7),
                    "language_instruction": tfds.features.Text(),
                    "is_first": tfds.features.Scalar(np.bool_),
                    "is_last": tfds.features.Scalar(np.bool_),
                    "is_terminal": tfds.features.Scalar(np.bool_),
                    "reward": tfds.features.Scalar(np.float32),
                    "discount": tfds.features.Scalar(np.float32),
                }
            ),
            "episode_metadata": {
                "file_path": tfds.features.Text(),
                "recording_folderpath": tfds.features.Text(),
            },
        }
    )


def _jpeg(frame: np.ndarray, quality: int) -> io.BytesIO:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return buf


def write_rlds_dataset(
    out_dir: str | os.PathLike,
    episodes: Iterable[dict],
    *,
    name: str = "droid_sim",
    version: str = "1.0.0",
    split: str = "train",
    episodes_per_shard: int = 100,
    jpeg_quality: int = 95,
    file_format: str = "tfrecord",
    overwrite: bool = False,
) -> Path:
    """Write episodes as a DROID-layout RLDS (TFRecord) dataset, without TensorFlow.

    Each episode is a dict with ``frames`` (image feature name -> ``uint8 [T, H, W, 3]``; every episode
    must use the same names and size), ``cartesian_position [T, 6]``, ``gripper_position [T]`` and
    optional ``action [T, 7]`` (default: the DROID-style commanded next pose
    ``[cartesian_position[t+1], gripper[t+1]]``, last step repeated), ``language_instruction`` (str),
    ``file_path`` and ``recording_folderpath`` (str). Steps are assumed to be at DROID's 15 Hz.
    ``file_format`` is ``"tfrecord"`` (DROID's format) or ``"array_record"`` (random access).

    The dataset is written into a temporary directory and renamed to ``out_dir/name/version``.

    Returns:
        The version directory (open with :class:`RLDSDroidDataset` or ``tfds.builder_from_directory``).
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import example_serializer
    from tqdm import tqdm

    final = Path(out_dir) / name / version
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final}: RLDS dataset already exists (pass overwrite=True)")
    if episodes_per_shard < 1:
        raise ValueError(f"episodes_per_shard: expected >= 1, got {episodes_per_shard}")
    if file_format not in ("tfrecord", "array_record"):
        raise ValueError(f"file_format: expected 'tfrecord' or 'array_record', got {file_format!r}")
    tmp = final.parent / f".{version}.tmp-{os.getpid()}-{uuid_lib.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        features = serializer = cameras = size = None
        shard_lengths: list[int] = []
        shards: list[Path] = []
        f = None
        count = 0
        for ep in tqdm(episodes, desc="writing RLDS", unit="ep", leave=False):
            if features is None:
                cameras = sorted(ep["frames"])
                size = tuple(np.asarray(ep["frames"][cameras[0]]).shape[1:3])
                features = droid_features(size, cameras)
                serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
            example = _rlds_example(ep, cameras, size, count, jpeg_quality)
            payload = serializer.serialize_example(features.encode_example(example))
            if count % episodes_per_shard == 0:
                if f is not None:
                    f.close()
                shards.append(tmp / f"shard-{len(shards):05d}")
                f = _ShardWriter(shards[-1], file_format)
                shard_lengths.append(0)
            f.write(payload)
            shard_lengths[-1] += 1
            count += 1
        if f is not None:
            f.close()
        if count == 0:
            raise ValueError("episodes: nothing to write")
        total = len(shards)
        for i, p in enumerate(shards):
            p.rename(tmp / f"{name}-{split}.{file_format}-{i:05d}-of-{total:05d}")
        num_bytes = sum(p.stat().st_size for p in tmp.iterdir())
        split_info = tfds.core.SplitInfo(name=split, shard_lengths=shard_lengths, num_bytes=num_bytes)
        tfds.folder_dataset.write_metadata(
            data_dir=str(tmp),
            features=features,
            split_infos=[split_info],
            version=version,
            check_data=False,  # checking would read back through TensorFlow
            description="DROID-layout RLDS episodes written by vjepa2-ac (no TensorFlow).",
        )
        # write_metadata records the directory name as the dataset name; fix it to `name`.
        _rename_dataset(tmp, name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class _ShardWriter:
    def __init__(self, path: Path, file_format: str):
        self.format = file_format
        if file_format == "tfrecord":
            self._f = open(path, "wb")
        else:
            from array_record.python import array_record_module

            self._f = array_record_module.ArrayRecordWriter(str(path), "group_size:1")

    def write(self, payload: bytes) -> None:
        self._f.write(tfrecord_frame(payload) if self.format == "tfrecord" else payload)

    def close(self) -> None:
        self._f.close()


def _rename_dataset(version_dir: Path, name: str) -> None:
    import json

    info_path = version_dir / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["name"] = name
    info_path.write_text(json.dumps(info, indent=2))


def _rlds_example(ep: dict, cameras, size, number: int, quality: int) -> dict:
    where = f"episode {number} ({ep.get('file_path', '')})"
    if sorted(ep["frames"]) != cameras:
        raise ValueError(f"{where}: cameras {sorted(ep['frames'])} differ from the first episode's {cameras}")
    cart = np.asarray(ep["cartesian_position"], dtype=np.float64)
    t = len(cart)
    grip = np.asarray(ep["gripper_position"], dtype=np.float64).reshape(t, 1)
    if cart.shape != (t, 6) or t == 0:
        raise ValueError(f"{where}: cartesian_position must be [T, 6] with T >= 1, got {cart.shape}")
    if not (np.isfinite(cart).all() and np.isfinite(grip).all()):
        raise ValueError(f"{where}: states contain NaN or inf")
    frames = {}
    for c in cameras:
        fr = np.asarray(ep["frames"][c])
        if fr.dtype != np.uint8 or fr.shape != (t, *size, 3):
            raise ValueError(
                f"{where}: frames[{c!r}] must be uint8 [{t}, {size[0]}, {size[1]}, 3], got {fr.shape}"
            )
        frames[c] = fr
    if "action" in ep:
        action = np.asarray(ep["action"], dtype=np.float64)
        if action.shape != (t, 7):
            raise ValueError(f"{where}: action must be [T, 7], got {action.shape}")
    else:
        nxt = np.concatenate([cart, grip], axis=1)
        action = np.concatenate([nxt[1:], nxt[-1:]], axis=0)
    text = str(ep.get("language_instruction", ""))
    steps = [
        {
            "observation": {
                **{c: _jpeg(frames[c][i], quality) for c in cameras},
                "cartesian_position": cart[i],
                "gripper_position": grip[i],
            },
            "action": action[i],
            "language_instruction": text,
            "is_first": i == 0,
            "is_last": i == t - 1,
            "is_terminal": i == t - 1,
            "reward": np.float32(0.0),
            "discount": np.float32(1.0),
        }
        for i in range(t)
    ]
    meta = {
        "file_path": str(ep.get("file_path", "")),
        "recording_folderpath": str(ep.get("recording_folderpath", "")),
    }
    return {"steps": steps, "episode_metadata": meta}


def raw_to_rlds(
    source,
    out_dir: str | os.PathLike,
    *,
    camera_map: dict[str, str] | None = None,
    name: str = "droid_sim",
    **kwargs,
) -> Path:
    """Convert raw DROID episodes (as written by ``write_raw_episode``) to an RLDS dataset.

    Args:
        source: raw episodes (directory tree, list file or list of paths).
        out_dir: RLDS data directory.
        camera_map: RLDS image feature -> raw camera (metadata key or serial); default
            ``{"exterior_image_1_left": "left_mp4_path"}`` plus ``wrist_image_left`` when the episodes
            have a wrist camera.
        kwargs: forwarded to :func:`write_rlds_dataset`.

    Steps keep their order; RLDS has no timestamps, so the episodes should be at 15 Hz.
    """
    from vjepa2_ac.datasets.raw import RawEpisode, list_raw_episodes

    paths = list_raw_episodes(source)
    if camera_map is None:
        camera_map = {"exterior_image_1_left": "left_mp4_path"}
        if RawEpisode(paths[0]).metadata().get("wrist_mp4_path"):
            camera_map["wrist_image_left"] = "wrist_mp4_path"

    def episodes() -> Iterator[dict]:
        for p in paths:
            frames, data = {}, None
            for feature, cam in camera_map.items():
                ep = RawEpisode(p, cam, time_source="control_rate")
                d = ep.load()
                data = d if data is None or d.num_steps < data.num_steps else data
                frames[feature] = ep.read_frames(np.arange(d.num_steps))
            n = min(len(f) for f in frames.values())
            meta = RawEpisode(p).metadata()
            yield {
                "frames": {k: v[:n] for k, v in frames.items()},
                "cartesian_position": data.states[:n, :6],
                "gripper_position": data.states[:n, 6],
                "language_instruction": str(meta.get("current_task", "")),
                "file_path": str(Path(p) / "trajectory.h5"),
                "recording_folderpath": str(Path(p) / "recordings" / "MP4"),
            }

    return write_rlds_dataset(out_dir, episodes(), name=name, **kwargs)
