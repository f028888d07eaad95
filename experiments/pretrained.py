"""The shipped simulated world model: ``--checkpoint pretrained`` in ``plan``, ``diagnose`` and ``demo``.

``assets/sim_world_model.pt`` is the :class:`~vjepa2_ac.WorldModel` checkpoint that ``vjepa2-ac demo --out
runs/demo`` trains into ``runs/demo/world_model/world_model.pt`` (Strategy A tubelets, label-free: trained
on frames, end-effector states and actions only). It lets planning start at once; its metadata keeps
both training stages' resolved configs, and ``tests/test_pretrained.py`` checks that they are still the
presets the demo runs, so the two cannot drift apart silently.

``assets/fetch_world_model.pt`` (``--checkpoint pretrained-fetch``) is the same recipe trained on
Gymnasium-Robotics FetchReach and FetchPush episodes (``docs/fetch.md`` lists the commands).
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED = "pretrained"
ASSET_NAME = "sim_world_model.pt"
# Names accepted by --checkpoint -> (asset file, how to train it instead).
SHIPPED = {
    PRETRAINED: (ASSET_NAME, "train one with `vjepa2-ac demo --out runs/demo`"),
    "pretrained-fetch": ("fetch_world_model.pt", "train one with the commands of docs/fetch.md"),
}


def pretrained_path(name: str = PRETRAINED) -> Path:
    """Path of a shipped checkpoint; a clear error if this installation lacks it."""
    from importlib_resources import files

    asset, how = SHIPPED[name]
    path = Path(str(files("vjepa2_ac.experiments") / "assets" / asset))
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped world model {name!r} is not installed ({path} is missing); {how}"
        )
    return path


def resolve_checkpoint(value: str | None) -> str | None:
    """``pretrained`` / ``pretrained-fetch`` -> the shipped file's path; anything else unchanged."""
    return str(pretrained_path(value)) if value in SHIPPED else value
