"""Episodes sharded across ranks and DataLoader workers: each episode exactly once per epoch."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from droid_helpers import coded_frames, make_episode, smooth_states
from torch.utils.data import DataLoader

from vjepa2_ac.datasets import RawDroidDataset
from vjepa2_ac.datasets.lerobot import LeRobotClipDataset
from vjepa2_ac.datasets.lerobot_writer import DROID_FEATURES, LeRobotWriter
from vjepa2_ac.datasets.sharding import ShardedClipStream, shard_bounds

N = 7  # not a multiple of 2 ranks x 2 workers
CLIP = dict(frames_per_clip=2, fps=5.0, tubelet_size=1, image_size=16, crop="none")


@pytest.fixture(scope="module", params=["lerobot", "raw"])
def dataset(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "raw":
        for e in range(N):
            make_episode(root / f"ep{e}", 10, h=32, w=32)
        return RawDroidDataset(root, **CLIP)
    cam = "observation.images.exterior_1_left"
    with LeRobotWriter(
        root / "lr", fps=15, features=DROID_FEATURES, cameras=[cam], codec="h264", episodes_per_file=3
    ) as w:
        for e in range(N):
            s = smooth_states(10, e)
            w.add_episode(
                {
                    "observation.state.cartesian_position": s[:, :6],
                    "observation.state.gripper_position": s[:, 6],
                },
                {cam: coded_frames(10, 32, 32)},
            )
    return LeRobotClipDataset(root / "lr", **CLIP)


def test_shard_bounds_partition():
    for n in (0, 1, 7, 8, 100):
        for k in (1, 3, 4):
            blocks = [shard_bounds(n, s, k) for s in range(k)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
            assert max(b - a for a, b in blocks) - min(b - a for a, b in blocks) <= 1


def test_two_ranks_two_workers_see_each_episode_once_per_epoch(dataset):
    orders = []
    for epoch in (0, 1):
        seen = Counter()
        order = []
        for rank in (0, 1):
            stream = ShardedClipStream(dataset, seed=5, rank=rank, world=2)
            stream.set_epoch(epoch)
            loader = DataLoader(stream, batch_size=None, num_workers=2)
            for sample in loader:
                seen[sample["episode"]] += 1
                order.append(sample["episode"])
        assert sorted(seen) == sorted(ep.path for ep in dataset.episodes)
        assert set(seen.values()) == {1}
        orders.append(order)
    assert orders[0] != orders[1]  # a new permutation each epoch


def test_even_shards_and_deterministic_clips(dataset):
    shards = [
        ShardedClipStream(dataset, rank=r, world=2, even=True).shard(w, 2) for r in (0, 1) for w in (0, 1)
    ]
    assert [len(s) for s in shards] == [1, 1, 1, 1] and len(set(np.concatenate(shards).tolist())) == 4
    a = next(iter(ShardedClipStream(dataset, seed=1, rank=1, world=2)))
    b = next(iter(ShardedClipStream(dataset, seed=1, rank=1, world=2)))
    assert a["episode"] == b["episode"] and a["state_indices"].tolist() == b["state_indices"].tolist()
    with pytest.raises(ValueError, match="rank: expected 0 <= rank < world"):
        ShardedClipStream(dataset, rank=2, world=2)


def test_training_loader_two_ranks_two_workers_once_per_epoch(dataset):
    """`vjepa2-ac train`'s map-style loader: rank r takes slice r of each global batch of one
    permutation per epoch, and a batch goes to one worker, so the same holds there."""
    from vjepa2_ac.training.config import DataConfig
    from vjepa2_ac.training.data import make_loader

    cfg = DataConfig(batch_size=1, num_workers=2)
    seen = Counter()
    for rank in (0, 1):
        loader = make_loader(dataset, cfg, seed=3, rank=rank, world=2, start_step=0)
        for step in range(4):
            batch = next(loader)
            if step * 2 + rank < N:  # global position of this item: epoch 0 holds positions 0..N-1
                seen[batch["episode"][0]] += 1
        del loader
    assert sorted(seen) == sorted(ep.path for ep in dataset.episodes) and set(seen.values()) == {1}
