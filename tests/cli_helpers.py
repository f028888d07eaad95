"""Run the `vjepa2-ac` command line in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m vjepa2_ac.experiments.cli ARGS``; with ``check``, a non-zero exit fails the test with
    the command's output."""
    proc = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc
