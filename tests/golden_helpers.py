"""Golden outputs of the shipped world model (imported by test_pretrained.py, not collected).

After retraining the shipped model, rewrite ``tests/fixtures/golden/pretrained.npz`` with

    python tests/golden_helpers.py

Frames: the first observation of reach and push episodes 0 and 1 (seed 0, as `plan` resets them);
energies: 2-step rollouts of 5 fixed action sequences from each towards its goal image; plans: the
first two planned actions of `plan` on reach and push episode 0 (16 samples, 2 iterations).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden" / "pretrained.npz"


def golden_inputs(image_size: int):
    """Frames ``uint8[4, 1, S, S, 3]``, states ``[4, 7]`` and goal images ``uint8[4, 1, S, S, 3]``."""
    from vjepa2_ac.envs.starts import make_env, reset_episode

    frames, states, goals = [], [], []
    for task in ("reach", "push"):
        env = make_env(task, image_size)
        for seed in (0, 1):
            obs, _ = reset_episode(env, task, seed)
            frames.append(obs["image"][None])
            states.append(obs["state"])
            goals.append(env.unwrapped.goal_image()[None])
        env.close()
    return np.stack(frames), np.stack(states).astype(np.float32), np.stack(goals)


def fixed_actions() -> np.ndarray:
    """5 two-step action sequences ``[5, 2, 7]`` (xyz only)."""
    a = np.zeros((5, 2, 7), np.float32)
    a[:, :, :3] = np.linspace(-0.04, 0.04, 5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    return a


@torch.no_grad()
def golden_energies(model, z: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Energy ``[4, 5]`` of each fixed sequence from each observation to the observation's goal
    (goals are the last 4 entries of ``z``: ``z[4 + i]`` is the goal of ``z[i]``)."""
    obs, goal = z[:4], z[4:]
    out = []
    for i in range(4):
        zp, _ = model.rollout(obs[i : i + 1, None], states[i : i + 1, None], actions)
        out.append(model.energy(zp[:, -1], goal[i : i + 1]))
    return torch.stack(out)


def first_plans(checkpoint: str) -> np.ndarray:
    """First two planned actions ``[2 tasks, 2, 3]`` of `plan` on episode 0 of reach and push."""
    from vjepa2_ac.experiments.cli import main

    plans = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in ("reach", "push"):
            out = Path(tmp) / task
            args = ["plan", "--checkpoint", checkpoint, "--task", task, "--episodes", "1", "--max-steps", "2"]
            args += ["--samples", "16", "--iterations", "2", "--topk", "4", "--landscapes", "0"]
            args += ["--save-frames", "0", "--no-progress", "--out", str(out)]
            assert main(args) == 0
            plans.append(json.loads((out / "episodes" / "ep_0000.json").read_text())["actions"])
    return np.asarray(plans, np.float32)


def main() -> None:
    from vjepa2_ac.experiments.pretrained import pretrained_path
    from vjepa2_ac.world_model import WorldModel

    model = WorldModel.from_checkpoint(pretrained_path()).eval()
    frames, states, goals = golden_inputs(model.image_size)
    all_frames = np.concatenate([frames, goals])  # [8, 1, S, S, 3]: observations, then their goals
    with torch.no_grad():
        z = model.encode_observation(torch.from_numpy(all_frames))
    actions = fixed_actions()
    energies = golden_energies(model, z, torch.from_numpy(states), torch.from_numpy(actions))
    plans = first_plans(str(pretrained_path()))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        GOLDEN,
        frames=all_frames,
        z=z.numpy(),
        states=states,
        actions=actions,
        energies=energies.numpy(),
        plans=plans,
    )
    print(f"wrote {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
