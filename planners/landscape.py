"""Energy landscapes: the planning energy over a grid of one-step actions (official notebook style).

The official energy-landscape notebook evaluates a 5×5×5 grid of xyz actions in ``[-0.075, 0.075]``
(rotation and gripper 0) for one predictor step from a context frame towards a goal frame, and checks
that the minimum sits near the true action. :func:`energy_landscape` does that for any energy function
``actions[S, 1, 7] -> [S]`` (world model or simulator), on any subset of action dimensions, and returns
arrays for plotting; :func:`plot_landscape` draws 2-D slices with matplotlib. :func:`first_action_landscape`
compares, in a simulated episode, the world model's energy over a (dx, dy) grid of first actions with the
energy of the truly simulated outcomes and the true task distance (``plan --landscapes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa2_ac.planners.base import EnergyFn, evaluate

AXIS_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")


@dataclass
class Landscape:
    """Energies on a regular action grid.

    Attributes:
        dims: action dimensions spanned by the grid (e.g. ``(0, 1, 2)``).
        axes: grid values per spanned dimension, each ``[P]`` (absolute action values).
        energies: ``[P, ..., P]`` (one axis per entry of ``dims``, same order).
        center: the 7-D action whose other dimensions every grid point shares.
        reference: the true action ``[7]`` if known (else None).
        best_action: grid action ``[7]`` with the lowest energy.
        best_energy: its energy.
    """

    dims: tuple[int, ...]
    axes: list[np.ndarray]
    energies: np.ndarray
    center: np.ndarray
    reference: np.ndarray | None
    best_action: np.ndarray
    best_energy: float

    @property
    def best_error(self) -> float | None:
        """Euclidean distance (over ``dims``) between the energy minimum and the reference action."""
        if self.reference is None:
            return None
        d = list(self.dims)
        return float(np.linalg.norm(self.best_action[d] - self.reference[d]))

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "dims": list(self.dims),
            "axes": [a.tolist() for a in self.axes],
            "energies": self.energies.tolist(),
            "center": self.center.tolist(),
            "reference": None if self.reference is None else self.reference.tolist(),
            "best_action": self.best_action.tolist(),
            "best_energy": self.best_energy,
            "best_error": self.best_error,
        }


def energy_landscape(
    energy_fn: EnergyFn,
    reference: torch.Tensor | np.ndarray | None = None,
    radius: float = 0.075,
    points: int = 5,
    dims: tuple[int, ...] = (0, 1, 2),
    center: torch.Tensor | np.ndarray | str | None = None,
    batch_size: int | None = None,
) -> Landscape:
    """Energy of one-step actions on a ``points**len(dims)`` grid.

    Args:
        energy_fn: ``actions[S, 1, 7] -> energy[S]``.
        reference: the true action ``[7]`` (for the error of the minimum), optional.
        radius: half-width of the grid on every spanned dimension.
        points: grid points per dimension.
        dims: spanned action dimensions.
        center: grid centre ``[7]``; ``None`` = zeros (official notebook: grid around 0),
            ``"reference"`` = around the reference action.
        batch_size: evaluate at most this many grid points per energy call (None = all at once).
    """
    if points < 2 or radius <= 0:
        raise ValueError(f"energy_landscape: need points >= 2 and radius > 0, got {points}, {radius}")
    if not dims or any(not 0 <= d < 7 for d in dims) or len(set(dims)) != len(dims):
        raise ValueError(f"energy_landscape: dims must be distinct indices in [0, 7), got {dims}")
    ref = None if reference is None else np.asarray(reference, dtype=np.float64).reshape(7)
    if isinstance(center, str):
        if center != "reference" or ref is None:
            raise ValueError("energy_landscape: center='reference' needs a reference action")
        c = ref.copy()
    else:
        c = np.zeros(7) if center is None else np.asarray(center, dtype=np.float64).reshape(7)
    axes = [c[d] + np.linspace(-radius, radius, points) for d in dims]
    mesh = np.meshgrid(*axes, indexing="ij")
    grid = np.tile(c, (mesh[0].size, 1))  # [P^k, 7]
    for i, d in enumerate(dims):
        grid[:, d] = mesh[i].reshape(-1)
    actions = torch.from_numpy(grid).float()[:, None, :]  # [P^k, 1, 7]
    size = batch_size or actions.shape[0]
    with torch.no_grad():
        energies = torch.cat(
            [evaluate(energy_fn, chunk, "energy_landscape").float().cpu() for chunk in actions.split(size)]
        ).numpy()
    i_best = int(np.argmin(energies))
    return Landscape(
        dims=tuple(dims),
        axes=axes,
        energies=energies.reshape([points] * len(dims)),
        center=c,
        reference=ref,
        best_action=grid[i_best],
        best_energy=float(energies[i_best]),
    )


def plot_landscape(landscape: Landscape, path: str | Path | None = None, title: str | None = None):
    """Heat maps of 2-D slices through the energy minimum (one per pair of spanned dims).

    Marks the grid minimum (white x) and the reference action (red circle) when known. Returns the
    matplotlib figure; writes a PNG when ``path`` is given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims, e = landscape.dims, landscape.energies
    pairs = [(i, j) for i in range(len(dims)) for j in range(i + 1, len(dims))] or [(0, 0)]
    fig, axs = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.2), squeeze=False)
    best_idx = np.unravel_index(int(np.argmin(e)), e.shape)
    for ax, (i, j) in zip(axs[0], pairs):
        if i == j:  # one spanned dim: a line plot
            ax.plot(landscape.axes[0], e)
            ax.set_xlabel(AXIS_NAMES[dims[0]])
            ax.set_ylabel("energy")
            continue
        index = list(best_idx)
        index[i] = index[j] = slice(None)
        sl = e[tuple(index)]  # [P_i, P_j]
        xi, xj = landscape.axes[i], landscape.axes[j]
        im = ax.imshow(
            sl.T, origin="lower", extent=(xi[0], xi[-1], xj[0], xj[-1]), aspect="auto", cmap="viridis"
        )
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.plot(landscape.best_action[dims[i]], landscape.best_action[dims[j]], "wx", ms=9, mew=2)
        if landscape.reference is not None:
            ax.plot(
                landscape.reference[dims[i]], landscape.reference[dims[j]], "o", mfc="none", mec="r", ms=10
            )
        ax.set_xlabel(AXIS_NAMES[dims[i]])
        ax.set_ylabel(AXIS_NAMES[dims[j]])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


@torch.no_grad()
def first_action_landscape(
    model,
    env,
    goal_image: np.ndarray,
    frames: np.ndarray,
    s_first: np.ndarray,
    s_now: np.ndarray,
    chosen: np.ndarray,
    maxnorm: float,
    points: int = 11,
) -> dict[str, np.ndarray]:
    """Energies over a ``points x points`` grid of first actions (dx, dy in ``±maxnorm``, dz = chosen):
    ``energy`` (the world model's prediction), ``true_energy`` (the simulated outcome, rendered and
    encoded), ``distance`` (the simulated task distance), with ``grid_x``/``grid_y``, the ``chosen`` and
    the distance-``optimal`` (dx, dy). ``frames``/``s_first``/``s_now``: the episode's current token step
    (:class:`~vjepa2_ac.planners.execution.TokenTracker`); the env is left as it was."""
    from vjepa2_ac.planners.lockstep import simulate_tokens

    grid = np.linspace(-maxnorm, maxnorm, points)
    acts = np.zeros((points, points, 7), np.float32)
    acts[..., 0] = grid[None, :]
    acts[..., 1] = grid[:, None]
    acts[..., 2] = chosen[2]
    flat = acts.reshape(-1, 1, 7)  # [P*P, 1, 7]
    z_goal = model.encode_observation(torch.from_numpy(goal_image)[None, None])  # [1, N, D]
    z0 = model.encode_observation(torch.from_numpy(frames)[None])
    s0 = torch.from_numpy(np.asarray(s_first, np.float32))[None, None]
    z, _ = model.rollout(z0[:, None], s0, torch.from_numpy(flat))
    e_model = model.energy(z[:, -1], z_goal).view(points, points).numpy()
    outs, dists = simulate_tokens(env, flat, frames, s_first, s_now, render=True)
    zt = model.encode_observation(torch.from_numpy(np.stack(outs)))
    e_true = model.energy(zt, z_goal).view(points, points).numpy()
    dist = np.asarray(dists).reshape(points, points)
    iy, ix = np.unravel_index(np.argmin(dist), dist.shape)
    return {
        "grid_x": grid,
        "grid_y": grid,
        "energy": e_model,
        "true_energy": e_true,
        "distance": dist,
        "chosen": np.asarray(chosen[:2]),
        "optimal": np.array([grid[ix], grid[iy]]),
    }
