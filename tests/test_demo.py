"""`vjepa2-ac demo --quick` end to end (tiny model, one episode per task and method)."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def test_demo_quick_writes_report_table_and_figures(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "demo", "--quick", "--episodes", "1"]
        + ["--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for method in ("world_model_cem", "random", "oracle_cem"):
        for task in ("reach", "push"):
            assert f"| {task} | {method} |" in report
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert len(rows) == 6
    for r in rows:
        assert r["n"] == 1 and 0.0 <= r["success_rate"] <= 1.0 and r["planning_time_per_step_s"] >= 0
    assert (out / "world_model" / "world_model.pt").exists() and (out / "encoder" / "encoder.pt").exists()
    # The report lists the user's commands that reproduce it, the training stages first.
    assert "vjepa2-ac collect --task reach" in report and "vjepa2-ac pretrain --config sim_encoder" in report
    assert "vjepa2-ac train --config sim_world_model" in report and "vjepa2-ac plan --checkpoint" in report
    assert "trained on: frames, ee_state, actions" in report
    for png in ("success.png", "training_curves.png"):
        with Image.open(out / "figures" / png) as im:
            im.load()
            assert im.size[0] > 200
    assert list((out / "figures").glob("*/filmstrip_*.png"))
