"""Planner interface shared by CEM, MPPI, gradient descent and random shooting.

A planner minimises an *energy function* over action sequences::

    energy_fn(actions[S, H, 7]) -> energy[S]

and returns a :class:`PlanResult` holding the plan ``[H, 7]`` and diagnostics (energy trace per
iteration, final elites). Planners never look inside the energy: the same planner drives the
world-model energy (:mod:`vjepa2_ac.planners.energy`), the simulator oracle
(:mod:`vjepa2_ac.planners.baselines`) and the analytic energies of the tests.

Actions follow the DROID convention ``[dx, dy, dz, droll, dpitch, dyaw, dgripper]``. The
:class:`ActionSpace` describes which dimensions are planned and how they are bounded (official CEM:
xyz within ``±maxnorm``, gripper within ``±0.75``, rotation fixed at 0).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

EnergyFn = Callable[[torch.Tensor], torch.Tensor]

ACTION_DIM = 7
XYZ = (0, 1, 2)
ROT = (3, 4, 5)
GRIPPER = 6


class NonFiniteEnergyError(ValueError):
    """Raised when an energy function returns NaN or infinite values."""


@dataclass
class ActionSpace:
    """Bounds and fixed dimensions of the 7-D action, per planning step.

    Attributes:
        maxnorm: bound on each of dx, dy, dz (metres); official default 0.05.
        gripper_max: bound on |dgripper|; official 0.75.
        plan_rotation: if False (official) droll, dpitch, dyaw are fixed at 0.
        rot_maxnorm: bound on each rotation delta (radians) when ``plan_rotation``.
        close_gripper: if set to k, dgripper is forced to 1 for every step h >= k (official option).
        fixed: extra pinned dimensions ``{dim: value}`` (the official ``axis`` argument).
    """

    maxnorm: float = 0.05
    gripper_max: float = 0.75
    plan_rotation: bool = False
    rot_maxnorm: float = 0.1
    close_gripper: int | None = None
    fixed: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("maxnorm", "gripper_max", "rot_maxnorm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ActionSpace.{name} must be a finite number > 0, got {value!r}")
        if self.close_gripper is not None and (
            not isinstance(self.close_gripper, int) or self.close_gripper < 0
        ):
            raise ValueError(
                f"ActionSpace.close_gripper must be None or an int >= 0, got {self.close_gripper!r}"
            )
        for dim, value in self.fixed.items():
            if not (isinstance(dim, int) and 0 <= dim < ACTION_DIM):
                raise ValueError(f"ActionSpace.fixed: dimension must be an int in [0, 7), got {dim!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"ActionSpace.fixed[{dim}] must be finite, got {value!r}")

    @property
    def planned_dims(self) -> list[int]:
        """Action dimensions the planner searches over (official: [0, 1, 2, 6])."""
        dims = list(XYZ) + (list(ROT) if self.plan_rotation else []) + [GRIPPER]
        return [d for d in dims if d not in self.fixed]

    def bounds(self, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension ``(low[7], high[7])``; fixed dimensions have low == high."""
        high = torch.tensor([self.maxnorm] * 3 + [self.rot_maxnorm] * 3 + [self.gripper_max], dtype=dtype)
        if not self.plan_rotation:
            high[list(ROT)] = 0.0
        low = -high
        for dim, value in self.fixed.items():
            low[dim] = high[dim] = float(value)
        return low.to(device), high.to(device)

    def initial_std(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Official initial CEM standard deviation ``[7]``: maxnorm (xyz), rot_maxnorm, 1 (gripper)."""
        std = torch.tensor([self.maxnorm] * 3 + [self.rot_maxnorm] * 3 + [1.0], dtype=dtype)
        mask = torch.zeros(ACTION_DIM, dtype=torch.bool)
        mask[self.planned_dims] = True
        return (std * mask).to(device)

    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Clip ``actions[..., H, 7]`` into the space, pin fixed dims and apply ``close_gripper``."""
        low, high = self.bounds(actions.device, actions.dtype)
        out = torch.maximum(torch.minimum(actions, high), low)
        if self.close_gripper is not None and self.close_gripper < actions.shape[-2]:
            out = out.clone() if out is actions else out
            out[..., self.close_gripper :, GRIPPER] = 1.0
        return out


@dataclass
class PlanResult:
    """What a planner returns.

    Attributes:
        actions: the plan ``[H, 7]`` (row 0 is the action to execute now).
        energy: energy of the best candidate evaluated (float).
        trace: per-iteration diagnostics, each a list with one float per iteration
            (``best``: best energy so far in this iteration, ``elite_mean``: mean energy of the elites /
            weighted samples, ``mean``: mean energy of all samples).
        elites: final elite action sequences ``[K, H, 7]`` (best first) or None.
        elite_energies: their energies ``[K]`` or None.
        best_actions: the lowest-energy sequence evaluated ``[H, 7]`` (``energy`` is its energy).
        evaluations: number of action sequences evaluated.
        seconds: wall time of the planning call.
        plan_energy: energy of ``actions`` itself when the planner scored it (``CEM.plan_batch``
            with ``score_plan=True``), else None.
    """

    actions: torch.Tensor
    energy: float
    trace: dict[str, list[float]]
    elites: torch.Tensor | None = None
    elite_energies: torch.Tensor | None = None
    best_actions: torch.Tensor | None = None
    evaluations: int = 0
    seconds: float = 0.0
    plan_energy: float | None = None


class Planner(Protocol):
    """Anything with ``plan(energy_fn, horizon, init=None, generator=None) -> PlanResult``."""

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PlanResult: ...


def evaluate(energy_fn: EnergyFn, actions: torch.Tensor, where: str) -> torch.Tensor:
    """Call ``energy_fn(actions[S, H, 7])`` and check the result is a finite ``[S]`` tensor.

    ``where`` names the caller (e.g. ``"CEM iteration 3"``) for the error messages.
    """
    energies = energy_fn(actions)
    if not isinstance(energies, torch.Tensor):
        raise TypeError(f"{where}: energy_fn must return a torch.Tensor, got {type(energies).__name__}")
    if energies.shape != (actions.shape[0],):
        raise ValueError(
            f"{where}: energy_fn returned shape {tuple(energies.shape)}, expected ({actions.shape[0]},) "
            f"(one energy per action sequence of the [S, H, 7] input)"
        )
    finite = torch.isfinite(energies)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        n_nan = int(torch.isnan(energies).sum())
        raise NonFiniteEnergyError(
            f"{where}: energy_fn returned {bad.numel()} non-finite energies out of {energies.numel()} "
            f"({n_nan} NaN, {bad.numel() - n_nan} inf; first bad sample index {int(bad[0])}). "
            "Check the world model / goal embedding for NaNs (e.g. a diverged checkpoint or bf16 overflow)."
        )
    return energies


def check_horizon_and_init(horizon: int, init: torch.Tensor | None, name: str) -> None:
    """Validate the common ``plan`` arguments."""
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"{name}.plan: horizon must be an int >= 1, got {horizon!r}")
    if init is not None:
        if init.shape != (horizon, ACTION_DIM):
            raise ValueError(f"{name}.plan: init must have shape ({horizon}, 7), got {tuple(init.shape)}")
        if not bool(torch.isfinite(init).all()):
            raise ValueError(f"{name}.plan: init contains NaN or inf")


def default_generator(generator: torch.Generator | None, seed: int) -> torch.Generator:
    """The caller's generator, or a fresh CPU generator seeded with ``seed`` (determinism by default)."""
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(seed)


def resolve_device(device: torch.device | str | None, init: torch.Tensor | None) -> torch.device:
    """The device to plan on: the one asked for, else the warm start's, else the CPU."""
    if device is not None:
        return torch.device(device)
    return init.device if init is not None else torch.device("cpu")


class Timer:
    """Context manager measuring wall time in seconds (``.seconds``)."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def shift_plan(plan: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Warm start for the next MPC call: drop the first ``steps`` actions, repeat the last one.

    ``plan[H, 7] -> [H, 7]``.
    """
    if steps <= 0:
        return plan.clone()
    h = plan.shape[0]
    if steps >= h:
        return plan[-1:].expand(h, -1).clone()
    return torch.cat([plan[steps:], plan[-1:].expand(steps, -1)], dim=0)
