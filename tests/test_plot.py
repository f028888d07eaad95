"""`vjepa2-ac plot` on a tiny planning run and a training CSV: every figure is a decodable PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vjepa2_ac.experiments.plot import plot_curves, read_training_csv


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plotrun") / "reach_random"
    from vjepa2_ac.experiments.cli import main

    args = ["plan", "--task", "reach", "--baseline", "random", "--episodes", "2", "--max-steps", "3"]
    assert main([*args, "--out", str(out), "--save-frames", "1", "--no-progress"]) == 0
    return out


def _decodes(path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return im.size


def test_plot_run_subprocess_writes_readable_pngs(run_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vjepa2_ac.experiments.cli",
            "plot",
            "run",
            str(run_dir),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)["written"]
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["energy.png", "filmstrip_ep_0000.png", "success.png", "trajectories.png"]
    for p in written:
        w, h = _decodes(p)
        assert w > 200 and h > 100


def test_plot_curves_and_errors(tmp_path):
    csv_path = tmp_path / "train.csv"
    rows = ["step,loss,probe_loss,elapsed_s"] + [
        f"{i},{1.0 / (i + 1)},{0.5 / (i + 1)},{i}" for i in range(0, 50, 5)
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    cols = read_training_csv(csv_path)
    assert set(cols) == {"step", "loss", "probe_loss", "elapsed_s"} and cols["step"][-1] == 45
    png = plot_curves([csv_path], tmp_path / "curves.png")
    _decodes(png)
    bad = tmp_path / "bad.csv"
    bad.write_text("iteration,loss\n1,2\n")
    with pytest.raises(ValueError, match="'step' column"):
        plot_curves([bad], tmp_path / "x.png")


def test_plot_missing_input_is_one_line_and_exit_6(tmp_path, capsys):
    from vjepa2_ac.experiments.cli import main

    assert main(["plot", "energy", str(tmp_path / "missing"), "--out", str(tmp_path / "e.png")]) == 6
    assert (
        capsys.readouterr().err == f"vjepa2-ac plot energy: run dir '{tmp_path / 'missing'}' does not exist\n"
    )
    assert not (tmp_path / "e.png").exists()


def test_plot_landscape_from_array_file(tmp_path):
    from vjepa2_ac.experiments.plot import plot_landscape

    g = np.linspace(-0.05, 0.05, 5)
    e = np.add.outer(g**2, g**2)
    np.savez(tmp_path / "l.npz", grid_x=g, grid_y=g, energy=e, chosen=np.array([0.0, 0.0]), title="t")
    _decodes(plot_landscape(tmp_path / "l.npz", tmp_path / "l.png"))
    np.savez(tmp_path / "bad.npz", grid_x=g, grid_y=g, energy=e[:3])
    with pytest.raises(ValueError, match="does not match grid"):
        plot_landscape(tmp_path / "bad.npz", tmp_path / "b.png")


def test_plot_success_with_every_episode_successful(run_dir, tmp_path):
    """At 100 % the Wilson upper bound rounds to just below p; the error bar must not go negative."""
    import shutil

    from vjepa2_ac.experiments.plot import plot_success

    done = tmp_path / "reach_all"
    shutil.copytree(run_dir, done)
    template = json.loads((done / "episodes" / "ep_0000.json").read_text())
    for i in range(6):  # 6 of 6: the upper bound is 0.9999999999999999
        rec = dict(template, episode=i, seed=i, success=True)
        (done / "episodes" / f"ep_{i:04d}.json").write_text(json.dumps(rec))
    out = plot_success([done], tmp_path / "success.png")
    assert _decodes(out)[0] > 0
