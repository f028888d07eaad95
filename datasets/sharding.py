"""Streaming clips with episodes sharded across torchrun ranks and DataLoader workers.

:class:`ShardedClipStream` wraps any clip dataset (raw, RLDS or LeRobot episodes): every epoch it draws
one permutation of all episodes from ``(seed, epoch)`` (the same on every rank), splits it into
``world × num_workers`` contiguous shards of near-equal size, and each worker of each rank yields the
clips of its own shard only. So each episode is read exactly once per epoch by exactly one process,
and a worker only ever opens its own episodes' files (its caches stay bounded by the dataset's LRUs).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

__all__ = ["ShardedClipStream", "shard_bounds", "distributed_rank"]


def shard_bounds(n: int, shard: int, num_shards: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``shard`` of ``n`` items split into ``num_shards`` near-equal blocks."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard: expected 0 <= shard < {num_shards}, got {shard}")
    base, extra = divmod(n, num_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (shard < extra)


def distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` from ``torch.distributed`` if initialised, else torchrun's environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardedClipStream(IterableDataset):
    """One clip per episode per epoch, each episode on exactly one (rank, worker).

    Args:
        dataset: a :class:`~vjepa2_ac.datasets.dataset.DroidClipDataset` (``get_clip(i, generator=)``).
        seed: base seed of the per-epoch permutation and of each clip's random start.
        rank, world: this process's rank and the number of ranks (default: :func:`distributed_rank`).
        even: drop the ``n mod (world × workers)`` last episodes of each epoch's permutation so every
            shard has the same length (DDP needs equal batch counts on all ranks); off, every episode
            is seen exactly once per epoch.
    """

    def __init__(
        self, dataset, *, seed: int = 0, rank: int | None = None, world: int | None = None, even=False
    ):
        super().__init__()
        r, w = distributed_rank()
        self.dataset = dataset
        self.seed = int(seed)
        self.rank = r if rank is None else int(rank)
        self.world = w if world is None else int(world)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank: expected 0 <= rank < world ({self.world}), got {self.rank}")
        self.even = bool(even)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (call before iterating, on every rank, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def shard(self, worker: int = 0, num_workers: int = 1) -> np.ndarray:
        """Episode indices this rank's ``worker`` reads in the current epoch (in reading order)."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(n, generator=g).numpy()
        shards = self.world * num_workers
        if self.even:
            perm = perm[: n - n % shards]
        start, stop = shard_bounds(len(perm), self.rank * num_workers + worker, shards)
        return perm[start:stop]

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for i in self.shard(worker, num_workers):
            # A clip's start depends on (seed, epoch, episode) only, not on who reads it.
            state = np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(2, dtype=np.uint32)
            g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            yield self.dataset.get_clip(int(i), generator=g)
