"""``vjepa2-ac data check`` as a subprocess: exit codes and the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
from droid_helpers import make_episode

from vjepa2_ac.datasets.check import check_dataset
from vjepa2_ac.datasets.rlds import raw_to_rlds
from vjepa2_ac.experiments.cli import main


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "data", "check", *map(str, args)],
        capture_output=True,
        text=True,
    )


def test_data_check_cli_reports_bad_episodes(tmp_path, capsys):
    root = tmp_path / "raw"
    make_episode(root / "a", 40)
    make_episode(root / "b", 40, video_frames=39)  # DROID off-by-one: fine, with a warning
    make_episode(root / "nan", 40)
    with h5py.File(root / "nan" / "trajectory.h5", "r+") as f:
        f["observation/robot_state/gripper_position"][3] = np.inf
    make_episode(root / "novid", 40)
    (root / "novid" / "recordings" / "MP4" / "cam_wrist.mp4").unlink()
    make_episode(root / "short", 20)
    out = _cli(root, "--json", tmp_path / "r.json")
    assert out.returncode == 1, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["format"] == "raw" and report["episodes"] == 5 and report["good"] == 2
    bad = {b["episode"].rsplit("/", 1)[1]: b["problem"] for b in report["bad"]}
    assert set(bad) == {"nan", "novid", "short"}
    assert "NaN/inf values at rows [3]" in bad["nan"]
    assert "missing video file" in bad["novid"] and "cam_wrist.mp4" in bad["novid"]
    assert "too short: 1.27 s, a clip needs 2.00 s" in bad["short"]
    assert report["cameras"] == {"left_mp4_path": 2, "wrist_mp4_path": 2}
    assert report["frame_sizes"] == {"48x64": 4}
    assert abs(report["total_duration_s"] - (39 / 15 + 38 / 15)) < 1e-3
    assert any("video has 39 frames" in w for w in report["warnings"])
    assert "BAD" in out.stdout and "episodes: 5 (2 good, 3 bad)" in out.stdout

    # in-process (each subprocess costs seconds of imports): clean dataset -> 0, not a dataset -> 4
    assert main(["data", "check", str(root / "a")]) == 0
    assert "1 good, 0 bad" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nothing")]) == 4
    assert "no such file or directory" in capsys.readouterr().err


def test_check_rlds_directory(tmp_path):
    make_episode(tmp_path / "raw" / "a", 40)
    make_episode(tmp_path / "raw" / "b", 40)
    raw_to_rlds(tmp_path / "raw", tmp_path / "rlds")
    report = check_dataset(tmp_path / "rlds", progress=False)
    assert (
        report["format"] == "rlds" and report["episodes"] == 2 and report["good"] == 2 and not report["bad"]
    )
    assert report["cameras"] == {"exterior_image_1_left": 2, "wrist_image_left": 2}
    assert abs(report["total_duration_s"] - 2 * 39 / 15) < 1e-3
    strict = check_dataset(tmp_path / "rlds", clip_seconds=10.0, progress=False)
    assert strict["good"] == 0 and len(strict["bad"]) == 2
