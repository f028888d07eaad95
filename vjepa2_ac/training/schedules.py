"""Learning-rate / weight-decay schedules and AdamW parameter groups.

Schedules are pure functions of the step (so resuming only needs the step count) wrapped in a small
object with ``state_dict``/``load_state_dict`` that writes the values into the optimizer's groups.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vjepa2_ac.training.config import OptimConfig


def wsd_lr(
    step: int, *, start_lr: float, lr: float, final_lr: float, warmup: int, anneal: int, total: int
) -> float:
    """Warmup-stable-decay: linear ``start_lr -> lr`` over ``warmup`` steps, constant, then linear to
    ``final_lr`` over the last ``anneal`` steps (official ``WSDSchedule`` shape)."""
    if step < warmup:
        return start_lr + (lr - start_lr) * step / warmup
    decay_start = total - anneal
    if anneal > 0 and step >= decay_start:
        frac = min(1.0, (step - decay_start) / anneal)
        return lr + (final_lr - lr) * frac
    return lr


def warmup_cosine_lr(
    step: int, *, start_lr: float, lr: float, final_lr: float, warmup: int, total: int
) -> float:
    """Linear warm-up ``start_lr -> lr``, then a half cosine from ``lr`` to ``final_lr`` at ``total``."""
    if step < warmup:
        return start_lr + (lr - start_lr) * step / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_value(step: int, start: float, end: float, total: int) -> float:
    """Half cosine from ``start`` (step 0) to ``end`` (step ``total``); used for weight decay."""
    progress = min(1.0, step / max(1, total))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Scheduler:
    """Sets lr and weight decay of an optimizer from :class:`OptimConfig` at every ``step()``.

    Parameter groups with ``weight_decay == 0`` at construction (biases, gains) keep zero decay.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig):
        self.optimizer, self.cfg, self.step_count = optimizer, cfg, 0
        for g in optimizer.param_groups:
            g.setdefault("wd_exclude", g.get("weight_decay", 0.0) == 0.0)
        self._apply()

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``."""
        c = self.cfg
        if c.schedule == "wsd":
            return wsd_lr(
                step,
                start_lr=c.start_lr,
                lr=c.lr,
                final_lr=c.final_lr,
                warmup=c.warmup_steps,
                anneal=c.anneal_steps,
                total=c.total_steps,
            )
        return warmup_cosine_lr(
            step,
            start_lr=c.start_lr,
            lr=c.lr,
            final_lr=c.final_lr,
            warmup=c.warmup_steps,
            total=c.total_steps,
        )

    def wd_at(self, step: int) -> float:
        """Weight decay (for the decayed groups) at ``step``."""
        return cosine_value(step, self.cfg.weight_decay, self.cfg.final_weight_decay, self.cfg.total_steps)

    def _apply(self) -> None:
        lr, wd = self.lr_at(self.step_count), self.wd_at(self.step_count)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
            g["weight_decay"] = 0.0 if g["wd_exclude"] else wd

    def step(self) -> None:
        """Advance one optimisation step."""
        self.step_count += 1
        self._apply()

    @property
    def lr(self) -> float:
        """Current learning rate."""
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()


def param_groups(
    modules: list[torch.nn.Module] | torch.nn.Module, weight_decay: float
) -> list[dict[str, Any]]:
    """Two AdamW groups: decay for non-bias tensors with ndim > 1, none for biases and 1-D gains."""
    if isinstance(modules, torch.nn.Module):
        modules = [modules]
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim > 1 and not name.endswith(".bias") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "wd_exclude": True})
    groups[0]["wd_exclude"] = False
    return groups


def build_optimizer(modules, cfg: OptimConfig) -> tuple[torch.optim.AdamW, Scheduler]:
    """AdamW over ``modules`` with matrix-only weight decay, plus its schedule."""
    opt = torch.optim.AdamW(
        param_groups(modules, cfg.weight_decay), lr=cfg.start_lr, betas=tuple(cfg.betas), eps=cfg.eps
    )
    return opt, Scheduler(opt, cfg)
