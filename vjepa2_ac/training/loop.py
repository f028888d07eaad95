"""The training loop shared by the stages: resume, checkpoints, metrics, progress bar, time budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from vjepa2_ac.errors import NonFiniteError, RunDirError
from vjepa2_ac.training import runtime
from vjepa2_ac.training.config import save_config, to_dict

CHECKPOINT = "checkpoint.pt"
RUN_SETTINGS = "run_settings.json"
# Settings a continued run may change: resources and logging, not what is learned or from what.
RESUME_FREE = (
    "run.max_minutes",
    "run.threads",
    "run.device",
    "run.tensorboard",
    "run.log_every",
    "run.checkpoint_every",
    "run.activation_checkpointing",
    "data.num_workers",
    "data.paths",  # as typed (relative or absolute); the data identity compares the resolved paths
)


def claim_run_dir(
    run_dir: Path,
    cfg: Any,
    info: runtime.DistInfo,
    *,
    resume: bool,
    overwrite: bool,
    results: tuple[str, ...],
    derived: tuple[str, ...] = (),
) -> None:
    """Make ``run_dir`` this run's, before anything is written into it (main process).

    Locks it (``OUT/.lock``, see :mod:`vjepa2_ac.rundir`). A folder holding a finished or interrupted
    run (any of ``results``) is refused unless ``resume`` (same settings, except :data:`RESUME_FREE`,
    and the same data files) or ``overwrite`` (its outputs, ``results`` and ``derived``, are deleted
    first). Stores the settings in ``run_settings.json``.
    """
    from vjepa2_ac import rundir

    if not info.is_main:
        return
    if resume and overwrite:
        raise RunDirError("--resume continues the run in --out and --overwrite replaces it; give one")
    if resume and not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {run_dir / CHECKPOINT}")
    rundir.lock_run_dir(run_dir)
    settings = {"config": to_dict(cfg), "data": rundir.data_identity(cfg.data.paths)}
    present = [n for n in results if (run_dir / n).exists()]
    if overwrite:
        rundir.remove_outputs(run_dir, [*results, *derived, RUN_SETTINGS])
    elif resume:
        rundir.check_settings(
            run_dir,
            settings,
            name=RUN_SETTINGS,
            free=[f"config.{k}" for k in RESUME_FREE],
            hint="resume with the settings and data it was started with, or --overwrite to start over",
        )
    elif present:
        raise RunDirError(
            f"--out {run_dir} already holds a run ({', '.join(present)}); continue it with --resume "
            "or replace it with --overwrite"
        )
    rundir.write_settings(run_dir, settings, name=RUN_SETTINGS)


@dataclass
class Run:
    """Everything the loop needs to checkpoint and resume a stage."""

    kind: str  # "pretrain" | "train_ac" | ...
    cfg: Any  # the stage config (has .run and .optim)
    run_dir: Path
    info: runtime.DistInfo
    modules: dict[str, nn.Module]  # checkpointed weights (unwrapped modules)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    extra: dict[str, Any] = field(default_factory=dict)  # stage state saved with the checkpoint

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def model_config(self) -> dict[str, Any]:
        return to_dict(self.cfg)["model"]

    def check_finite(self, step: int) -> None:
        """Refuses to checkpoint NaN/inf weights (a diverged step whose loss was still finite)."""
        for name, module in self.modules.items():
            for key, t in module.state_dict().items():
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise NonFiniteError(
                        f"{self.run_dir}: non-finite weights in {name}.{key} after step {step}; "
                        f"not saved (the checkpoint in {self.checkpoint_path.name} is from before)"
                    )

    def save(self, step: int) -> None:
        """Atomically write the full training state after ``step`` optimisation steps (main process)."""
        if not self.info.is_main:
            return
        self.check_finite(step)
        state = {
            "kind": self.kind,
            "step": step,
            "config": to_dict(self.cfg),
            "model": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": runtime.rng_state(),
            "data": {"seed": self.cfg.run.seed, "next_step": step},
            "extra": self.extra,
        }
        runtime.atomic_save(state, self.checkpoint_path)

    def restore(self) -> int:
        """Load the checkpoint of ``run_dir`` (same kind and architecture) and return its step."""
        path = self.checkpoint_path
        state = runtime.load_training_state(path)
        if state.get("kind") != self.kind:
            raise ValueError(
                f"cannot resume from {path}: it is a {state.get('kind')!r} checkpoint, not {self.kind!r}"
            )
        runtime.check_architecture(state["config"]["model"], self.model_config(), path)
        for k, m in self.modules.items():
            if k not in state["model"]:
                raise ValueError(f"cannot resume from {path}: it has no '{k}' weights")
            runtime.load_state_checked(m, state["model"][k], k, path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        runtime.set_rng_state(state["rng"])
        self.extra.update(state.get("extra", {}))
        return int(state["step"])


def check_step_metrics(step: int, metrics: dict[str, float], run: Run) -> None:
    """Stops at the first non-finite loss or gradient norm, before anything of the step is saved."""
    for key in ("loss", "grad_norm"):
        value = metrics.get(key)
        if value is not None and not math.isfinite(value):
            kept = (
                f"{run.checkpoint_path} (an earlier step) is kept"
                if run.checkpoint_path.is_file()
                else "no checkpoint was written"
            )
            raise NonFiniteError(
                f"{key} is {value} at step {step}: training diverged (optim.lr={run.cfg.optim.lr}, "
                f"optim.grad_clip={run.cfg.optim.grad_clip}); stopped, {kept}"
            )


def train_loop(
    run: Run,
    step_fn: Callable[[int, dict[str, Any]], dict[str, float]],
    make_batches: Callable[[int], Iterator[dict[str, Any]]],
    *,
    clips_per_step: int,
    resume: bool,
    stop_after_steps: int | None = None,
    desc: str = "train",
) -> dict[str, Any]:
    """Run ``step_fn(step, batch)`` from the start (or the checkpoint) to ``optim.total_steps``.

    Writes ``config.yaml`` (resolved), ``metrics.csv`` / ``tensorboard/``, and ``checkpoint.pt`` every
    ``run.checkpoint_every`` steps and at the end. Raises :class:`~vjepa2_ac.errors.NonFiniteError` at
    the first non-finite loss or gradient norm (or weights, when saving). Stops early, with a checkpoint,
    when ``run.max_minutes`` is spent. ``stop_after_steps`` ends the process after that many steps
    WITHOUT a final checkpoint (it simulates a kill; used by tests). Returns a summary (steps done, last
    metrics, whether finished).
    """
    cfg, info = run.cfg, run.info
    total = cfg.optim.total_steps
    start = 0
    if resume:
        start = run.restore()
    if info.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run.run_dir / "config.yaml")
    logger = runtime.MetricsLogger(
        run.run_dir, info.is_main, cfg.run.tensorboard, resume_step=start if resume else None
    )
    budget = runtime.Budget(cfg.run.max_minutes)
    batches = make_batches(start)
    bar = tqdm(total=total, initial=start, desc=desc, disable=not info.is_main, dynamic_ncols=True)
    step, last, finished, t_last = start, {}, start >= total, time.perf_counter()
    try:
        while step < total:
            batch = next(batches)
            metrics = step_fn(step, batch)
            step += 1
            check_step_metrics(step, metrics, run)
            now = time.perf_counter()
            metrics["clips_per_s"] = clips_per_step / max(now - t_last, 1e-9)
            t_last = now
            last = metrics
            if step % cfg.run.log_every == 0 or step == total:
                logger.log(step, {"lr": run.scheduler.lr, **metrics})
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", clips_s=f"{metrics['clips_per_s']:.1f}")
            if stop_after_steps is not None and step >= stop_after_steps:
                return {"steps": step, "finished": False, "metrics": last, "killed": True}
            if step == total:
                finished = True
                break
            out_of_time = runtime.synced_flag(budget.expired(), info)
            if step % cfg.run.checkpoint_every == 0 or out_of_time:
                run.save(step)
            if out_of_time:
                if info.is_main:
                    tqdm.write(
                        f"{desc}: run.max_minutes={cfg.run.max_minutes} spent after {step} steps; "
                        f"checkpoint saved, continue with --resume"
                    )
                break
        run.save(step)
    finally:
        bar.close()
        logger.close()
    return {"steps": step, "finished": finished or step >= total, "metrics": last, "killed": False}
