"""Offline one-step planning on real robot clips (``vjepa2-ac plan --task droid``).

As in the official energy-landscape notebook: frame 0 of a clip is the context, frame ``k`` the goal
image; the world model (a :class:`vjepa2_ac.world_model.WorldModel` checkpoint, e.g. from
``vjepa2-ac train`` on a DROID directory) scores a grid of xyz actions (rotation and gripper 0) and CEM
infers the action that reaches the goal. Compared with the recorded action
``pose_difference(state_0, state_k)``. Inputs: an ``.npz`` with ``observations uint8[1|B, T, H, W, 3]``
and ``states [1|B, T, 7]`` (the layout of the official ``franka_example_traj.npz``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from vjepa2_ac.experiments.results import atomic_write_json
from vjepa2_ac.planners.cem import CEM, CEMConfig


class DroidPlanError(ValueError):
    """Bad input for the offline DROID planning mode."""


def load_clips(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``observations uint8[B, T, H, W, 3]`` and ``states float32[B, T, 7]`` from an ``.npz`` file."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".npz":
        raise DroidPlanError(f"--droid: expected an existing .npz file (observations, states), got {path}")
    with np.load(p) as f:
        missing = [k for k in ("observations", "states") if k not in f.files]
        if missing:
            raise DroidPlanError(f"--droid {path}: missing arrays {missing} (found {f.files})")
        obs, states = f["observations"], f["states"].astype(np.float32)
    if obs.ndim == 4:
        obs, states = obs[None], states[None]
    if obs.ndim != 5 or obs.shape[-1] != 3 or obs.dtype != np.uint8:
        raise DroidPlanError(
            f"--droid {path}: observations must be uint8 [B, T, H, W, 3], got {obs.dtype} {obs.shape}"
        )
    if states.shape != (*obs.shape[:2], 7):
        raise DroidPlanError(
            f"--droid {path}: states must be [B, T, 7] matching observations, got {states.shape}"
        )
    if obs.shape[1] < 2:
        raise DroidPlanError(f"--droid {path}: need at least 2 frames per clip (context and goal)")
    return obs, states


def plan_droid(args: argparse.Namespace) -> dict:
    """Run offline one-step planning; writes ``OUT/droid_plan.json`` and ``OUT/landscape_clip<i>.npz``."""
    from vjepa2_ac.checkpoint import CheckpointError
    from vjepa2_ac.experiments import plan as plan_defaults
    from vjepa2_ac.planners.energy import preprocess_images
    from vjepa2_ac.pose import pose_difference
    from vjepa2_ac.world_model import WorldModel

    if args.checkpoint is None or not Path(args.checkpoint).is_file():
        raise DroidPlanError(f"--checkpoint: a WorldModel checkpoint file is required, got {args.checkpoint}")
    obs, states = load_clips(args.droid)
    try:
        model = WorldModel.from_checkpoint(args.checkpoint)
    except (CheckpointError, ValueError, TypeError) as e:
        raise DroidPlanError(f"--checkpoint: {e}") from None
    model.eval().requires_grad_(False)
    img_size = tuple(model.encoder.img_size)
    if tuple(obs.shape[2:4]) != img_size and not args.resize:
        raise DroidPlanError(
            f"--droid: frames are {obs.shape[2]}x{obs.shape[3]} but the model's encoder takes {img_size[0]}x"
            f"{img_size[1]}; pass --resize to resize them"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    k = obs.shape[1] - 1
    maxnorm = args.maxnorm or 0.075
    results = []
    for i in range(obs.shape[0]):
        with torch.no_grad():
            x = preprocess_images(obs[i, [0, k]], size=img_size)  # [2, 3, H, W]
            z = model.encode_image(x)  # [2, 1, N, D]
        z0, zg = z[:1], z[1]
        s0 = torch.from_numpy(states[i, :1])[None]  # [1, 1, 7]
        true_action = pose_difference(torch.from_numpy(states[i, 0]), torch.from_numpy(states[i, k])).numpy()

        def energy_fn(actions: torch.Tensor, z0=z0, s0=s0, zg=zg) -> torch.Tensor:  # [1, S, H, 7] -> [1, S]
            with torch.no_grad():
                zp, _ = model.rollout(z0, s0, actions[0])
            return (zp[:, -1] - zg).abs().mean(dim=(-2, -1))[None].float()

        n = 5
        grid = np.linspace(-maxnorm, maxnorm, n)
        gx, gy, gz = np.meshgrid(grid, grid, grid, indexing="ij")
        acts = torch.zeros(1, n**3, 1, 7)
        acts[0, :, 0, 0], acts[0, :, 0, 1], acts[0, :, 0, 2] = (
            torch.from_numpy(v.ravel()).float() for v in (gx, gy, gz)
        )
        e_grid = energy_fn(acts)[0].view(n, n, n).numpy()
        best = np.unravel_index(np.argmin(e_grid), e_grid.shape)
        topk = plan_defaults.DEFAULT_TOPK if args.topk is None else args.topk
        samples = plan_defaults.DEFAULT_SAMPLES if args.samples is None else args.samples
        iterations = plan_defaults.DEFAULT_ITERATIONS if args.iterations is None else args.iterations
        cfg = CEMConfig.mpc(maxnorm=maxnorm, samples=samples, iterations=iterations, topk=topk)
        (plan,) = CEM(cfg).plan_batch(
            energy_fn, 1, 1, generators=[torch.Generator().manual_seed(args.seed)], score_plan=True
        )
        planned = plan.actions[0].numpy()
        iz = int(np.argmin(np.abs(grid - planned[2])))
        np.savez(
            out / f"landscape_clip{i}.npz",
            grid_x=grid,
            grid_y=grid,
            energy=e_grid[:, :, iz].T,  # [y, x] at the planned dz
            chosen=planned[:2],
            optimal=true_action[:2],
            title=f"clip {i}: energy over (dx, dy) at dz={grid[iz] * 100:.1f} cm; star = recorded action",
        )
        results.append(
            {
                "clip": i,
                "recorded_action": [float(v) for v in true_action],
                "planned_action": [float(v) for v in planned],
                "grid_argmin_action": [float(grid[best[0]]), float(grid[best[1]]), float(grid[best[2]])],
                "xyz_error_cm": float(np.linalg.norm(planned[:3] - true_action[:3]) * 100),
                "cosine_xyz": float(
                    planned[:3]
                    @ true_action[:3]
                    / max(np.linalg.norm(planned[:3]) * np.linalg.norm(true_action[:3]), 1e-9)
                ),
                "energy": float(plan.plan_energy),
            }
        )
    summary = {"checkpoint": str(args.checkpoint), "data": str(args.droid), "goal_frame": k, "clips": results}
    atomic_write_json(out / "droid_plan.json", summary)
    return summary
