"""The shipped simulated world model: ``--checkpoint pretrained`` in ``plan``, ``diagnose`` and ``demo``.

``assets/sim_world_model.pt`` is the :class:`~vjepa2_ac.WorldModel` checkpoint that ``vjepa2-ac demo --out
runs/demo`` trains into ``runs/demo/world_model/world_model.pt`` (Strategy A tubelets, label-free: trained
on frames, end-effector states and actions only). It lets planning start at once; its metadata keeps
both training stages' resolved configs, and ``tests/test_pretrained.py`` checks that they are still the
presets the demo runs, so the two cannot drift apart silently.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED = "pretrained"
ASSET_NAME = "sim_world_model.pt"


def pretrained_path() -> Path:
    """Path of the shipped checkpoint; a clear error if this installation lacks it."""
    from importlib_resources import files

    path = Path(str(files("vjepa2_ac.experiments") / "assets" / ASSET_NAME))
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained simulated world model is not installed ({path} is missing); "
            "train one with `vjepa2-ac demo --out runs/demo` and pass runs/demo/world_model/world_model.pt"
        )
    return path


def resolve_checkpoint(value: str | None) -> str | None:
    """``pretrained`` -> the shipped file's path; anything else unchanged."""
    return str(pretrained_path()) if value == PRETRAINED else value
