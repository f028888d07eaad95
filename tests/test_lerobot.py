"""LeRobot v3.0: writer layout, frame-exact reads by timestamp across episode boundaries inside an MP4,
DROID-in-LeRobot clips equal to raw-DROID clips, own-robot mappings, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from droid_helpers import coded_frames, decode_index, make_episode, smooth_states
from scipy.spatial.transform import Rotation
from train_helpers import TINY_TRAIN_AC

from vjepa2_ac.datasets import DataError, RawDroidDataset
from vjepa2_ac.datasets.lerobot import LeRobotClipDataset, list_lerobot_episodes
from vjepa2_ac.datasets.lerobot_mapping import LeRobotMapping, mapping_from_options
from vjepa2_ac.datasets.lerobot_video import decode_at_times
from vjepa2_ac.datasets.lerobot_writer import DROID_FEATURES, LeRobotWriter
from vjepa2_ac.pose import euler_xyz_to_matrix

EXT, WRIST = "observation.images.exterior_1_left", "observation.images.wrist_left"
LENGTHS = (37, 41, 33)  # 37: episode 1 starts mid-GOP (gop 8), so its seek lands inside episode 0
SMALL = dict(image_size=32, start="first", crop="none")


def droid_states(t: int, seed: int) -> np.ndarray:
    """States as DROID's port stores them (float32), back in float64."""
    return smooth_states(t, seed).astype(np.float32).astype(np.float64)


def write_droid_lerobot(root, lengths=LENGTHS, codec="av1", **kw):
    with LeRobotWriter(
        root,
        fps=15,
        features=DROID_FEATURES,
        cameras=[EXT, WRIST],
        codec=codec,
        gop=8,
        episodes_per_file=2,
        **kw,
    ) as w:
        for e, t in enumerate(lengths):
            s = droid_states(t, e)
            w.add_episode(
                {
                    "observation.state.cartesian_position": s[:, :6],
                    "observation.state.gripper_position": s[:, 6],
                },
                {EXT: coded_frames(t, offset=e), WRIST: coded_frames(t, offset=20 + e)},
                task="push the block",
            )
    return root


@pytest.fixture(scope="module")
def droid(tmp_path_factory):
    base = tmp_path_factory.mktemp("lerobot")
    root = write_droid_lerobot(base / "droid_lerobot")
    raw = base / "raw"
    for e, t in enumerate(LENGTHS):
        states = droid_states(t, e)
        make_episode(raw / f"ep{e}", t, states)
        # make_episode codes frame i as i; rewrite the left camera with this episode's offset.
        from vjepa2_ac.datasets import write_mp4

        write_mp4(raw / f"ep{e}" / "recordings" / "MP4" / "cam_left.mp4", coded_frames(t, offset=e), 15)
    return root, raw


def test_writer_layout_and_episode_metadata(droid):
    root, _ = droid
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        f"videos/{EXT}/chunk-000/file-000.mp4",
        f"videos/{EXT}/chunk-000/file-001.mp4",
        f"videos/{WRIST}/chunk-000/file-000.mp4",
        f"videos/{WRIST}/chunk-000/file-001.mp4",
    ]
    assert not [p for p in os.listdir(root.parent) if p.startswith(".")]  # no temporary directory left
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 15 and info["total_frames"] == sum(LENGTHS)
    assert info["features"][EXT]["dtype"] == "video" and info["features"][EXT]["info"]["video.codec"] == "av1"
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == list(LENGTHS)
    assert [e[f"videos/{EXT}/file_index"] for e in eps] == [0, 0, 1]
    assert eps[1][f"videos/{EXT}/from_timestamp"] == pytest.approx(37 / 15)
    assert eps[1][f"videos/{EXT}/to_timestamp"] == pytest.approx(78 / 15)
    assert eps[2][f"videos/{EXT}/from_timestamp"] == 0.0
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 37), (37, 78), (78, 111)]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["episode_index"] == [0] * 37 + [1] * 41 and data["frame_index"][37] == 0
    np.testing.assert_allclose(data["timestamp"][37:40], np.arange(3) / 15, atol=1e-6)
    assert pq.read_table(root / "meta/tasks.parquet").to_pydict()["task_index"] == [0]


@pytest.mark.parametrize("camera,offset", [(EXT, 0), (WRIST, 20)])
def test_frames_by_timestamp_exact_across_episode_boundary(droid, camera, offset):
    root, _ = droid
    for e, ep in enumerate(list_lerobot_episodes(root, camera)):
        data = ep.load()
        t = LENGTHS[e]
        assert data.num_steps == t and data.frame_size == (48, 64) and data.camera == camera
        np.testing.assert_allclose(data.timestamps, np.arange(t) / 15, atol=1e-6)
        np.testing.assert_array_equal(data.states, droid_states(t, e))
        assert decode_index(ep.read_frames(np.arange(t))) == list(range(offset + e, offset + e + t))
        picks = [t - 1, 0, 5, 5, 1]
        assert decode_index(ep.read_frames(picks)) == [offset + e + i for i in picks]


def test_h264_dataset_reads_the_same(tmp_path):
    root = write_droid_lerobot(tmp_path / "h264", lengths=(37, 20), codec="h264")
    ep = list_lerobot_episodes(root, "wrist")[1]  # a preset role name picks the DROID camera
    assert ep.camera == WRIST
    assert decode_index(ep.read_frames(np.arange(20))) == list(range(21, 41))


def test_droid_lerobot_clips_equal_raw_droid_clips(droid):
    root, raw = droid
    lr = LeRobotClipDataset(root, "left", preset="droid", **SMALL)
    rd = RawDroidDataset(sorted(raw.iterdir()), **SMALL)
    assert len(lr) == len(rd) == 3
    for i, t in enumerate(LENGTHS):
        last = (t - 1) / 15 - 2.0  # the latest start of a 2 s clip
        for start in (0.0, last / 2, last):
            a, b = lr.get_clip(i, start_time=start), rd.get_clip(i, start_time=start)
            for k in ("states", "actions", "frame_indices", "state_indices"):
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
            torch.testing.assert_close(a["frame_times"], b["frame_times"], rtol=0, atol=1e-6)
            frames_lr = lr.episodes[i].read_frames(a["frame_indices"].numpy())
            frames_rd = rd.episodes[i].read_frames(b["frame_indices"].numpy())
            assert decode_index(frames_lr) == decode_index(frames_rd)
            # Different codecs (AV1 vs H.264), same pictures up to coding noise.
            assert (a["video"] - b["video"]).abs().mean() < 0.05
    # Random starts: the same generator draws the same clip from both readers.
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    lr_r = LeRobotClipDataset(root, preset="droid", image_size=32, crop="none")
    rd_r = RawDroidDataset(sorted(raw.iterdir()), image_size=32, crop="none")
    for i in range(3):
        a, b = lr_r.get_clip(i, generator=g1), rd_r.get_clip(i, generator=g2)
        torch.testing.assert_close(a["state_indices"], b["state_indices"], rtol=0, atol=0)
        torch.testing.assert_close(a["actions"], b["actions"], rtol=0, atol=0)


def write_own_robot(root, orientation: str, lengths=(36, 31)):
    """Another arm: position, orientation as ``orientation`` format, gripper in mm (80 = open)."""
    width = {"quaternion_xyzw": 4, "quaternion_wxyz": 4, "matrix": 9}[orientation]
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": [f"joint_{i}" for i in range(6)]},
        "observation.ee_pos": {"dtype": "float64", "shape": [3], "names": ["x", "y", "z"]},
        "observation.ee_rot": {"dtype": "float64", "shape": [width], "names": None},
        "observation.gripper_mm": {"dtype": "float64", "shape": [1], "names": None},
    }
    truth = []
    with LeRobotWriter(
        root, fps=10, features=features, cameras=["observation.images.front"], codec="h264"
    ) as w:
        for e, t in enumerate(lengths):
            s = smooth_states(t, 10 + e)
            rot = Rotation.from_euler("xyz", s[:, 3:6])  # scipy: lower case = extrinsic, as vjepa2_ac.pose
            if orientation == "matrix":
                r = rot.as_matrix().reshape(t, 9)
            else:
                r = rot.as_quat(scalar_first=orientation == "quaternion_wxyz")
                r = r * np.where(np.arange(t) % 2, -1.0, 1.0)[:, None]  # q and -q are the same rotation
            w.add_episode(
                {
                    "observation.state": np.zeros((t, 6)),
                    "observation.ee_pos": s[:, :3],
                    "observation.ee_rot": r,
                    "observation.gripper_mm": 80.0 * (1 - s[:, 6]),
                },
                {"observation.images.front": coded_frames(t)},
            )
            truth.append(s)
    return root, truth


@pytest.mark.parametrize("orientation", ["quaternion_xyzw", "quaternion_wxyz", "matrix"])
def test_own_robot_mapping(tmp_path, orientation):
    root, truth = write_own_robot(tmp_path / orientation, orientation)
    mapping = LeRobotMapping(
        position="observation.ee_pos",
        orientation="observation.ee_rot",
        orientation_format=orientation,
        gripper="observation.gripper_mm",
        gripper_range=(80.0, 0.0),
        camera="observation.images.front",
    )
    eps = list_lerobot_episodes(root, mapping=mapping)
    for ep, s in zip(eps, truth, strict=True):
        data = ep.load()
        np.testing.assert_allclose(data.states[:, :3], s[:, :3], atol=1e-12)
        np.testing.assert_allclose(data.states[:, 6], s[:, 6], atol=1e-12)
        # Same rotations (euler angles are unique only up to the wrap of roll/yaw).
        r_got = euler_xyz_to_matrix(torch.from_numpy(data.states[:, 3:6]))
        r_true = euler_xyz_to_matrix(torch.from_numpy(s[:, 3:6]))
        torch.testing.assert_close(r_got, r_true, rtol=0, atol=1e-9)
        np.testing.assert_allclose(data.timestamps, np.arange(len(s)) / 10, atol=1e-6)
    ds = LeRobotClipDataset(root, mapping=mapping, image_size=32, start="first", frames_per_clip=4, fps=5)
    sample = ds[1]
    assert sample["states"].shape == (2, 7) and decode_index(ds.episodes[1].read_frames([0, 2, 4])) == [
        0,
        2,
        4,
    ]


def test_mapping_slices_a_packed_state_and_config_options(tmp_path):
    root, truth = write_own_robot(tmp_path / "q", "quaternion_xyzw", lengths=(12,))
    opts = {
        "position": "observation.ee_pos[0:3]",
        "orientation": "observation.ee_rot",
        "orientation_format": "quaternion_xyzw",
        "gripper": "observation.gripper_mm[0]",
        "gripper_range": [80, 0],
    }
    preset, mapping = mapping_from_options(opts)
    assert preset is None and mapping.gripper_range == (80.0, 0.0)
    (ep,) = list_lerobot_episodes(root, mapping=mapping)  # camera: the only video feature
    np.testing.assert_allclose(ep.load().states[:, 6], truth[0][:, 6], atol=1e-12)
    assert mapping_from_options({"preset": "droid"}) == ("droid", None)
    with pytest.raises(ValueError, match="either preset or mapping"):
        mapping_from_options({"preset": "droid", "position": "x"})
    with pytest.raises(ValueError, match=r"unknown mapping field\(s\) \['pos'\]"):
        mapping_from_options({"pos": "x"})


def test_joint_space_only_dataset_says_what_is_missing(tmp_path):
    root, _ = write_own_robot(tmp_path / "j", "matrix", lengths=(8,))
    with pytest.raises(
        DataError,
        match=r"position: no feature 'observation.state.cartesian_position'.*"
        r"The dataset has: observation.state \[6\].*forward kinematics",
    ):
        list_lerobot_episodes(root)  # the DROID preset does not fit
    bad = LeRobotMapping(
        position="observation.state[0:3]",
        orientation="observation.state[3:6]",
        orientation_format="quaternion_xyzw",
    )
    with pytest.raises(DataError, match=r"orientation: 'observation.state'\[3:6\] has 3 values, expected 4"):
        list_lerobot_episodes(root, mapping=bad)


def test_mapping_validation():
    with pytest.raises(ValueError, match="orientation_format: expected one of"):
        LeRobotMapping(position="a", orientation="b", orientation_format="euler_zyx")
    with pytest.raises(ValueError, match="gripper_range: expected \\(open, closed\\)"):
        LeRobotMapping(position="a", orientation="b", gripper_range=(1, 1))
    with pytest.raises(ValueError, match="position: expected a feature name"):
        LeRobotMapping(position="a[1:2", orientation="b")


def test_bad_datasets_raise_naming_file_and_problem(tmp_path, droid):
    root, _ = droid
    import shutil

    with pytest.raises(DataError, match="not a LeRobot dataset: missing meta/info.json"):
        list_lerobot_episodes(tmp_path)
    old = tmp_path / "old"
    shutil.copytree(root / "meta", old / "meta")
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DataError, match=r"info.json: codebase_version is 'v2.1'"):
        list_lerobot_episodes(old)
    (old / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"camera 'observation.images.top' is not a video feature"):
        list_lerobot_episodes(root, "observation.images.top")
    info["features"]["observation.images.top"] = {"dtype": "image", "shape": [48, 64, 3]}
    (old / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"'observation.images.top' is stored as images in the parquet files"):
        list_lerobot_episodes(old, "observation.images.top")
    # Data and videos missing: load() names the episode and the file.
    (ep,) = list_lerobot_episodes(old, episodes=[2])
    with pytest.raises(DataError, match=r"old#episode_2: missing data file .*file-001.parquet"):
        ep.load()
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    os.remove(broken / f"videos/{EXT}/chunk-000/file-001.mp4")
    with pytest.raises(DataError, match=r"episode_2: missing video file .*file-001.mp4"):
        list_lerobot_episodes(broken, episodes=[2])[0].load()
    # A to_timestamp too early for the data, and a frame asked for past the video's end.
    ep1 = list_lerobot_episodes(root, episodes=[1])[0]
    with pytest.raises(DataError, match=r"no frame within 0.0167 s of time\(s\) \[9.0\]"):
        decode_at_times(ep1.video_path, [9.0], ep1.tolerance_s, ep1.path)
    with pytest.raises(DataError, match=r"no episode\(s\) \[7\]"):
        list_lerobot_episodes(root, episodes=[7])


def test_train_cli_reads_lerobot(droid, tmp_path, capsys):
    root, _ = droid
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY_TRAIN_AC))
    out = tmp_path / "run"
    cmd = ["vjepa2-ac", "train", "--config", str(cfg_path), "--data", str(root), "--out", str(out)]
    cmd += ["--steps", "2", "--set", "data.format=lerobot", "--set", "data.lerobot={preset: droid}"]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "world_model.pt").is_file()
    # Bad input fails before any work with one line naming the config key or the dataset problem.
    from vjepa2_ac.experiments.cli import main

    assert main(cmd[1:-2] + ["--set", "data.lerobot={orientation: x}"]) == 3  # a config error
    err = capsys.readouterr().err
    assert "data.lerobot" in err and "position" in err
    assert main(cmd[1:5] + [str(tmp_path)] + cmd[6:]) == 4  # bad data
    err = capsys.readouterr().err
    assert "not a LeRobot dataset: missing meta/info.json" in err and "Traceback" not in err
