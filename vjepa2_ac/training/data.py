"""Deterministic, resumable data feeding for the training stages.

The order of samples is a pure function of ``(seed, step)``: the global sample stream is the concatenation
of per-epoch permutations of the dataset, global batch ``k`` is items ``k·G .. (k+1)·G`` of that stream
(``G`` = per-process batch × world size), and process ``r`` takes its slice. Every item also gets its own
seed, and the reader's randomness (clip start, camera) runs under that seed in a forked RNG. So a resumed
run (or a run with another number of processes or workers) sees exactly the same clips.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vjepa2_ac.training.config import ConfigError, DataConfig


def _mix(*xs: int) -> int:
    """A 63-bit hash of integers (stable across processes and runs)."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h ^= (int(x) + 0x9E3779B97F4A7C15 + ((h << 6) & (2**64 - 1)) + (h >> 2)) & (2**64 - 1)
        h = (h * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return h & (2**63 - 1)


class ResumableBatches(Sampler):
    """Yields per-process batches of ``(dataset_index, item_seed)`` from global step ``start_step`` on."""

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, start_step: int = 0
    ):
        if n <= 0:
            raise ValueError("the dataset is empty: no clips to train on (check data.paths)")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.start_step = start_step
        self._perm_epoch, self._perm = -1, None

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch, 1))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This process's items of global batch ``step``."""
        gb = self.batch_size * self.world
        out = []
        for j in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            pos = step * gb + j
            epoch, i = divmod(pos, self.n)
            out.append((int(self._perm_for(epoch)[i]), _mix(self.seed, pos, 2)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for len(loader)
        return 2**62


class SeededItems(Dataset):
    """Wraps a dataset so ``ds[(index, seed)]`` runs the reader under its own seeded RNG state."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        py, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py)
                np.random.set_state(np_state)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors/arrays of equal shape; keep everything else (paths, None) as lists."""
    out: dict[str, Any] = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in vals) and len({tuple(v.shape) for v in vals}) == 1:
            out[k] = torch.stack(vals)
        elif all(isinstance(v, np.ndarray) for v in vals) and len({v.shape for v in vals}) == 1:
            out[k] = torch.from_numpy(np.stack(vals))
        else:
            out[k] = vals
    return out


def make_loader(
    dataset: Dataset, cfg: DataConfig, seed: int, rank: int, world: int, start_step: int
) -> Iterator[dict[str, Any]]:
    """An endless iterator of collated batches beginning at global step ``start_step``."""
    sampler = ResumableBatches(len(dataset), cfg.batch_size, seed, rank, world, start_step)
    loader = DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate,
        persistent_workers=cfg.num_workers > 0,
    )
    return iter(loader)


def build_dataset(
    cfg: DataConfig, *, img_size: int, tubelet_size: int, alignment: str = "subsample", **extra: Any
) -> Dataset:
    """A clip dataset from :class:`DataConfig` using the ``vjepa2_ac.datasets`` readers.

    Fails with a clear message when no paths are given or no episode is found.
    """
    if not cfg.paths:
        raise ConfigError("data.paths", "is empty: give episode directories, a root directory or a list file")
    from vjepa2_ac import datasets as ds_mod
    from vjepa2_ac.datasets.errors import DataError

    kwargs = dict(
        frames_per_clip=cfg.frames_per_clip,
        fps=cfg.fps,
        image_size=img_size,
        tubelet_size=tubelet_size,
        alignment=alignment,
        crop=cfg.crop,
    )
    kwargs.update(extra)
    kwargs.update(cfg.reader_kwargs)
    camera = f"{cfg.camera}_mp4_path" if cfg.camera in ("left", "right", "wrist") else cfg.camera
    try:
        if cfg.format == "raw":
            # Each path may be a root, a list file or an episode directory.
            episodes = [str(e) for p in cfg.paths for e in ds_mod.list_raw_episodes(str(p))]
            dataset = ds_mod.RawDroidDataset(episodes, camera=camera, **kwargs)
        elif cfg.format == "lerobot":
            from vjepa2_ac.datasets.lerobot import LeRobotClipDataset
            from vjepa2_ac.datasets.lerobot_mapping import mapping_from_options

            preset, mapping = mapping_from_options(cfg.lerobot)
            # A role (left/right/wrist) picks the preset's camera; "left", the default, the mapping's own.
            cam = cfg.camera
            if mapping is not None and cam in ("left", "right", "wrist"):
                cam = None if cam == "left" else cam
            paths = [str(p) for p in cfg.paths]
            dataset = LeRobotClipDataset(paths, cam, preset=preset, mapping=mapping, **kwargs)
        else:
            source = [str(p) for p in cfg.paths] if len(cfg.paths) > 1 else str(cfg.paths[0])
            dataset = ds_mod.RLDSDroidDataset(source, camera=camera, **kwargs)
    except TypeError as e:
        raise ConfigError(
            "data.reader_kwargs", f"the {cfg.format} reader rejected the data options ({e})"
        ) from None
    except ValueError as e:
        if "no episodes" in str(e) or "empty" in str(e):
            raise DataError(", ".join(map(str, cfg.paths)), f"the dataset is empty: {e}") from None
        raise
    if len(dataset) == 0:
        raise DataError(
            ", ".join(map(str, cfg.paths)), "the dataset is empty: no usable episodes/clips found"
        )
    return dataset
