"""RLDS DROID: written and read without TensorFlow; same clips as the raw loader."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from droid_helpers import coded_frames, decode_index, make_episode, smooth_states

from vjepa2_ac.datasets import DataError, RawDroidDataset, RLDSDroidDataset
from vjepa2_ac.datasets.rlds import (
    crc32c,
    raw_to_rlds,
    tfrecord_index,
    write_rlds_dataset,
)

SMALL = dict(image_size=32, start="first")


@pytest.fixture(scope="module")
def rlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlds")
    states = [smooth_states(40, seed=i) for i in range(3)]
    for i, s in enumerate(states):
        make_episode(root / "raw" / f"ep{i}", 40, s, metadata={"current_task": f"task {i}"})
    version_dir = raw_to_rlds(root / "raw", root / "rlds", episodes_per_shard=2)
    return root, version_dir, states


def test_layout_and_tfds_metadata(rlds):
    import tensorflow_datasets as tfds

    root, version_dir, _ = rlds
    assert version_dir == root / "rlds" / "droid_sim" / "1.0.0"
    names = sorted(p.name for p in version_dir.iterdir())
    assert names == [
        "dataset_info.json",
        "droid_sim-train.tfrecord-00000-of-00002",
        "droid_sim-train.tfrecord-00001-of-00002",
        "features.json",
    ]
    b = tfds.builder_from_directory(str(version_dir))
    assert b.name == "droid_sim" and b.info.splits["train"].num_examples == 3
    obs = b.info.features["steps"]["observation"]
    assert obs["exterior_image_1_left"].shape == (48, 64, 3) and obs["cartesian_position"].shape == (6,)
    assert "wrist_image_left" in obs.keys()
    assert [n for _, n in tfrecord_index(version_dir / names[1])] and len(
        tfrecord_index(version_dir / names[1])
    ) == 2


def test_rlds_clips_exact_frames_states_and_match_raw(rlds):
    root, version_dir, states = rlds
    ds = RLDSDroidDataset(root / "rlds", **SMALL)
    raw = RawDroidDataset(root / "raw", **SMALL)
    assert len(ds) == 3
    for i in range(3):
        s = ds[i]
        assert s["frame_indices"].tolist() == [0, 4, 7, 11, 15, 19, 22, 26]
        assert (
            decode_index(ds.episodes[i].read_frames(s["frame_indices"].numpy()))
            == s["frame_indices"].tolist()
        )
        torch.testing.assert_close(s["states"], torch.from_numpy(states[i][[0, 7, 15, 22]]).float())
        r = raw[i]
        torch.testing.assert_close(s["actions"], r["actions"])
        assert (s["video"] - r["video"]).abs().mean() < 0.05  # JPEG vs H.264, same frames
    assert len(RLDSDroidDataset([version_dir, root / "rlds"], **SMALL)) == 6  # several datasets at once
    wrist = RLDSDroidDataset(version_dir, camera="wrist_image_left", alignment="duplicate", **SMALL)
    s = wrist[0]
    assert s["states"].shape == (8, 7)
    assert decode_index(wrist.episodes[0].read_frames([0, 5])) == [10, 15]


def test_reading_never_imports_tensorflow(rlds):
    # Reading worked above without TensorFlow installed; where it is installed, it must stay unimported.
    root, _, _ = rlds
    RLDSDroidDataset(root / "rlds", **SMALL)[0]
    assert "tensorflow" not in sys.modules


def test_crc32c_and_corrupt_or_truncated_shards(rlds, tmp_path):
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    _, version_dir, _ = rlds
    shard = version_dir / "droid_sim-train.tfrecord-00000-of-00002"
    data = shard.read_bytes()
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated TFRecord"):
        tfrecord_index(bad)
    bad.write_bytes(b"\x01" + data[1:])
    with pytest.raises(DataError, match="CRC mismatch"):
        tfrecord_index(bad)


def test_wrong_image_size_and_missing_camera(tmp_path):
    eps = [
        {
            "frames": {"exterior_image_1_left": coded_frames(40)},
            "cartesian_position": smooth_states(40)[:, :6],
            "gripper_position": smooth_states(40)[:, 6],
            "language_instruction": "push",
        }
    ]
    d = write_rlds_dataset(tmp_path, eps, name="tiny")
    with pytest.raises(DataError, match="no image feature 'wrist_image_left'"):
        RLDSDroidDataset(d, camera="wrist_image_left", **SMALL)[0]
    with pytest.raises(DataError, match="frames are 48x64, expected 180x320"):
        RLDSDroidDataset(d, frame_size=(180, 320), **SMALL)[0]
    # features.json promising another size than the stored JPEGs
    fj = d / "features.json"
    fj.write_text(fj.read_text().replace('"48"', '"50"'))
    with pytest.raises(DataError, match=r"images are \(48, 64\), features.json says \(50, 64\)"):
        RLDSDroidDataset(d, **SMALL)[0]
    with pytest.raises(FileExistsError):
        write_rlds_dataset(tmp_path, eps, name="tiny")
    bad = [dict(eps[0], frames={"exterior_image_1_left": coded_frames(39)})]
    with pytest.raises(
        ValueError, match=r"frames\['exterior_image_1_left'\] must be uint8 \[40, 48, 64, 3\]"
    ):
        write_rlds_dataset(tmp_path, bad, name="tiny2")
    assert not (tmp_path / "tiny2" / "1.0.0").exists()  # nothing half-written
    with pytest.raises(ValueError, match="robot_timestamps"):
        RLDSDroidDataset(d, time_source="robot_timestamps")


def test_short_rlds_episode_is_reported(tmp_path):
    eps = [
        {
            "frames": {"exterior_image_1_left": coded_frames(n)},
            "cartesian_position": np.zeros((n, 6)),
            "gripper_position": np.zeros(n),
        }
        for n in (40, 10)
    ]
    d = write_rlds_dataset(tmp_path, eps, name="mixed")
    with pytest.warns(UserWarning, match="skipped 1 of 2 episodes"):
        ds = RLDSDroidDataset(d, on_error="skip", **SMALL)
    assert len(ds) == 1
    ((episode, problem),) = ds.skip_report.skipped
    assert episode.endswith("#1") and "too short" in problem
    info = json.loads((d / "dataset_info.json").read_text())
    assert info["splits"][0]["shardLengths"] == ["2"]


def test_array_record_format(tmp_path):
    eps = [
        {
            "frames": {"exterior_image_1_left": coded_frames(40)},
            "cartesian_position": smooth_states(40)[:, :6],
            "gripper_position": smooth_states(40)[:, 6],
        }
        for _ in range(2)
    ]
    d = write_rlds_dataset(tmp_path, eps, name="ar", file_format="array_record")
    assert sorted(p.name for p in d.glob("ar-train.*")) == ["ar-train.array_record-00000-of-00001"]
    ds = RLDSDroidDataset(d, **SMALL)
    s = ds[1]
    assert ds.episodes[1].path.endswith("#1")
    assert decode_index(ds.episodes[1].read_frames(s["frame_indices"].numpy())) == [
        0,
        4,
        7,
        11,
        15,
        19,
        22,
        26,
    ]
    torch.testing.assert_close(s["states"], torch.from_numpy(smooth_states(40)[[0, 7, 15, 22]]).float())
