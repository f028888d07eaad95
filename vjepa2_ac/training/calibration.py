"""Energy per metre: how much the planning energy grows per metre of end-effector displacement.

Measured on the training data itself (the end-effector state is recorded, so this is label-free): for
pairs of token steps of the same clip, a least-squares fit through the origin ``E = k * d`` of the
energy between their embeddings against the distance between their end-effector positions, over pairs
``min_distance``-``max_distance`` apart (near the goal, where thresholds are used). Stored in the world
model's metadata, it turns a distance given in metres (``plan --stop-distance``) into an energy.
"""

from __future__ import annotations

import torch

from vjepa2_ac.world_model import energy


@torch.no_grad()
def energy_per_metre(
    z: torch.Tensor, states: torch.Tensor, min_distance: float = 0.003, max_distance: float = 0.06
) -> float:
    """``z[C, S, N, D]`` embeddings and ``states[C, S, 7]`` of ``C`` clips -> energy per metre."""
    if z.ndim != 4 or states.shape[:2] != z.shape[:2]:
        raise ValueError(
            f"energy_per_metre: z [C, S, N, D] and states [C, S, 7] expected, got "
            f"{tuple(z.shape)} and {tuple(states.shape)}"
        )
    es, ds = [], []
    s = z.shape[1]
    for i in range(s):
        for j in range(i + 1, s):
            es.append(energy(z[:, i].float(), z[:, j].float()))
            ds.append((states[:, i, :3] - states[:, j, :3]).float().norm(dim=-1))
    if not es:
        raise ValueError("energy_per_metre: clips need at least 2 token steps")
    e, d = torch.cat(es), torch.cat(ds)
    keep = (d > min_distance) & (d < max_distance)
    if int(keep.sum()) < 10:
        raise ValueError(
            f"energy_per_metre: only {int(keep.sum())} step pairs are {min_distance}-{max_distance} m apart "
            "(the data hardly moves the end effector)"
        )
    e, d = e[keep], d[keep]
    return float((e * d).sum() / (d * d).sum())
