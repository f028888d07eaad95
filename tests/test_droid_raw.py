"""Raw DROID writer + reader: exact frames/states per clip, alignments, bad input, workers."""

from __future__ import annotations

import json
import os
import warnings

import h5py
import numpy as np
import pytest
import torch
from droid_helpers import H, W, coded_frames, decode_index, make_episode, smooth_states
from torch.utils.data import DataLoader

from vjepa2_ac.datasets import (
    ClipConfig,
    DataError,
    RawDroidDataset,
    RawEpisode,
    VideoReader,
    align_to_tokens,
    list_raw_episodes,
    write_raw_episode,
)
from vjepa2_ac.pose import pose_difference, poses_to_actions

SMALL = dict(image_size=32, start="first")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    states = smooth_states(40)
    make_episode(root / "ep0", 40, states, metadata={"success": True, "current_task": "push"})
    return root, states


def _read_raw_clip(ds, i=0, **kw):
    """Sample plus the raw decoded frames of the clip (to read the encoded indices)."""
    s = ds.get_clip(i, **kw)
    frames = ds.episodes[i].read_frames(s["frame_indices"].numpy())
    return s, frames


def test_writer_layout_metadata_and_h5(good):
    root, states = good
    ep = root / "ep0"
    assert sorted(os.listdir(ep)) == ["metadata_ep0.json", "recordings", "trajectory.h5"]
    assert sorted(os.listdir(ep / "recordings" / "MP4")) == ["cam_left.mp4", "cam_wrist.mp4"]
    assert not [p for p in os.listdir(root) if p.startswith(".")]  # no temporary directories left
    meta = json.loads((ep / "metadata_ep0.json").read_text())
    assert meta["left_mp4_path"] == "recordings/MP4/cam_left.mp4"
    assert meta["wrist_mp4_path"] == "recordings/MP4/cam_wrist.mp4"
    assert meta["right_mp4_path"] == ""
    assert meta["wrist_cam_serial"] == "cam_wrist" and meta["ext1_cam_serial"] == "cam_left"
    assert meta["trajectory_length"] == 40 and meta["success"] is True and meta["current_task"] == "push"
    with h5py.File(ep / "trajectory.h5") as f:
        np.testing.assert_array_equal(f["observation/robot_state/cartesian_position"][()], states[:, :6])
        np.testing.assert_array_equal(f["observation/robot_state/gripper_position"][()], states[:, 6])
        assert f["observation/camera_extrinsics/cam_left_left"].shape == (40, 6)
        sec = f["observation/timestamp/robot_state/robot_timestamp_seconds"][()]
        ns = f["observation/timestamp/robot_state/robot_timestamp_nanos"][()]
        np.testing.assert_allclose(sec + ns * 1e-9, np.arange(40) / 15, atol=1e-9)
        assert f.attrs["success"] and f.attrs["current_task"] == "push"
    with VideoReader(ep / "recordings" / "MP4" / "cam_left.mp4") as vr:
        assert vr.num_frames == 40 and vr.frame_size == (H, W)
        assert decode_index(vr.read([39, 0, 17, 17])) == [39, 0, 17, 17]
    with pytest.raises(FileExistsError, match="already exists"):
        make_episode(ep, 40)


def test_writer_rejects_bad_input(tmp_path):
    fr = coded_frames(5)
    cart, grip = np.zeros((5, 6)), np.zeros(5)
    with pytest.raises(ValueError, match=r"frames\['c'\]: expected uint8 \[5, H, W, 3\]"):
        write_raw_episode(tmp_path / "a", {"c": fr[:4]}, cart, grip, camera_roles={"left": "c"})
    with pytest.raises(ValueError, match="gripper_position: expected 5 rows"):
        write_raw_episode(tmp_path / "a", {"c": fr}, cart, np.zeros(4), camera_roles={"left": "c"})
    with pytest.raises(ValueError, match="cartesian_position: contains NaN"):
        write_raw_episode(tmp_path / "a", {"c": fr}, cart * np.nan, grip, camera_roles={"left": "c"})
    with pytest.raises(ValueError, match="unknown role 'top'"):
        write_raw_episode(tmp_path / "a", {"c": fr}, cart, grip, camera_roles={"top": "c"})
    with pytest.raises(ValueError, match="even frame sizes"):
        write_raw_episode(
            tmp_path / "a", {"c": coded_frames(5, 47, 64)}, cart, grip, camera_roles={"left": "c"}
        )
    assert not list(tmp_path.iterdir())  # failed writes leave nothing behind


def test_subsample_clip_gets_exact_frames_states_actions(good):
    root, states = good
    ds = RawDroidDataset(root, **SMALL)  # 8 frames, 4 fps, tubelet 2
    s, frames = _read_raw_clip(ds)
    # 4 fps on the 15 Hz robot clock: times k/4 s -> nearest steps round(3.75 k) (ties to the earlier one)
    expected = [0, 4, 7, 11, 15, 19, 22, 26, 30]
    assert s["frame_indices"].tolist() == expected[:8]
    assert decode_index(frames) == expected[:8]
    assert s["state_indices"].tolist() == [0, 7, 15, 22, 30]
    torch.testing.assert_close(s["states"], torch.from_numpy(states[[0, 7, 15, 22]]).float())
    ref = pose_difference(torch.from_numpy(states[[0, 7, 15, 22]]), torch.from_numpy(states[[7, 15, 22, 30]]))
    torch.testing.assert_close(s["actions"], ref.float())
    assert s["video"].shape == (3, 8, 32, 32) and s["video"].dtype == torch.float32
    torch.testing.assert_close(s["frame_times"], torch.tensor(expected[:8]) / 15.0)
    assert s["episode"] == str(root / "ep0")


def test_duplicate_and_tubelet1_alignments(good):
    root, states = good
    for kw in (dict(alignment="duplicate"), dict(alignment="subsample", tubelet_size=1)):
        s = RawDroidDataset(root, **SMALL, **kw)[0]
        idx = [0, 4, 7, 11, 15, 19, 22, 26, 30]
        assert s["states"].shape == (8, 7) and s["actions"].shape == (8, 7)
        assert s["state_indices"].tolist() == idx
        torch.testing.assert_close(s["states"], torch.from_numpy(states[idx[:8]]).float())
        torch.testing.assert_close(s["actions"], poses_to_actions(torch.from_numpy(states[idx])).float())
    # tubelet 4: two steps, actions across 4 frames each
    s = RawDroidDataset(root, **SMALL, tubelet_size=4)[0]
    assert s["state_indices"].tolist() == [0, 15, 30]
    with pytest.raises(ValueError, match="multiple of tubelet_size"):
        ClipConfig(frames_per_clip=6, tubelet_size=4)


def test_subsample_action_is_composition_of_frame_actions(good):
    _, states = good
    st = torch.from_numpy(states[:9])
    per_frame = poses_to_actions(st)
    _, actions, frames = align_to_tokens(st, "subsample", 2)
    assert frames.tolist() == [0, 2, 4, 6, 8]
    from vjepa2_ac.pose import apply_action

    for j in range(4):
        pose = st[2 * j]
        for a in per_frame[2 * j : 2 * j + 2]:
            pose = apply_action(pose, a)
        torch.testing.assert_close(apply_action(st[2 * j], actions[j]), pose)


def test_actions_match_official_fixture(tmp_path, parity_dir):
    fx = torch.load(parity_dir / "pose_utils.pt", weights_only=True)
    traj = fx["inputs"]["trajectory_states"].numpy()  # [8, 7] float64
    make_episode(tmp_path / "fx", 8, traj)
    ds = RawDroidDataset(tmp_path, frames_per_clip=7, fps=15, alignment="duplicate", **SMALL)
    s = ds[0]
    assert s["frame_indices"].tolist() == list(range(7))
    torch.testing.assert_close(
        s["actions"].double(), fx["outputs"]["droid_poses_to_diffs"], atol=1e-6, rtol=0
    )


def test_sampling_uses_robot_clock_not_container_fps(tmp_path):
    # Container says 60 fps (as some public DROID files), the robot ran at 15 Hz.
    states = smooth_states(40)
    make_episode(tmp_path / "e", 40, states, fps=60, timestamps=np.arange(40) / 15 + 1000.0)
    with VideoReader(tmp_path / "e" / "recordings" / "MP4" / "cam_left.mp4") as vr:
        assert round(float(vr._open()[1].average_rate)) == 60
    s, frames = _read_raw_clip(RawDroidDataset(tmp_path, **SMALL))
    assert s["frame_indices"].tolist() == [0, 4, 7, 11, 15, 19, 22, 26]
    assert decode_index(frames) == [0, 4, 7, 11, 15, 19, 22, 26]
    # non-uniform robot clock: a 10 Hz stretch is indexed by time, not by row count
    ts = np.concatenate([np.arange(20) / 15, 19 / 15 + np.arange(1, 21) / 10])
    make_episode(tmp_path / "f", 40, states, timestamps=ts)
    ds = RawDroidDataset([tmp_path / "f"], time_tolerance_s=0.06, **SMALL)  # 10 Hz: half-period 0.05 s
    s = ds.get_clip(0, start_time=ts[16])
    want = [int(np.argmin(np.abs(ts - (ts[16] + k / 4)))) for k in range(8)]
    assert s["frame_indices"].tolist() == want
    # the control-rate clock ignores the h5 timestamps
    s = RawDroidDataset([tmp_path / "f"], time_source="control_rate", **SMALL)[0]
    assert s["frame_indices"].tolist() == [0, 4, 7, 11, 15, 19, 22, 26]


def test_time_gap_beyond_tolerance_is_an_error(tmp_path):
    ts = np.arange(40) / 15
    ts[10:] += 1.0  # one second with no frames
    make_episode(tmp_path / "g", 40, timestamps=ts)
    ds = RawDroidDataset(tmp_path, **SMALL)
    with pytest.raises(DataError, match=r"g: no frame within 0\.040 s of requested time"):
        ds[0]


def test_random_start_and_extra_outputs(good):
    root, _ = good
    ds = RawDroidDataset(root, image_size=32, load_extrinsics=True, crop="random")
    torch.manual_seed(0)
    starts = {int(ds[0]["frame_indices"][0]) for _ in range(6)}
    assert len(starts) > 1 and max(starts) <= 39 - 30
    s = ds[0]
    st = s["state_indices"][:-1]
    torch.testing.assert_close(s["extrinsics"], (torch.arange(6.0) + st[:, None]).float())


def test_mp4_one_frame_short_is_trimmed_with_warning_beyond_is_error(tmp_path):
    make_episode(tmp_path / "short1", 40, video_frames=39)
    ep = RawEpisode(tmp_path / "short1")
    with pytest.warns(UserWarning, match="video has 39 frames, states have 40 rows; using the first 39"):
        data = ep.load()
    assert data.num_steps == 39
    make_episode(tmp_path / "short3", 40, video_frames=37)
    with pytest.raises(DataError, match=r"short3: video has 37 frames but the states have 40 rows"):
        RawEpisode(tmp_path / "short3").load()


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    make_episode(root / "ok", 40)
    # truncated h5
    make_episode(root / "trunc_h5", 40)
    h5 = root / "trunc_h5" / "trajectory.h5"
    h5.write_bytes(h5.read_bytes()[:1000])
    # missing video
    make_episode(root / "no_video", 40)
    (root / "no_video" / "recordings" / "MP4" / "cam_left.mp4").unlink()
    # missing metadata
    make_episode(root / "no_meta", 40)
    (root / "no_meta" / "metadata_no_meta.json").unlink()
    # NaN states
    make_episode(root / "nan_states", 40)
    with h5py.File(root / "nan_states" / "trajectory.h5", "r+") as f:
        f["observation/robot_state/cartesian_position"][5, 2] = np.nan
    # shorter than a clip (8 frames at 4 fps need 2 s; 20 steps = 1.27 s)
    make_episode(root / "too_short", 20)
    # wrong image size
    make_episode(root / "big_frames", 40, h=64, w=96)
    return root


@pytest.mark.parametrize(
    "name, message",
    [
        ("trunc_h5", "unreadable or truncated trajectory.h5"),
        ("no_video", "missing video file"),
        ("no_meta", "missing metadata_"),
        ("nan_states", r"NaN/inf values at rows \[5\]"),
        ("too_short", r"too short: 1\.27 s .* needs 2\.00 s"),
        ("big_frames", "frames are 64x96, expected 48x64"),
    ],
)
def test_bad_episodes_raise_clear_errors(bad_root, name, message):
    ds = RawDroidDataset([bad_root / name], frame_size=(H, W), **SMALL)
    with pytest.raises(DataError, match=message) as info:
        ds[0]
    assert info.value.episode == str(bad_root / name)


def test_skip_bad_episodes_reports_count_and_reasons(bad_root):
    with pytest.warns(UserWarning, match="skipped 6 of 7 episodes"):
        ds = RawDroidDataset(bad_root, frame_size=(H, W), on_error="skip", **SMALL)
    assert len(ds) == 1 and ds.episodes[0].path.endswith("ok")
    reasons = dict(ds.skip_report.skipped)
    assert set(os.path.basename(p) for p in reasons) == {
        "trunc_h5",
        "no_video",
        "no_meta",
        "nan_states",
        "too_short",
        "big_frames",
    }
    assert "missing video file" in reasons[str(bad_root / "no_video")]


def test_camera_selection_and_missing_camera(good):
    root, _ = good
    s, frames = _read_raw_clip(RawDroidDataset(root, camera="wrist_mp4_path", **SMALL))
    assert decode_index(frames) == [i + 10 for i in s["frame_indices"].tolist()]
    s, frames = _read_raw_clip(RawDroidDataset(root, camera="cam_wrist", **SMALL))
    assert decode_index(frames)[0] == 10
    with pytest.raises(DataError, match="metadata key 'right_mp4_path' is empty"):
        RawDroidDataset(root, camera="right_mp4_path", **SMALL)[0]


def test_episode_list_file_and_dataloader_workers(good, tmp_path):
    root, _ = good
    listing = tmp_path / "paths.txt"
    listing.write_text(f"# DROID episodes\n{root / 'ep0'} 1\n\n{root / 'ep0'}\n")
    assert list_raw_episodes(listing) == [root / "ep0", root / "ep0"]
    ds = RawDroidDataset(listing, image_size=32)
    before = _open_mp4s()
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 1 and batches[0]["video"].shape == (2, 3, 8, 32, 32)
    assert batches[0]["actions"].shape == (2, 4, 7) and len(batches[0]["episode"]) == 2
    for _ in DataLoader(ds, batch_size=2, num_workers=0):
        pass
    assert _open_mp4s() == before  # no file handle left open in this process
    with pytest.raises(DataError, match="no such directory or episode list file"):
        list_raw_episodes(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no episode directories"):
        list_raw_episodes(tmp_path / "empty")


def _open_mp4s() -> int:
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sum(p.endswith((".mp4", ".h5")) for p in fds)


def test_clip_config_validation():
    with pytest.raises(ValueError, match="alignment: expected one of"):
        ClipConfig(alignment="nope")
    with pytest.raises(ValueError, match="on_error"):
        ClipConfig(on_error="retry")
    with pytest.raises(ValueError, match="crop"):
        ClipConfig(crop="fancy")
    warnings.simplefilter("error")  # config construction itself warns about nothing
    ClipConfig()
    warnings.resetwarnings()


def test_variable_frame_rate_video_is_read_by_frame_position(tmp_path):
    from fractions import Fraction

    import av

    frames = coded_frames(40)
    pts = np.concatenate([[0], np.cumsum(np.random.default_rng(0).integers(600, 1500, 39))])
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=15)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.codec_context.time_base = st.time_base = Fraction(1, 15360)
        st.options = {"g": "15"}
        for i in range(40):
            f = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            f.pts, f.time_base = int(pts[i]), Fraction(1, 15360)
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    with VideoReader(path) as vr:
        assert decode_index(vr.read([39, 0, 17, 18, 33])) == [39, 0, 17, 18, 33]
        assert vr._pts is not None and len(vr._pts) == 40  # switched to the timestamp table


def test_real_franka_example_through_the_loader(tmp_path, shared):
    data = np.load(shared / "data" / "franka_example_traj.npz")
    frames, states = data["observations"][0], data["states"][0].astype(np.float64)  # [2,256,256,3], [2,7]
    write_raw_episode(
        tmp_path / "franka", {"ext": frames}, states[:, :6], states[:, 6], camera_roles={"left": "ext"}
    )
    ds = RawDroidDataset(
        tmp_path, frames_per_clip=1, fps=15, alignment="duplicate", image_size=64, start="first"
    )
    s = ds[0]
    expected = torch.tensor([[0.09237, 0.03099, 0.08428, -0.01717, -0.01000, -0.00002, 0.0]])
    torch.testing.assert_close(s["actions"], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(s["states"], torch.from_numpy(states[:1]).float())
    assert s["video"].shape == (3, 1, 64, 64)
    # the decoded frame is the real frame (H.264 is lossy: compare means)
    decoded = ds.episodes[0].read_frames([0, 1]).astype(np.float64)
    assert np.abs(decoded - frames).mean() < 3.0
