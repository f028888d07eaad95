"""``vjepa2-ac data check`` on LeRobot v3.0 directories: each kind of breakage is found and named."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from droid_helpers import coded_frames, smooth_states

from vjepa2_ac.datasets.check import check_dataset, detect_format
from vjepa2_ac.datasets.lerobot_writer import DROID_FEATURES, LeRobotWriter

EXT, WRIST = "observation.images.exterior_1_left", "observation.images.wrist_left"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "data", "check", *map(str, args)],
        capture_output=True,
        text=True,
    )


def _write(root, n_episodes=7):
    """Episode 1 has a NaN, 2 a timestamp gap, 3 is short; 5 and 6 are broken after writing."""
    with LeRobotWriter(
        root, fps=15, features=DROID_FEATURES, cameras=[EXT, WRIST], codec="h264", episodes_per_file=2
    ) as w:
        for e in range(n_episodes):
            t = 20 if e == 3 else 40
            s = smooth_states(t, e)
            if e == 1:
                s[3, 6] = np.nan
            ts = np.arange(t) / 15 + np.where(np.arange(t) > 20, 0.5, 0.0) if e == 2 else None
            w.add_episode(
                {
                    "observation.state.cartesian_position": s[:, :6],
                    "observation.state.gripper_position": s[:, 6],
                },
                {EXT: coded_frames(t), WRIST: coded_frames(t, offset=5)},
                timestamps=ts,
            )
    return root


def test_data_check_finds_each_lerobot_breakage(tmp_path):
    root = _write(tmp_path / "lr")
    assert detect_format(root) == "lerobot"
    good = check_dataset(root, progress=False)
    assert good["format"] == "lerobot" and good["episodes"] == 7 and good["good"] == 4
    # Episode 5: its segment in the MP4 made 3 frames shorter than its 40 rows.
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(meta).to_pylist()
    rows[5][f"videos/{EXT}/to_timestamp"] -= 3 / 15
    pq.write_table(pa.Table.from_pylist(rows), meta)
    # Episode 6: the wrist video file (it holds only episode 6) is gone.
    (root / f"videos/{WRIST}/chunk-000/file-003.mp4").unlink()
    out = _cli(root, "--json", tmp_path / "r.json")
    assert out.returncode == 1, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["episodes"] == 7 and report["good"] == 2
    bad = {int(b["episode"].rsplit("_", 1)[1]): b["problem"] for b in report["bad"]}
    assert sorted(bad) == [1, 2, 3, 5, 6]
    assert "observation.state.gripper_position has NaN/inf values at rows [3]" in bad[1]
    assert "timestamp gap of 0.567 s after row 20" in bad[2]
    assert "too short: 1.27 s, a clip needs 2.00 s" in bad[3]
    assert f"{EXT}: file-002.mp4 has 37 frames in [2.667, 5.133) s but the data has 40 rows" in bad[5]
    assert "missing video file" in bad[6] and "file-003.mp4" in bad[6]
    assert report["cameras"] == {EXT: 2, WRIST: 2} and report["frame_sizes"] == {"48x64": 4}
    assert "lerobot dataset" in out.stdout and "BAD" in out.stdout
    # Within the frame tolerance a mismatch is a warning, not an error.
    rows[5][f"videos/{EXT}/to_timestamp"] += 2 / 15
    pq.write_table(pa.Table.from_pylist(rows), meta)
    report = check_dataset(root, progress=False)
    assert 5 not in {int(b["episode"].rsplit("_", 1)[1]) for b in report["bad"]}
    assert any("has 39 frames, the data 40 rows" in w for w in report["warnings"])


def test_data_check_lerobot_length_mismatch_and_bad_meta(tmp_path):
    root = _write(tmp_path / "lr", n_episodes=2)
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(meta).to_pylist()
    rows[0]["length"] = 41
    pq.write_table(pa.Table.from_pylist(rows), meta)
    report = check_dataset(root, progress=False)
    assert report["bad"][0]["problem"] == "meta/episodes says length 41, the data file holds 40 rows"
    (root / "meta/info.json").write_text("{")
    out = _cli(root)
    assert out.returncode == 4 and "info.json: unreadable JSON" in out.stderr  # a DataError
