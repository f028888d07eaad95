import subprocess
import sys


def test_cli_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("demo", "collect", "train", "plan", "plot", "bench"):
        assert name in out


def test_cli_rejects_unknown_command():
    res = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "nope"], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "unknown command 'nope'" in res.stderr and "collect" in res.stderr
