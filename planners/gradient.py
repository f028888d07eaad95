"""Gradient-based planner: Adam on the action sequence through a differentiable energy.

Runs ``restarts`` sequences in one batch (the energy is evaluated on ``[R, H, 7]``), takes Adam
steps on the planned dimensions and projects back into the :class:`ActionSpace` after every step
(projected gradient descent). Restarts start from the warm start (if any; restart 0 exactly, the
others perturbed) or from uniform random sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vjepa2_ac.planners.base import (
    ActionSpace,
    EnergyFn,
    PlanResult,
    Timer,
    check_horizon_and_init,
    default_generator,
    evaluate,
    resolve_device,
)
from vjepa2_ac.planners.random_shooting import sample_uniform


@dataclass
class GradientConfig:
    """Gradient-planner settings.

    Attributes:
        steps: Adam steps.
        lr: Adam learning rate (in action units; xyz actions are a few centimetres).
        restarts: sequences optimised in parallel; the best one is returned.
        init_noise: std of the perturbation of the warm start for restarts > 0, as a fraction of the bounds.
        space: action bounds / fixed dimensions.
        seed: seed of the default generator.
    """

    steps: int = 50
    lr: float = 0.005
    restarts: int = 8
    init_noise: float = 0.3
    space: ActionSpace = field(default_factory=ActionSpace)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GradientConfig.{name} must be an int >= 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"GradientConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not (isinstance(self.init_noise, (int, float)) and self.init_noise >= 0):
            raise ValueError(f"GradientConfig.init_noise must be >= 0, got {self.init_noise!r}")
        if not isinstance(self.space, ActionSpace):
            raise TypeError(f"GradientConfig.space must be an ActionSpace, got {type(self.space).__name__}")


class GradientPlanner:
    """Projected Adam on action sequences; the energy must be differentiable w.r.t. the actions."""

    def __init__(self, config: GradientConfig | None = None) -> None:
        self.config = config or GradientConfig()

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """Minimise ``energy_fn(actions[R, H, 7]) -> [R]`` by gradient descent."""
        c = self.config
        check_horizon_and_init(horizon, init, "GradientPlanner")
        gen = default_generator(generator, c.seed)
        device = resolve_device(device, init)
        space = c.space
        start = sample_uniform(space, c.restarts, horizon, gen, device)  # [R, H, 7]
        if init is not None:
            low, high = space.bounds()
            noise = (
                torch.randn(c.restarts, horizon, low.numel(), generator=gen) * (high - low) / 2 * c.init_noise
            )
            start = space.project(init.to(start.device, torch.float32) + noise.to(start.device))
            start[0] = space.project(init.to(start.device, torch.float32))
        actions = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([actions], lr=c.lr)
        trace: dict[str, list[float]] = {"best": [], "elite_mean": [], "mean": []}
        best_energy, best_actions = math.inf, start[0].clone()
        with Timer() as timer:
            for step in range(c.steps + 1):
                with torch.enable_grad():
                    energies = evaluate(energy_fn, actions, f"GradientPlanner step {step}")
                    if not energies.requires_grad:
                        raise ValueError(
                            "GradientPlanner: energy_fn output does not require grad; the energy must be "
                            "differentiable w.r.t. the actions (do not run it under torch.no_grad)"
                        )
                e = energies.detach().float()
                i_best = int(e.argmin())
                if float(e[i_best]) < best_energy:
                    best_energy, best_actions = float(e[i_best]), actions.detach()[i_best].clone()
                trace["best"].append(float(e.min()))
                trace["elite_mean"].append(float(e.min()))
                trace["mean"].append(float(e.mean()))
                if step == c.steps:  # last pass only evaluates the final iterate
                    break
                opt.zero_grad(set_to_none=True)
                energies.sum().backward()
                opt.step()
                with torch.no_grad():
                    actions.copy_(space.project(actions))
        final = actions.detach()
        order = torch.argsort(e)
        return PlanResult(
            actions=best_actions,
            energy=best_energy,
            trace=trace,
            elites=final[order],
            elite_energies=e[order],
            best_actions=best_actions,
            evaluations=c.restarts * (c.steps + 1),
            seconds=timer.seconds,
        )
