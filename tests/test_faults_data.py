"""Damaged data: named, reported per episode, never silently used or skipped."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from droid_helpers import coded_frames, make_episode, smooth_states

from vjepa2_ac.datasets import DataError, RawDroidDataset, RLDSDroidDataset
from vjepa2_ac.datasets.check import check_dataset
from vjepa2_ac.datasets.rlds import tfrecord_index, write_rlds_dataset
from vjepa2_ac.experiments.cli import main

SMALL = dict(image_size=32, start="first")


def _rlds_episode(i: int) -> dict:
    s = smooth_states(40, seed=i)
    return {
        "frames": {"exterior_image_1_left": coded_frames(40)},
        "cartesian_position": s[:, :6],
        "gripper_position": s[:, 6],
        "language_instruction": "push",
    }


@pytest.fixture
def rlds(tmp_path):
    """Four episodes in two shards of two."""
    d = write_rlds_dataset(tmp_path / "rlds", [_rlds_episode(i) for i in range(4)], episodes_per_shard=2)
    shards = sorted(d.glob("*.tfrecord-*"))
    assert len(shards) == 2
    return d, shards


def test_rlds_payload_corruption_is_found_and_named(rlds, tmp_path, capsys):
    d, shards = rlds
    # Change one state value inside record 1 of shard 0 (x of step 5), as a flipped disk sector would.
    data = bytearray(shards[0].read_bytes())
    offset, length = tfrecord_index(shards[0])[1]
    x = float(smooth_states(40, seed=1)[5, 0])
    for fmt in ("<d", "<f"):
        at = data.find(struct.pack(fmt, x), offset, offset + length)
        if at >= 0:
            data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, 5.0)
            break
    assert at >= 0
    shards[0].write_bytes(bytes(data))
    ds = RLDSDroidDataset(d, **SMALL)
    assert len(ds) == 4
    for i in (0, 2, 3):  # the other episodes, including the damaged shard's other one, stay readable
        assert ds[i]["states"].shape[0] == 4
    with pytest.raises(DataError, match=r"tfrecord-00000-of-00002#1: record payload CRC mismatch"):
        ds[1]
    report_path = tmp_path / "r.json"
    assert main(["data", "check", str(d), "--json", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    assert report["episodes"] == 4 and report["good"] == 3
    assert [b["episode"].rsplit("/", 1)[1] for b in report["bad"]] == [
        "droid_sim-train.tfrecord-00000-of-00002#1"
    ]
    assert "BAD" in capsys.readouterr().out


def test_rlds_damaged_header_loses_only_the_rest_of_its_shard(rlds):
    d, shards = rlds
    data = bytearray(shards[1].read_bytes())
    second = tfrecord_index(shards[1])[1][0] - 12  # header of the shard's second record
    data[second] ^= 0xFF
    shards[1].write_bytes(bytes(data))
    report = check_dataset(d, progress=False)
    assert report["episodes"] == 4 and report["good"] == 3
    (bad,) = report["bad"]
    assert bad["episode"].endswith("tfrecord-00001-of-00002#3")
    assert f"corrupt TFRecord header at byte {second}" in bad["problem"]


def _damage_middle_of_video(mp4) -> None:
    data = bytearray(mp4.read_bytes())
    start = data.find(b"mdat") + int(0.3 * (len(data) - data.find(b"mdat")))
    data[start : start + 400] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    mp4.write_bytes(bytes(data))


def test_damaged_mp4_empty_and_incomplete_episodes_are_reported(tmp_path, capsys):
    root = tmp_path / "raw"
    make_episode(root / "good", 40)
    video = make_episode(root / "video", 40) / "recordings" / "MP4" / "cam_left.mp4"
    _damage_middle_of_video(video)
    (root / "empty").mkdir()
    make_episode(root / "noh5", 40)
    (root / "noh5" / "trajectory.h5").unlink()
    report = check_dataset(root, progress=False, clip_seconds=None)
    bad = {b["episode"].rsplit("/", 1)[1]: b["problem"] for b in report["bad"]}
    assert report["episodes"] == 4 and report["good"] == 1 and report["frames_checked"] == "all"
    assert bad["empty"] == "empty episode directory (no metadata_*.json, trajectory.h5)"
    assert bad["noh5"] == "missing trajectory.h5"
    assert bad["video"].startswith(f"damaged video {video}: ")
    fast = check_dataset(root, progress=False, clip_seconds=None, fast=True)
    assert fast["episodes"] == 4 and fast["frames_checked"] == "first and last"
    # Training on the damaged episode names the file instead of a bare PyAV error.
    ds = RawDroidDataset([root / "video"], frames_per_clip=38, fps=15.0, **SMALL)
    with pytest.raises(DataError, match=f"damaged video {video}"):
        ds[0]


def test_data_check_keeps_going_and_writes_its_report(tmp_path, capsys):
    root = tmp_path / "raw"
    make_episode(root / "a", 40)
    (root / "b").mkdir()
    shutil.copytree(root / "a", root / "c")
    (root / "c" / "recordings" / "MP4" / "cam_wrist.mp4").write_bytes(b"not a video")
    out = tmp_path / "report.json"
    assert main(["data", "check", str(root), "--json", str(out), "--fast"]) == 1
    report = json.loads(out.read_text())
    assert report["episodes"] == 3 and report["good"] == 1
    assert {b["episode"].rsplit("/", 1)[1] for b in report["bad"]} == {"b", "c"}
    assert "episodes: 3 (1 good, 2 bad)" in capsys.readouterr().out


def test_a_data_error_in_a_loader_worker_keeps_its_type_and_message(tmp_path):
    from torch.utils.data import DataLoader

    root = tmp_path / "raw"
    video = make_episode(root / "video", 40) / "recordings" / "MP4" / "cam_left.mp4"
    _damage_middle_of_video(video)
    ds = RawDroidDataset([root / "video"], frames_per_clip=38, fps=15.0, **SMALL)
    with pytest.raises(DataError) as e:
        next(iter(DataLoader(ds, batch_size=1, num_workers=1)))
    assert e.value.episode == str(root / "video")
    assert e.value.problem.startswith(f"damaged video {video}: ") and "\n" not in str(e.value)
