"""Random shooting: evaluate uniformly drawn action sequences once and keep the best."""

from __future__ import annotations

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


def sample_uniform(
    space: ActionSpace, n: int, horizon: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """``n`` action sequences ``[n, H, 7]`` drawn uniformly inside ``space`` (fixed dims pinned)."""
    low, high = space.bounds()
    u = torch.rand(n, horizon, low.numel(), generator=generator)
    return space.project(low + u * (high - low)).to(device)


@dataclass
class RandomShootingConfig:
    """Random-shooting settings.

    Attributes:
        samples: sequences evaluated per batch.
        batches: number of batches (total evaluations = samples * batches).
        include_init: also evaluate the warm-start sequence when one is given.
        space: action bounds / fixed dimensions.
        seed: seed of the default generator.
    """

    samples: int = 800
    batches: int = 1
    include_init: bool = True
    space: ActionSpace = field(default_factory=ActionSpace)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RandomShootingConfig.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.space, ActionSpace):
            raise TypeError(
                f"RandomShootingConfig.space must be an ActionSpace, got {type(self.space).__name__}"
            )


class RandomShooting:
    """Best of uniformly random action sequences."""

    def __init__(self, config: RandomShootingConfig | None = None) -> None:
        self.config = config or RandomShootingConfig()

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """Minimise ``energy_fn(actions[S, H, 7]) -> [S]`` by sampling."""
        c = self.config
        check_horizon_and_init(horizon, init, "RandomShooting")
        gen = default_generator(generator, c.seed)
        device = resolve_device(device, init)
        trace: dict[str, list[float]] = {"best": [], "elite_mean": [], "mean": []}
        all_a, all_e = [], []
        with Timer() as timer:
            for b in range(c.batches):
                cand = sample_uniform(c.space, c.samples, horizon, gen, device)
                if b == 0 and init is not None and c.include_init:
                    cand[0] = c.space.project(init.to(cand.device, torch.float32))
                energies = evaluate(energy_fn, cand, f"RandomShooting batch {b}").detach().float()
                all_a.append(cand)
                all_e.append(energies)
                best_so_far = torch.cat(all_e).min()
                trace["best"].append(float(best_so_far))
                trace["elite_mean"].append(float(torch.sort(energies).values[:10].mean()))
                trace["mean"].append(float(energies.mean()))
        actions, energies = torch.cat(all_a), torch.cat(all_e)
        order = torch.argsort(energies)
        top = order[: min(10, order.numel())]
        return PlanResult(
            actions=actions[order[0]].clone(),
            energy=float(energies[order[0]]),
            trace=trace,
            elites=actions[top],
            elite_energies=energies[top],
            best_actions=actions[order[0]].clone(),
            evaluations=c.samples * c.batches,
            seconds=timer.seconds,
        )
