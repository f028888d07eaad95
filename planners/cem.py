"""Cross-entropy method with the official V-JEPA 2-AC semantics.

Per planning step the distribution is a diagonal Gaussian over the planned action dimensions
(xyz + gripper by default; rotation optionally). Each iteration samples ``samples`` sequences,
clips them into the :class:`ActionSpace`, keeps the ``topk`` lowest energies, refits mean and
(unbiased) std on those elites and blends them with the previous values through momentum terms
(separate ones for the gripper). The returned plan is the final mean with xyz as is, rotation as
planned (0 when fixed) and the gripper rounded to 0 where ``|g| < gripper_round``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vjepa2_ac.planners.base import (
    ACTION_DIM,
    GRIPPER,
    ActionSpace,
    EnergyFn,
    PlanResult,
    Timer,
    check_horizon_and_init,
    default_generator,
    evaluate,
)


def _check_fraction(name: str, value: float, cls: str) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{cls}.{name} must be in [0, 1], got {value!r}")


@dataclass
class CEMConfig:
    """CEM settings. Defaults are those of the official ``mpc_utils.cem`` function.

    Attributes:
        samples: action sequences per iteration.
        iterations: CEM iterations per plan.
        topk: elites kept per iteration (must be >= 2 for an unbiased std).
        momentum_mean / momentum_std: weight of the *previous* mean/std for xyz and rotation.
        momentum_mean_gripper / momentum_std_gripper: the same for the gripper.
        gripper_round: plan gripper values with ``|g| <`` this are set to 0 (official 0.25; 0 disables).
        space: action bounds / fixed dimensions (official: xyz ±0.05, gripper ±0.75, rotation 0).
        seed: seed of the default generator when ``plan`` gets none.
    """

    samples: int = 100
    iterations: int = 100
    topk: int = 10
    momentum_mean: float = 0.25
    momentum_std: float = 0.95
    momentum_mean_gripper: float = 0.15
    momentum_std_gripper: float = 0.15
    gripper_round: float = 0.25
    space: ActionSpace = field(default_factory=ActionSpace)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "iterations", "topk"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CEMConfig.{name} must be an int >= 1, got {value!r}")
        if self.topk < 2:
            raise ValueError(f"CEMConfig.topk must be >= 2 (unbiased std of the elites), got {self.topk}")
        if self.topk > self.samples:
            raise ValueError(f"CEMConfig.topk ({self.topk}) must be <= samples ({self.samples})")
        for name in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            _check_fraction(name, getattr(self, name), "CEMConfig")
        if not (isinstance(self.gripper_round, (int, float)) and 0 <= self.gripper_round < math.inf):
            raise ValueError(f"CEMConfig.gripper_round must be >= 0, got {self.gripper_round!r}")
        if not isinstance(self.space, ActionSpace):
            raise TypeError(f"CEMConfig.space must be an ActionSpace, got {type(self.space).__name__}")

    @classmethod
    def paper(cls, **overrides) -> CEMConfig:
        """The paper's planning preset: 800 samples, 10 iterations, top 10, momenta 0.15 (official
        ``WorldModel`` mpc_args), maxnorm 0.05. Use horizon 1-3 with it."""
        values = dict(
            samples=800,
            iterations=10,
            topk=10,
            momentum_mean=0.15,
            momentum_std=0.15,
            momentum_mean_gripper=0.15,
            momentum_std_gripper=0.15,
        )
        values.update(overrides)
        return cls(**values)


class CEM:
    """Cross-entropy method planner (official V-JEPA 2-AC semantics by default)."""

    def __init__(self, config: CEMConfig | None = None) -> None:
        self.config = config or CEMConfig()

    def _momenta(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        m_mean = torch.full((ACTION_DIM,), c.momentum_mean, device=device)
        m_std = torch.full((ACTION_DIM,), c.momentum_std, device=device)
        m_mean[GRIPPER] = c.momentum_mean_gripper
        m_std[GRIPPER] = c.momentum_std_gripper
        return m_mean, m_std

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """Minimise ``energy_fn`` over ``[H, 7]`` action sequences.

        Args:
            energy_fn: ``actions[S, H, 7] -> energy[S]``.
            horizon: H, number of planned steps.
            init: optional warm-start mean ``[H, 7]`` (official: zeros).
            generator: CPU ``torch.Generator`` for the samples (default: seeded with ``config.seed``).
            device: where the candidate actions are built (default: ``init``'s device or CPU).
        """
        c = self.config
        check_horizon_and_init(horizon, init, "CEM")
        gen = default_generator(generator, c.seed)
        device = torch.device(device) if device is not None else (init.device if init is not None else None)
        device = device or torch.device("cpu")
        space = c.space
        low, high = space.bounds(device)
        dims = torch.tensor(space.planned_dims, device=device, dtype=torch.long)
        m_mean, m_std = self._momenta(device)

        mean = torch.zeros(horizon, ACTION_DIM, device=device)  # [H, 7]
        if init is not None:
            mean = space.project(init.to(device, torch.float32))
        std = space.initial_std(device).expand(horizon, -1).clone()  # [H, 7]; 0 on fixed dims
        trace: dict[str, list[float]] = {"best": [], "elite_mean": [], "mean": []}
        best_energy, best_actions = math.inf, mean.clone()
        elites = elite_e = None
        with Timer() as timer:
            for it in range(c.iterations):
                # Noise drawn on the CPU generator so that plans do not depend on the device.
                noise = torch.randn(c.samples, horizon, len(dims), generator=gen).to(device)
                cand = mean.expand(c.samples, -1, -1).clone()  # [S, H, 7]
                cand[..., dims] = mean[:, dims] + noise * std[:, dims]
                cand = space.project(torch.maximum(torch.minimum(cand, high), low))
                energies = evaluate(energy_fn, cand, f"CEM iteration {it}").detach().float()
                e_sorted, order = torch.sort(energies)
                elite_e = e_sorted[: c.topk]
                elites = cand[order[: c.topk]]  # [K, H, 7]
                if float(elite_e[0]) < best_energy:
                    best_energy, best_actions = float(elite_e[0]), elites[0].clone()
                new_mean = elites.mean(0)
                new_std = elites.std(0, unbiased=True)
                mean = m_mean * mean + (1 - m_mean) * new_mean
                std = m_std * std + (1 - m_std) * new_std
                trace["best"].append(float(elite_e[0]))
                trace["elite_mean"].append(float(elite_e.mean()))
                trace["mean"].append(float(energies.mean()))
        # Official output: the final mean (not the best sample), gripper rounded.
        plan = mean.clone()
        if c.gripper_round > 0:
            g = plan[:, GRIPPER]
            plan[:, GRIPPER] = torch.where(g.abs() < c.gripper_round, torch.zeros_like(g), g)
        return PlanResult(
            actions=plan,
            energy=best_energy,
            trace=trace,
            elites=elites,
            elite_energies=elite_e,
            best_actions=best_actions,
            evaluations=c.samples * c.iterations,
            seconds=timer.seconds,
        )
