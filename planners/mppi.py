"""Model-predictive path integral (MPPI) planner.

Samples Gaussian perturbations around the current mean sequence, weights every sample by
``softmax(-(E - min E) / λ)`` and moves the mean to the weighted average. With ``normalize`` the
energies are divided by their standard deviation first, so ``temperature`` does not depend on the
scale of the energy (L1 latent distances and metres differ by orders of magnitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vjepa2_ac.planners.base import (
    ACTION_DIM,
    ActionSpace,
    EnergyFn,
    PlanResult,
    Timer,
    check_horizon_and_init,
    default_generator,
    evaluate,
    resolve_device,
)


@dataclass
class MPPIConfig:
    """MPPI settings.

    Attributes:
        samples: action sequences per iteration.
        iterations: MPPI updates per plan.
        temperature: λ of the exponential weights (in units of the energy std when ``normalize``).
        noise: sampling std as a fraction of the initial CEM std (maxnorm for xyz, 1 for the gripper).
        normalize: divide energies by their std before weighting.
        adapt_std: also refit the std from the weighted samples (otherwise it stays fixed).
        momentum: weight of the previous mean in the update.
        space: action bounds / fixed dimensions.
        seed: seed of the default generator.
    """

    samples: int = 256
    iterations: int = 10
    temperature: float = 0.1
    noise: float = 0.5
    normalize: bool = True
    adapt_std: bool = False
    momentum: float = 0.0
    space: ActionSpace = field(default_factory=ActionSpace)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MPPIConfig.{name} must be an int >= 1, got {value!r}")
        for name in ("temperature", "noise"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"MPPIConfig.{name} must be a finite number > 0, got {value!r}")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"MPPIConfig.momentum must be in [0, 1), got {self.momentum!r}")
        if not isinstance(self.space, ActionSpace):
            raise TypeError(f"MPPIConfig.space must be an ActionSpace, got {type(self.space).__name__}")


class MPPI:
    """MPPI planner over ``[H, 7]`` action sequences."""

    def __init__(self, config: MPPIConfig | None = None) -> None:
        self.config = config or MPPIConfig()

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """Minimise ``energy_fn(actions[S, H, 7]) -> [S]``; see :class:`MPPIConfig`."""
        c = self.config
        check_horizon_and_init(horizon, init, "MPPI")
        gen = default_generator(generator, c.seed)
        device = resolve_device(device, init)
        space = c.space
        dims = torch.tensor(space.planned_dims, device=device, dtype=torch.long)
        mean = torch.zeros(horizon, ACTION_DIM, device=device)
        if init is not None:
            mean = space.project(init.to(device, torch.float32))
        std = (space.initial_std(device) * c.noise).expand(horizon, -1).clone()  # [H, 7]
        trace: dict[str, list[float]] = {"best": [], "elite_mean": [], "mean": []}
        best_energy, best_actions = math.inf, mean.clone()
        with Timer() as timer:
            for it in range(c.iterations):
                noise = torch.randn(c.samples, horizon, len(dims), generator=gen).to(device)
                cand = mean.expand(c.samples, -1, -1).clone()  # [S, H, 7]
                cand[..., dims] = mean[:, dims] + noise * std[:, dims]
                cand = space.project(cand)
                energies = evaluate(energy_fn, cand, f"MPPI iteration {it}").detach().float()
                shifted = energies - energies.min()
                if c.normalize:
                    shifted = shifted / energies.std().clamp_min(1e-12)
                weights = torch.softmax(-shifted / c.temperature, dim=0)  # [S]
                new_mean = torch.einsum("s,shd->hd", weights, cand)
                mean = c.momentum * mean + (1 - c.momentum) * new_mean
                if c.adapt_std:
                    var = torch.einsum("s,shd->hd", weights, (cand - new_mean) ** 2)
                    std = var.sqrt()
                i_best = int(energies.argmin())
                if float(energies[i_best]) < best_energy:
                    best_energy, best_actions = float(energies[i_best]), cand[i_best].clone()
                trace["best"].append(float(energies[i_best]))
                trace["elite_mean"].append(float((weights * energies).sum()))
                trace["mean"].append(float(energies.mean()))
        order = torch.argsort(energies)[: min(10, c.samples)]
        return PlanResult(
            actions=space.project(mean),
            energy=best_energy,
            trace=trace,
            elites=cand[order],
            elite_energies=energies[order],
            best_actions=best_actions,
            evaluations=c.samples * c.iterations,
            seconds=timer.seconds,
        )
