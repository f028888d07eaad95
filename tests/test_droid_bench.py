"""Smoke test of ``bench video`` on a tiny configuration (its numbers are not asserted)."""

from __future__ import annotations

import argparse
import json

from vjepa2_ac.datasets import bench


def test_bench_video_tiny_run_writes_table_and_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--resolutions",
            "48x64",
            "--workers",
            "0",
            "--episodes",
            "1",
            "--episode-seconds",
            "3",
            "--clips",
            "2",
            "--image-size",
            "32",
            "--dir",
            str(tmp_path / "eps"),
            "--json",
            str(tmp_path / "b.json"),
        ]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "| 48x64 | RawDroidDataset (seek) | 0 |" in out and "naive decode-from-start" in out
    assert "| 48x64 | LeRobotClipDataset (AV1) | 0 |" in out
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [r["loader"] for r in rows] == [
        "naive decode-from-start",
        "RawDroidDataset (seek)",
        "RLDSDroidDataset (JPEG)",
        "LeRobotClipDataset (AV1)",
    ]
    assert all(r["clips_per_s"] > 0 for r in rows)
