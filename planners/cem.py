"""Cross-entropy method with the official V-JEPA 2-AC semantics.

Per planning step the distribution is a diagonal Gaussian over the planned action dimensions
(xyz + gripper by default; rotation optionally). Each iteration samples ``samples`` sequences,
clips them into the :class:`ActionSpace`, keeps the ``topk`` lowest energies, refits mean and
(unbiased) std on those elites and blends them with the previous values through momentum terms
(separate ones for the gripper). The returned plan is the final mean with xyz as is, rotation as
planned (0 when fixed) and the gripper rounded to 0 where ``|g| < gripper_round``.

:meth:`CEM.plan_batch` solves E independent problems in lockstep: one energy call per iteration sees
the candidates of all problems (``actions[E, S, H, 7] -> energy[E, S]``), which is what makes
closed-loop evaluation over many episodes cheap on a world model. Each problem draws its noise from
its own generator and is refitted by the same code as :meth:`CEM.plan`, so problem ``i`` of a batch
gives exactly the plan of a single-problem call with ``generators[i]``.

Two options (off by default, i.e. official semantics) matter for closed-loop MPC on a learned
energy: ``keep_still`` makes the all-zero sequence one of the candidates of every iteration, so once
the arm sits in the energy minimum "stay" can win over random jitter; ``min_std`` floors the refitted
std so the search never collapses completely. Warm start is the ``init`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    resolve_device,
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
        seed: seed of the default generator when ``plan`` gets none (``plan_batch``: ``seed + i``
            for problem i).
        keep_still: candidate 0 of every iteration is the all-zero sequence (projected into the
            space). Not official; off by default.
        min_std: floor on the refitted std of the planned dimensions (0: official, no floor).
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
    keep_still: bool = False
    min_std: float = 0.0

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
        if not isinstance(self.keep_still, bool):
            raise TypeError(f"CEMConfig.keep_still must be a bool, got {self.keep_still!r}")
        if not (isinstance(self.min_std, (int, float)) and 0 <= self.min_std < math.inf):
            raise ValueError(f"CEMConfig.min_std must be a finite number >= 0, got {self.min_std!r}")

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

    @classmethod
    def mpc(cls, maxnorm: float = 0.05, **overrides) -> CEMConfig:
        """Closed-loop MPC preset of ``vjepa2-ac plan``: 200 samples, 4 iterations, top 20, momenta
        0.1, xyz only (gripper pinned at 0), ``keep_still`` and a 2 mm std floor."""
        values = dict(
            samples=200,
            iterations=4,
            topk=20,
            momentum_mean=0.1,
            momentum_std=0.1,
            momentum_mean_gripper=0.1,
            momentum_std_gripper=0.1,
            space=ActionSpace(maxnorm=maxnorm, fixed={GRIPPER: 0.0}),
            keep_still=True,
            min_std=0.002,
        )
        values.update(overrides)
        return cls(**values)


BatchEnergyFn = Callable[[torch.Tensor], torch.Tensor]


class _Search:
    """State of one CEM problem; shared by :meth:`CEM.plan` and :meth:`CEM.plan_batch` so both run
    exactly the same arithmetic."""

    def __init__(self, c: CEMConfig, horizon: int, init, gen: torch.Generator, device, m_mean, m_std):
        self.c, self.horizon, self.gen, self.device = c, horizon, gen, device
        self.m_mean, self.m_std = m_mean, m_std
        space = c.space
        self.low, self.high = space.bounds(device)
        self.dims = torch.tensor(space.planned_dims, device=device, dtype=torch.long)
        self.mean = torch.zeros(horizon, ACTION_DIM, device=device)  # [H, 7]
        if init is not None:
            self.mean = space.project(init.to(device, torch.float32))
        self.std = space.initial_std(device).expand(horizon, -1).clone()  # [H, 7]; 0 on fixed dims
        self.trace: dict[str, list[float]] = {"best": [], "elite_mean": [], "mean": []}
        self.best_energy, self.best_actions = math.inf, self.mean.clone()
        self.elites = self.elite_e = None

    def sample(self) -> torch.Tensor:
        """Candidates ``[S, H, 7]`` of the next iteration."""
        c, dims, mean = self.c, self.dims, self.mean
        # Noise drawn on the CPU generator so that plans do not depend on the device.
        noise = torch.randn(c.samples, self.horizon, len(dims), generator=self.gen).to(self.device)
        cand = mean.expand(c.samples, -1, -1).clone()  # [S, H, 7]
        cand[..., dims] = mean[:, dims] + noise * self.std[:, dims]
        if c.keep_still:
            cand[0] = 0.0
        return c.space.project(torch.maximum(torch.minimum(cand, self.high), self.low))

    def update(self, cand: torch.Tensor, energies: torch.Tensor) -> None:
        """Refit mean/std on the elites of ``cand[S, H, 7]`` scored ``energies[S]``."""
        c = self.c
        e_sorted, order = torch.sort(energies)
        elite_e = e_sorted[: c.topk]
        elites = cand[order[: c.topk]]  # [K, H, 7]
        if float(elite_e[0]) < self.best_energy:
            self.best_energy, self.best_actions = float(elite_e[0]), elites[0].clone()
        new_mean = elites.mean(0)
        new_std = elites.std(0, unbiased=True)
        if c.min_std > 0:
            new_std[:, self.dims] = new_std[:, self.dims].clamp_min(c.min_std)
        self.mean = self.m_mean * self.mean + (1 - self.m_mean) * new_mean
        self.std = self.m_std * self.std + (1 - self.m_std) * new_std
        self.elites, self.elite_e = elites, elite_e
        self.trace["best"].append(float(elite_e[0]))
        self.trace["elite_mean"].append(float(elite_e.mean()))
        self.trace["mean"].append(float(energies.mean()))

    def result(self, seconds: float) -> PlanResult:
        c = self.c
        # Official output: the final mean (not the best sample), gripper rounded.
        plan = self.mean.clone()
        if c.gripper_round > 0:
            g = plan[:, GRIPPER]
            plan[:, GRIPPER] = torch.where(g.abs() < c.gripper_round, torch.zeros_like(g), g)
        return PlanResult(
            actions=plan,
            energy=self.best_energy,
            trace=self.trace,
            elites=self.elites,
            elite_energies=self.elite_e,
            best_actions=self.best_actions,
            evaluations=c.samples * c.iterations,
            seconds=seconds,
        )


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
        device = resolve_device(device, init)
        search = _Search(c, horizon, init, gen, device, *self._momenta(device))
        with Timer() as timer:
            for it in range(c.iterations):
                cand = search.sample()
                energies = evaluate(energy_fn, cand, f"CEM iteration {it}").detach().float()
                search.update(cand, energies)
        return search.result(timer.seconds)

    def plan_batch(
        self,
        energy_fn: BatchEnergyFn,
        num_problems: int,
        horizon: int,
        init: torch.Tensor | None = None,
        generators: Sequence[torch.Generator] | None = None,
        device: torch.device | str | None = None,
        score_plan: bool = False,
    ) -> list[PlanResult]:
        """Solve E independent problems in lockstep, one ``energy_fn`` call per iteration.

        Problem ``i`` gives exactly ``plan(energy_i, horizon, init[i], generators[i])`` where
        ``energy_i(a) = energy_fn(a[None])[0]`` (same noise, same refits; only the energy calls are
        batched).

        Args:
            energy_fn: ``actions[E, S, H, 7] -> energy[E, S]``.
            num_problems: E.
            horizon: H.
            init: optional warm-start means ``[E, H, 7]`` (e.g. the previous plans, shifted).
            generators: E CPU generators, one per problem (default: seeded ``config.seed + i``).
            device: where the candidates are built (default: ``init``'s device or CPU).
            score_plan: evaluate each returned plan once more (one extra energy call with S = 1) and
                store it in ``PlanResult.plan_energy`` (the energy of the executed plan, which is not
                a sample of the last iteration).

        Returns:
            E :class:`PlanResult` (``seconds`` is the wall time of the whole batch).
        """
        c = self.config
        if not isinstance(num_problems, int) or num_problems < 1:
            raise ValueError(f"CEM.plan_batch: num_problems must be an int >= 1, got {num_problems!r}")
        e = num_problems
        if init is not None and (init.dim() != 3 or init.shape[0] != e):
            raise ValueError(
                f"CEM.plan_batch: init must have shape ({e}, {horizon}, 7), got {tuple(init.shape)}"
            )
        for i in range(e):
            check_horizon_and_init(horizon, None if init is None else init[i], "CEM")
        if generators is None:
            generators = [torch.Generator().manual_seed(c.seed + i) for i in range(e)]
        if len(generators) != e:
            raise ValueError(f"CEM.plan_batch: need {e} generators (one per problem), got {len(generators)}")
        device = resolve_device(device, init)
        m_mean, m_std = self._momenta(device)
        searches = [
            _Search(c, horizon, None if init is None else init[i], generators[i], device, m_mean, m_std)
            for i in range(e)
        ]
        with Timer() as timer:
            for it in range(c.iterations):
                cand = torch.stack([s.sample() for s in searches])  # [E, S, H, 7]
                energies = _evaluate_batch(energy_fn, cand, f"CEM.plan_batch iteration {it}")  # [E, S]
                for i, s in enumerate(searches):
                    s.update(cand[i], energies[i])
            results = [s.result(0.0) for s in searches]
            if score_plan:
                plans = torch.stack([r.actions for r in results])[:, None]  # [E, 1, H, 7]
                final = _evaluate_batch(energy_fn, plans, "CEM.plan_batch plan score")[:, 0]
                for r, v in zip(results, final.tolist(), strict=True):
                    r.plan_energy = v
        for r in results:
            r.seconds = timer.seconds
        return results


def _evaluate_batch(energy_fn: BatchEnergyFn, actions: torch.Tensor, where: str) -> torch.Tensor:
    """``energy_fn(actions[E, S, H, 7]) -> [E, S]``, checked like :func:`evaluate` (shape, finite)."""
    e, s = actions.shape[:2]
    energies = energy_fn(actions)
    if not isinstance(energies, torch.Tensor):
        raise TypeError(f"{where}: energy_fn must return a torch.Tensor, got {type(energies).__name__}")
    if energies.shape != (e, s):
        raise ValueError(
            f"{where}: energy_fn returned shape {tuple(energies.shape)}, expected ({e}, {s}) "
            "(one energy per action sequence of the [E, S, H, 7] input)"
        )
    # Reuse the single-problem checks (finite values, clear message) on the flattened batch.
    flat = evaluate(lambda _: energies.reshape(-1), actions.flatten(0, 1), where)
    return flat.detach().float().view(e, s)


def shift_plans(plans: torch.Tensor) -> torch.Tensor:
    """Warm start for the next MPC step of a batch: drop the executed action and append a zero action
    (zero pad, unlike :func:`~vjepa2_ac.planners.base.shift_plan`). ``[E, H, 7] -> [E, H, 7]``."""
    return torch.cat([plans[:, 1:], torch.zeros_like(plans[:, -1:])], dim=1)
