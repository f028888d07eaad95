"""Simulator ground truth beside a collected episode (``sim.npz``), for evaluation and named ablations.

``vjepa2-ac collect`` writes each episode in the raw DROID layout plus ``sim.npz``, the simulator's own
record of it (object poses, distances, success). DROID has no such file, so nothing a default model
trains on may come from it; evaluation (``vjepa2-ac diagnose``) and explicitly named ablations
(``pretrain``'s ``sim_labels``) read it through this module.

:class:`SimLabelClips` adds the per-frame arrays named in ``names`` to the clips of a raw-layout dataset,
at the frames the clip's token-step states come from, so a label lines up with its step's state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["SIM_FILE", "SimLabelClips", "read_sim_array", "sim_signal"]

SIM_FILE = "sim.npz"
"""Per-episode simulator ground truth: ``states [T,7]`` (float32, as observed), ``commanded [T-1,7]``
and ``applied_actions [T-1,7]`` (after per-step clipping), ``distance [T]``, ``success [T]``,
``goal_state [7]``, ``goal_pos``, ``goal_image_<camera> [H,W,3]`` uint8, and for push ``block_pos [T,3]``
and ``block_quat [T,4]``."""

# Names under which a simulator array enters a checkpoint's ``training_signals``.
_SIGNALS = {"block_pos": "sim_block_position", "block_quat": "sim_block_orientation"}


def sim_signal(name: str) -> str:
    """The ``training_signals`` entry of the ``sim.npz`` array ``name`` (always ``sim_``-prefixed)."""
    return _SIGNALS.get(name, f"sim_{name}")


def read_sim_array(episode: str | Path, name: str, *, required: bool = True) -> np.ndarray | None:
    """The per-frame array ``name`` of ``episode/sim.npz`` as float64 ``[T, k]``.

    A missing ``sim.npz``, a non-per-frame shape or non-finite values are a :class:`DataError`. A file
    without ``name`` is one too unless ``required=False``, which returns None (a reach scene has no block).
    """
    path = Path(episode) / SIM_FILE
    if not path.is_file():
        raise DataError(
            episode, f"missing {SIM_FILE} (simulator ground truth written by `vjepa2-ac collect`)"
        )
    try:
        with np.load(path) as sim:
            if name not in sim.files:
                if required:
                    raise DataError(episode, f"{SIM_FILE} has no {name!r} (has {sorted(sim.files)})")
                return None
            arr = np.asarray(sim[name], np.float64)
    except (OSError, ValueError) as e:
        raise DataError(episode, f"unreadable {SIM_FILE}: {e}") from e
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or len(arr) == 0:
        raise DataError(episode, f"{SIM_FILE} {name}: expected a per-frame array [T, k], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(episode, f"{SIM_FILE} {name} has NaN/inf values")
    return arr


class SimLabelClips:
    """A raw-layout clip dataset whose items also carry ``sim_labels`` float32 ``[S, k]``.

    Row ``s`` holds the arrays ``names`` (concatenated) at the frame of step ``s``'s state
    (``state_indices[s]``). An episode whose ``sim.npz`` lacks an array gets NaN in its columns (the loss
    that reads them masks those rows); ``available`` counts, per array, the episodes that have it, and an
    array no episode has is an error. Arrays are read once per episode and kept (they are small).
    It is a map-style dataset (``len`` and indexing) like the clip dataset it wraps.
    """

    def __init__(self, dataset, names: list[str]) -> None:
        if not names:
            raise ValueError("names: give at least one sim.npz array")
        self.dataset, self.names = dataset, list(names)
        episodes = [ep.path for ep in dataset.episodes]
        self._arrays: list[list[np.ndarray | None]] = [
            [read_sim_array(ep, n, required=False) for n in self.names] for ep in episodes
        ]
        self.widths: list[int] = []
        self.available: dict[str, int] = {}
        for j, name in enumerate(self.names):
            found = [a[j] for a in self._arrays if a[j] is not None]
            if not found:
                raise DataError(episodes[0], f"no episode's {SIM_FILE} has {name!r} (sim_labels)")
            widths = {a.shape[1] for a in found}
            if len(widths) != 1:
                raise DataError(episodes[0], f"{SIM_FILE} {name}: widths differ between episodes {widths}")
            self.widths.append(widths.pop())
            self.available[name] = len(found)
        self.episodes = dataset.episodes

    @property
    def width(self) -> int:
        return sum(self.widths)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        import torch  # imported here so that reading sim.npz (diagnose, collect) never needs it

        item = self.dataset[index]
        rows = item["state_indices"][:-1].numpy()  # [S] frame of each step's state
        cols = []
        for arr, width, name in zip(self._arrays[index], self.widths, self.names):
            if arr is None:
                cols.append(np.full((len(rows), width), np.nan))
                continue
            if rows.max() >= len(arr):
                raise DataError(
                    item["episode"], f"{SIM_FILE} {name} has {len(arr)} rows, step needs {rows.max() + 1}"
                )
            cols.append(arr[rows])
        item["sim_labels"] = torch.from_numpy(np.concatenate(cols, axis=1)).float()
        return item
