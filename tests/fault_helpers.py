"""Helpers shared by the fault tests (imported, not collected)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_LOCK_AND_WAIT = """
import sys
from vjepa2_ac.rundir import lock_run_dir
lock_run_dir(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def locked_by_another_process(out: Path) -> Iterator[int]:
    """Another process holds ``out``'s run lock while the block runs; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_AND_WAIT, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.communicate("")  # closing its stdin ends it, and the kernel drops its lock
