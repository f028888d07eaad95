"""A linear read-out of the robot state from every latent token (part of a world model's checkpoint).

DROID records the 7-D end-effector state ``[x, y, z, roll, pitch, yaw, gripper]`` of every frame, so a
probe of it is a label-free training signal: encoder training may ask every token to decode the state of
its step (which spreads the end-effector position over the whole image), and after training the probe
tells what a (predicted) embedding says about the arm, without a simulator.

Targets are standardised with the training data's mean and std (stored as buffers), so that position
axes of a few centimetres and angles of a radian weigh alike.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StateProbe"]


class StateProbe(nn.Module):
    """Per-token linear probe of the state dimensions ``dims``.

    ``forward(z[..., N, D]) -> [..., N, P]`` gives standardised per-token predictions (for training);
    :meth:`decode` averages them over tokens and returns physical units ``[..., P]``.
    """

    def __init__(self, embed_dim: int, dims: list[int] | tuple[int, ...] = (0, 1, 2)) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if not dims or len(set(dims)) != len(dims) or any(not 0 <= d < 7 for d in dims):
            raise ValueError(f"StateProbe dims: expected distinct state indices in 0..6, got {dims}")
        self.dims = dims
        self.head = nn.Linear(embed_dim, len(dims))
        self.register_buffer("mean", torch.zeros(len(dims)))
        self.register_buffer("std", torch.ones(len(dims)))

    @property
    def config(self) -> dict:
        return {"embed_dim": self.head.in_features, "dims": list(self.dims)}

    @torch.no_grad()
    def set_normaliser(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Fix the standardisation of the targets (from the training data's states)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def targets(self, states: torch.Tensor) -> torch.Tensor:
        """Standardised targets ``[..., P]`` of full 7-D ``states[..., 7]``."""
        return (states[..., self.dims].float() - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """State read-out in physical units: ``z[..., N, D] -> [..., P]`` (mean over tokens)."""
        return self.head(z.float()).mean(dim=-2) * self.std + self.mean
