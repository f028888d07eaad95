"""Cross-entropy method over many independent planning problems at once.

``vjepa2_ac.planners.CEM`` solves one problem per call; a planning *evaluation* runs tens of episodes in
lockstep, and the world model is far cheaper per sample when all episodes' candidates go through one
predictor call. This module runs E CEM instances side by side: the energy callable sees
``actions[E, S, H, 7]`` and returns ``energy[E, S]``.

Per episode it follows the official CEM (diagonal Gaussian over xyz (+ gripper), clip to ``±maxnorm``,
top-k refit with momentum) plus two additions that matter for closed-loop MPC on a learned energy:

* ``keep_still``: the all-zero action sequence is always one of the candidates, so once the arm is at
  the energy minimum "stay" can win instead of a random jitter (the drift out of the goal basin seen
  in ``reach_feasibility.md``).
* warm start: the previous plan, shifted by one step, seeds the mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

BatchedEnergy = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BatchedCEMConfig:
    """Settings of :func:`batched_cem`.

    Attributes:
        samples: candidates per episode and iteration (including the zero candidate).
        iterations: CEM iterations per MPC step.
        topk: elites per iteration.
        horizon: planned steps H (only the first is executed).
        maxnorm: bound on |dx|, |dy|, |dz| per step (metres).
        init_std: initial std of xyz as a fraction of ``maxnorm``.
        momentum_mean / momentum_std: weight of the previous mean / std when refitting.
        plan_gripper: plan the gripper delta too (push/reach do not need it).
        keep_still: always evaluate the all-zero sequence.
        min_std: floor on the std (metres) so the search never collapses completely.
    """

    samples: int = 200
    iterations: int = 4
    topk: int = 20
    horizon: int = 1
    maxnorm: float = 0.05
    init_std: float = 1.0
    momentum_mean: float = 0.1
    momentum_std: float = 0.1
    plan_gripper: bool = False
    keep_still: bool = True
    min_std: float = 0.002

    def __post_init__(self) -> None:
        for name in ("samples", "iterations", "topk", "horizon"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"BatchedCEMConfig.{name} must be an int >= 1, got {v!r}")
        if not 2 <= self.topk <= self.samples:
            raise ValueError(f"BatchedCEMConfig.topk must be in [2, samples={self.samples}], got {self.topk}")
        for name in ("maxnorm", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"BatchedCEMConfig.{name} must be a finite number > 0, got {v!r}")
        for name in ("momentum_mean", "momentum_std"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"BatchedCEMConfig.{name} must be in [0, 1], got {v!r}")
        if self.min_std < 0:
            raise ValueError(f"BatchedCEMConfig.min_std must be >= 0, got {self.min_std}")


@dataclass
class BatchedPlan:
    """Result of :func:`batched_cem` for E episodes.

    Attributes:
        actions: final mean plans ``[E, H, 7]`` (row 0 is executed).
        energy: energy of the executed plan's mean, re-evaluated ``[E]``.
        best_energy: lowest energy seen per episode ``[E]``.
        evaluations: candidates evaluated per episode.
    """

    actions: torch.Tensor
    energy: torch.Tensor
    best_energy: torch.Tensor
    evaluations: int


def _planned_dims(cfg: BatchedCEMConfig) -> list[int]:
    return [0, 1, 2, 6] if cfg.plan_gripper else [0, 1, 2]


def batched_cem(
    energy_fn: BatchedEnergy,
    num_problems: int,
    cfg: BatchedCEMConfig,
    generator: torch.Generator,
    init_mean: torch.Tensor | None = None,
) -> BatchedPlan:
    """Minimise ``energy_fn(actions[E, S, H, 7]) -> [E, S]`` independently for each of E problems.

    ``init_mean[E, H, 7]`` warm-starts the mean (e.g. the previous plan shifted by one step).
    """
    e, s, h = num_problems, cfg.samples, cfg.horizon
    dims = _planned_dims(cfg)
    d = len(dims)
    bound = torch.tensor([cfg.maxnorm] * 3 + ([0.75] if cfg.plan_gripper else []))  # [d]
    mean = torch.zeros(e, h, d)
    if init_mean is not None:
        if init_mean.shape != (e, h, 7):
            raise ValueError(f"batched_cem: init_mean must be [{e}, {h}, 7], got {tuple(init_mean.shape)}")
        mean = init_mean[..., dims].clone().float()
    std = (bound * cfg.init_std).expand(e, h, d).clone()
    if cfg.plan_gripper:
        std[..., -1] = 1.0
    best_energy = torch.full((e,), float("inf"))
    n_eval = 0
    for _ in range(cfg.iterations):
        noise = torch.randn(e, s, h, d, generator=generator)
        cand = mean[:, None] + std[:, None] * noise  # [E, S, H, d]
        cand = torch.maximum(torch.minimum(cand, bound), -bound)
        if cfg.keep_still:
            cand[:, 0] = 0.0
        full = torch.zeros(e, s, h, 7)
        full[..., dims] = cand
        energy = energy_fn(full)  # [E, S]
        if energy.shape != (e, s):
            raise ValueError(f"batched_cem: energy_fn returned {tuple(energy.shape)}, expected ({e}, {s})")
        if not bool(torch.isfinite(energy).all()):
            raise ValueError("batched_cem: energy_fn returned NaN/inf (diverged checkpoint or bad goal?)")
        n_eval += s
        best_energy = torch.minimum(best_energy, energy.min(dim=1).values)
        idx = energy.topk(cfg.topk, dim=1, largest=False).indices  # [E, K]
        elites = torch.gather(cand, 1, idx[:, :, None, None].expand(-1, -1, h, d))  # [E, K, H, d]
        new_mean = elites.mean(dim=1)
        new_std = elites.std(dim=1).clamp_min(cfg.min_std)
        mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * new_mean
        std = cfg.momentum_std * std + (1 - cfg.momentum_std) * new_std
    plan = torch.zeros(e, h, 7)
    plan[..., dims] = torch.maximum(torch.minimum(mean, bound), -bound)
    final = energy_fn(plan[:, None]).reshape(e)
    return BatchedPlan(
        actions=plan, energy=final, best_energy=torch.minimum(best_energy, final), evaluations=n_eval
    )


def shift_plans(plans: torch.Tensor) -> torch.Tensor:
    """Warm start for the next MPC step: drop the executed action, repeat the last. ``[E,H,7]->[E,H,7]``."""
    if plans.shape[1] == 1:
        return torch.zeros_like(plans)
    return torch.cat([plans[:, 1:], torch.zeros_like(plans[:, -1:])], dim=1)
