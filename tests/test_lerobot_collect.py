"""``vjepa2-ac collect --format lerobot``: sim episodes as a LeRobot v3 dataset that our reader and
``data check`` accept, with the same states as the simulator and resumable collection."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from vjepa2_ac.datasets.lerobot import list_lerobot_episodes
from vjepa2_ac.datasets.raw import RawEpisode
from vjepa2_ac.envs.collect_lerobot import staging_dir


def test_collect_cli_writes_a_lerobot_dataset(tmp_path):
    out = tmp_path / "push"
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "collect", "--task", "push", "--episodes", "2"]
    cmd += ["--out", str(out), "--policy", "expert", "--image-size", "32", "--max-steps", "6", "--seed", "3"]
    cmd += ["--cameras", "exterior_1,wrist", "--format", "lerobot"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["collected"] == 2 and summary["format"] == "lerobot"
    info = json.loads((out / "meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == 14 and info["codebase_version"] == "v3.0"
    for cam in ("exterior_1_left", "wrist_left"):
        eps = list_lerobot_episodes(out, f"observation.images.{cam}")  # the DROID preset reads it
        for i, ep in enumerate(eps):
            data = ep.load()
            sim = np.load(out / "sim" / f"episode_{i:06d}.npz")
            np.testing.assert_allclose(data.states, sim["states"], atol=1e-6)
            frames = ep.read_frames(np.arange(7))
            raw = RawEpisode(staging_dir(out) / f"episode_{i:06d}", cam.removesuffix("_left"))
            assert frames.shape == (7, 32, 32, 3)
            # AV1 of the raw H.264 frames: the same pictures up to coding noise.
            assert np.abs(frames.astype(float) - raw.read_frames(np.arange(7))).mean() < 6
    check = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "data", "check", str(out), "--no-clip-check"]
    res = subprocess.run(check, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 good, 0 bad" in res.stdout
    # Resume: the raw episodes are kept, the dataset is rebuilt.
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["skipped_existing"] == 2
    assert json.loads((out / "meta/info.json").read_text())["total_frames"] == 14
