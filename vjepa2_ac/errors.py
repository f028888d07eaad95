"""Errors shared by several commands; each maps to its own exit code in ``vjepa2-ac`` (experiments/cli.py).

Kept free of heavy imports so that the CLI can name them without importing torch.
"""

from __future__ import annotations

__all__ = ["DeviceError", "NonFiniteError", "RunDirError", "RunLockedError"]


class DeviceError(RuntimeError):
    """A requested device (``--device cuda``) is not available on this machine."""


class NonFiniteError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient; the message names the step and the quantity."""


class RunDirError(FileExistsError):
    """A run directory holds another run (other settings, or finished outputs without ``--resume``)."""


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock file."""
