"""Torch datasets of DROID clips (raw and RLDS share this code).

One item per episode: ``dataset[i]`` samples one clip from episode ``i`` (a random start by default, as
the official loader; ``start="first"`` for the earliest possible start). Nothing is read when the dataset
is built unless ``on_error="skip"``, which first validates every episode and reports what it drops.
An error while loading a sample raises; it never silently substitutes another episode.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from vjepa2_ac.datasets.alignment import ALIGNMENTS, align_to_tokens, num_token_steps
from vjepa2_ac.datasets.episode import Episode, EpisodeData
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.raw import TIME_SOURCES, RawEpisode, list_raw_episodes
from vjepa2_ac.datasets.sampling import DEFAULT_TOLERANCE_S, clip_offsets, nearest_indices, valid_starts
from vjepa2_ac.datasets.transforms import VideoTransform

__all__ = ["ClipConfig", "DroidClipDataset", "RawDroidDataset", "RLDSDroidDataset", "SkipReport"]


@dataclass
class ClipConfig:
    """How clips are cut from episodes and turned into model inputs.

    Attributes:
        frames_per_clip: frames ``T`` per clip (8, as the released V-JEPA 2-AC config).
        fps: clip frame rate in robot time (4, as V-JEPA 2-AC); a clip spans ``T / fps`` seconds.
        tubelet_size: frames per token step for ``alignment="subsample"``.
        alignment: ``"subsample"`` (``S = T / tubelet_size`` steps) or ``"duplicate"`` (``S = T``).
        image_size: output height and width.
        crop: ``"droid"`` (official deterministic crop), ``"random"`` (random-resized-crop) or ``"none"``.
        random_scale, random_ratio: random-resized-crop ranges (``ratio`` also bounds the DROID crop).
        start: ``"random"`` clip start or ``"first"`` (earliest start; deterministic).
        time_source: ``"auto"``, ``"robot_timestamps"`` or ``"control_rate"`` (raw episodes).
        time_tolerance_s: max distance between a requested clip time and the frame used.
        frame_count_tolerance: allowed video-vs-state length difference (trimmed with a warning).
        frame_size: expected ``(H, W)`` of the stored frames, or ``None`` to accept any.
        load_extrinsics: add ``extrinsics [S, 6]`` to samples.
        on_error: ``"raise"`` or ``"skip"`` (validate all episodes up front, drop and report bad ones).
        cache_frames: keep every episode's decoded frames in memory after its first clip (each process
            its own copy): for datasets that fit in RAM (simulated episodes at 64 px: ~12 kB a frame),
            where many clips per episode would otherwise decode the same video again and again.
    """

    frames_per_clip: int = 8
    fps: float = 4.0
    tubelet_size: int = 2
    alignment: str = "subsample"
    image_size: int = 256
    crop: str = "droid"
    random_scale: tuple[float, float] = (0.3, 1.0)
    random_ratio: tuple[float, float] = (0.75, 1.35)
    start: str = "random"
    time_source: str = "auto"
    time_tolerance_s: float = DEFAULT_TOLERANCE_S
    frame_count_tolerance: int = 1
    frame_size: tuple[int, int] | None = None
    load_extrinsics: bool = False
    on_error: str = "raise"
    cache_frames: bool = False

    def __post_init__(self):
        if int(self.frames_per_clip) < 1:
            raise ValueError(f"frames_per_clip: expected >= 1, got {self.frames_per_clip}")
        if not float(self.fps) > 0:
            raise ValueError(f"fps: expected > 0, got {self.fps}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment: expected one of {ALIGNMENTS}, got {self.alignment!r}")
        num_token_steps(self.frames_per_clip, self.alignment, self.tubelet_size)  # validates divisibility
        if self.start not in ("random", "first"):
            raise ValueError(f"start: expected 'random' or 'first', got {self.start!r}")
        if self.time_source not in TIME_SOURCES:
            raise ValueError(f"time_source: expected one of {TIME_SOURCES}, got {self.time_source!r}")
        if not self.time_tolerance_s >= 0:
            raise ValueError(f"time_tolerance_s: expected >= 0, got {self.time_tolerance_s}")
        if self.frame_count_tolerance < 0:
            raise ValueError(f"frame_count_tolerance: expected >= 0, got {self.frame_count_tolerance}")
        if self.frame_size is not None:
            self.frame_size = tuple(int(v) for v in self.frame_size)
            if len(self.frame_size) != 2:
                raise ValueError(f"frame_size: expected (H, W), got {self.frame_size}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {self.on_error!r}")
        VideoTransform(self.image_size, self.crop, tuple(self.random_scale), tuple(self.random_ratio))

    @property
    def num_steps(self) -> int:
        """Token steps ``S`` per clip."""
        return num_token_steps(self.frames_per_clip, self.alignment, self.tubelet_size)

    @property
    def span_s(self) -> float:
        """Robot time a clip needs: ``T / fps`` (T frames plus the state after the last one)."""
        return self.frames_per_clip / self.fps


@dataclass
class SkipReport:
    """What ``on_error="skip"`` dropped: ``skipped`` is a list of ``(episode, problem)``."""

    total: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        lines = [f"skipped {self.count} of {self.total} episodes"]
        lines += [f"  {ep}: {problem}" for ep, problem in self.skipped]
        return "\n".join(lines)


class DroidClipDataset(Dataset):
    """Clips from a list of :class:`~vjepa2_ac.datasets.episode.Episode` objects.

    Sample (a dict):
        ``video``: float32 ``[3, T, image_size, image_size]`` (ImageNet-normalised);
        ``states``, ``actions``: float32 ``[S, 7]`` aligned to token steps (see
        :mod:`vjepa2_ac.datasets.alignment`); ``frame_indices``: int64 ``[T]`` episode frame of each clip
        frame; ``state_indices``: int64 ``[S + 1]`` episode step of each step's state (last = the boundary
        the last action reaches); ``frame_times``: float32 ``[T]`` seconds; ``episode``: str;
        ``extrinsics``: float32 ``[S, 6]`` when ``load_extrinsics``.
    """

    def __init__(self, episodes: Iterable[Episode], config: ClipConfig | None = None, **overrides):
        if config is None:
            config = ClipConfig(**overrides)
        elif overrides:
            config = ClipConfig(**{**asdict(config), **overrides})
        self.config = config
        self.transform = VideoTransform(
            config.image_size, config.crop, tuple(config.random_scale), tuple(config.random_ratio)
        )
        self.episodes: list[Episode] = list(episodes)
        if not self.episodes:
            raise ValueError("episodes: the dataset has no episodes")
        self.skip_report = SkipReport(total=len(self.episodes))
        self.cache_size = 1024
        if config.on_error == "skip":
            self._drop_bad_episodes()

    def _drop_bad_episodes(self) -> None:
        good = []
        for ep in tqdm(self.episodes, desc="validating episodes", unit="ep", leave=False):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.validate(ep)
            except DataError as e:
                self.skip_report.skipped.append((e.episode, e.problem))
                continue
            finally:
                ep.release()  # an RLDS episode would otherwise keep its JPEG bytes
            good.append(ep)
        if self.skip_report.count:
            warnings.warn(self.skip_report.summary(), stacklevel=3)
        if not good:
            raise DataError("dataset", f"every episode is bad\n{self.skip_report.summary()}")
        self.episodes = good

    def validate(self, episode: Episode) -> EpisodeData:
        """Load ``episode``'s arrays and check it can give a clip (raises :class:`DataError`)."""
        data = episode.load()
        cfg = self.config
        if cfg.frame_size is not None and tuple(data.frame_size) != cfg.frame_size:
            raise DataError(
                episode.path,
                f"frames are {data.frame_size[0]}x{data.frame_size[1]}, expected "
                f"{cfg.frame_size[0]}x{cfg.frame_size[1]} (frame_size)",
            )
        if data.extrinsics is None and cfg.load_extrinsics:
            raise DataError(episode.path, "no camera extrinsics (load_extrinsics=True)")
        if not len(valid_starts(data.timestamps, cfg.span_s, cfg.time_tolerance_s)):
            raise DataError(
                episode.path,
                f"too short: {data.duration_s:.2f} s of video/states, a clip of {cfg.frames_per_clip} frames "
                f"at {cfg.fps:g} fps needs {cfg.span_s:.2f} s",
            )
        return data

    def _episode_data(self, index: int) -> EpisodeData:
        # Per-process LRU of the small per-step arrays (a DROID episode's states are ~20 kB): repeated
        # clips from one episode skip re-reading the h5 and re-probing the video, and a trim warning is
        # shown once per episode rather than once per clip. Frames are never cached.
        cache = self.__dict__.setdefault("_data_cache", OrderedDict())
        if index in cache:
            cache.move_to_end(index)
            return cache[index]
        data = self.validate(self.episodes[index])
        cache[index] = data
        # With cache_frames every episode's frames stay in memory anyway; bounding its few per-step arrays
        # would only make a pass over more than cache_size episodes re-read each one (LRU thrashing).
        if len(cache) > self.cache_size and not self.config.cache_frames:
            cache.popitem(last=False)
        return data

    def _read_frames(self, index: int, frame_idx: np.ndarray) -> np.ndarray:
        ep = self.episodes[index]
        if not self.config.cache_frames:
            return ep.read_frames(frame_idx)
        cache = self.__dict__.setdefault("_frame_cache", {})
        if index not in cache:
            n = len(self._episode_data(index).timestamps)
            cache[index] = ep.read_frames(np.arange(n))  # [T_episode, H, W, 3]
        return cache[index][frame_idx]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_data_cache", None)  # workers start with an empty cache
        state.pop("_frame_cache", None)
        return state

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> dict:
        return self.get_clip(index)

    def get_clip(
        self, index: int, start_time: float | None = None, generator: torch.Generator | None = None
    ) -> dict:
        """Clip of episode ``index`` starting at ``start_time`` seconds (default: by ``config.start``)."""
        cfg = self.config
        ep = self.episodes[index]
        data = self._episode_data(index)
        offsets = clip_offsets(cfg.frames_per_clip, cfg.fps)
        if start_time is None:
            starts = valid_starts(data.timestamps, cfg.span_s, cfg.time_tolerance_s)
            if cfg.start == "first":
                k = 0
            else:
                # torch's RNG: seeded per DataLoader worker, reproducible under torch.manual_seed.
                k = int(torch.randint(len(starts), (1,), generator=generator))
            start_time = float(data.timestamps[starts[k]])
        idx = nearest_indices(data.timestamps, start_time + offsets, cfg.time_tolerance_s, ep.path)  # [T + 1]
        frame_idx = idx[:-1]
        states, actions, frame_of_step = align_to_tokens(data.states[idx], cfg.alignment, cfg.tubelet_size)
        frames = self._read_frames(index, frame_idx)  # [T, H, W, 3]
        if frames.shape[1:3] != tuple(data.frame_size):
            raise DataError(
                ep.path, f"decoded frames are {frames.shape[1:3]}, the stream says {data.frame_size}"
            )
        sample = {
            "video": self.transform(frames, generator),
            "states": states.float(),
            "actions": actions.float(),
            "frame_indices": torch.from_numpy(frame_idx),
            "state_indices": torch.from_numpy(idx[frame_of_step]),
            "frame_times": torch.from_numpy(data.timestamps[frame_idx]).float(),
            "episode": ep.path,
        }
        if cfg.load_extrinsics:
            sample["extrinsics"] = torch.from_numpy(data.extrinsics[idx[frame_of_step[:-1]]]).float()
        return sample


class RawDroidDataset(DroidClipDataset):
    """Clips from raw DROID episode directories.

    Args:
        source: a directory tree, a file listing episode directories (one per line), or a list of paths.
        camera: metadata key (``"left_mp4_path"`` default, as V-JEPA 2-AC) or camera serial.
        config / overrides: :class:`ClipConfig` fields.
    """

    def __init__(self, source, camera: str = "left_mp4_path", config: ClipConfig | None = None, **overrides):
        cfg = config if config is not None else ClipConfig(**overrides)
        if config is not None and overrides:
            cfg = ClipConfig(**{**asdict(config), **overrides})
        self.camera = camera
        episodes = [
            RawEpisode(
                p,
                camera,
                time_source=cfg.time_source,
                frame_count_tolerance=cfg.frame_count_tolerance,
                load_extrinsics=cfg.load_extrinsics,
            )
            for p in list_raw_episodes(source)
        ]
        super().__init__(episodes, cfg)


class RLDSDroidDataset(DroidClipDataset):
    """Clips from an RLDS DROID dataset (``droid``, ``droid_100``, or one written by
    :func:`~vjepa2_ac.datasets.rlds.write_rlds_dataset`); read without TensorFlow.

    Args:
        path: the dataset directory (``.../droid_100/1.0.0`` or a parent of it), or a list of them.
        split: TFDS split.
        camera: image feature name (``"exterior_image_1_left"`` default, ``"exterior_image_2_left"``,
            ``"wrist_image_left"``).
        config / overrides: :class:`ClipConfig` fields.
    """

    def __init__(
        self,
        path,
        split: str = "train",
        camera: str = "exterior_image_1_left",
        config: ClipConfig | None = None,
        **overrides,
    ):
        cfg = config if config is not None else ClipConfig(**overrides)
        if config is not None and overrides:
            cfg = ClipConfig(**{**asdict(config), **overrides})
        if cfg.time_source == "robot_timestamps":
            raise ValueError("time_source='robot_timestamps': RLDS DROID has no per-step timestamps")
        from vjepa2_ac.datasets.rlds import list_rlds_episodes

        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
        super().__init__([ep for p in paths for ep in list_rlds_episodes(p, split, camera)], cfg)


def numpy_seed_worker(worker_id: int) -> None:  # pragma: no cover - used by DataLoader users
    """``worker_init_fn`` that also seeds numpy from torch's per-worker seed."""
    np.random.seed(torch.initial_seed() % 2**32)
