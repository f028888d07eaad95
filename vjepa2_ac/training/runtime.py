"""Run-time plumbing shared by the training stages: devices, torchrun/DDP, RNG state, atomic checkpoints,
metrics (CSV + TensorBoard) and the time budget."""

from __future__ import annotations

import csv
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# ------------------------------------------------------------------------------------------------
# Devices and distributed
# ------------------------------------------------------------------------------------------------


@dataclass
class DistInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from vjepa2_ac.errors import DeviceError

        raise DeviceError("run.device=cuda (--device cuda) but no CUDA device is available")
    return torch.device(name)


def init_distributed(device_name: str = "auto", threads: int = 0) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPU, gloo on CPU.

    Single process (no torchrun) needs no process group. ``threads > 0`` sets torch's CPU thread count.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def cleanup_distributed() -> None:
    """Leave the process group if one was joined.

    All ranks meet at a barrier first: a rank that tears gloo down while another is still finishing
    (rank 0 writing its checkpoint) can abort with "terminate called without an active exception".
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over processes (identity when single-process)."""
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU (AMX) or GPU; a no-op context when disabled."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


# ------------------------------------------------------------------------------------------------
# RNG state
# ------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain containers/tensors (loadable with weights_only=True)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    from vjepa2_ac.atomic import atomic_write

    atomic_write(path, lambda f: torch.save(obj, f))


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`atomic_save` (weights_only)."""
    from vjepa2_ac.checkpoint import safe_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return safe_load(path, "cpu", what="training checkpoint")


def check_architecture(saved: dict[str, Any], current: dict[str, Any], path: str | os.PathLike) -> None:
    """Fail clearly when a checkpoint was made for another architecture (compares model config sections)."""
    diffs = []

    def walk(a, b, key):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{key}.{k}" if key else k)
        elif a != b:
            diffs.append(f"{key}: checkpoint {a!r} vs config {b!r}")

    walk(saved, current, "model")
    if diffs:
        raise ValueError(
            f"cannot resume from {path}: it was trained with another architecture ("
            + "; ".join(diffs[:6])
            + ("; ..." if len(diffs) > 6 else "")
            + ")"
        )


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, path) -> None:
    """``load_state_dict(strict=True)`` with an error that says which module and file did not fit."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ValueError(
            f"checkpoint {path}: the {what} weights do not fit the configured architecture: "
            + " ".join(first[:3])[:600]
        ) from None


def wrap_ddp(module: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``module`` itself in a single process, else wrapped in DistributedDataParallel on its device."""
    if not info.distributed:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper."""
    return (
        module.module
        if hasattr(module, "module") and isinstance(module, torch.nn.parallel.DistributedDataParallel)
        else module
    )


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


class MetricsLogger:
    """Appends rows to ``metrics.csv`` and scalars to TensorBoard (main process only).

    On resume, rows after the resumed step are dropped first so the CSV of a resumed run equals the
    uninterrupted one.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.fields: list[str] | None = None
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.fields = list(rows[0].keys())
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            tmp = self.path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as f:
                if self.fields:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(kept)
            os.replace(tmp, self.path)
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step)

    def log(self, step: int, values: dict[str, float]) -> None:
        """Write one row (``step`` plus ``values``)."""
        if not self.enabled:
            return
        row = {"step": step, **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()}}
        new = self.fields is None or not self.path.exists()
        if self.fields is None:
            self.fields = list(row.keys())
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Budget:
    """``--max-minutes``: ``expired()`` once the wall-clock budget is spent (0 = unlimited)."""

    def __init__(self, minutes: float):
        self.deadline = time.monotonic() + minutes * 60 if minutes > 0 else None

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def synced_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank when any rank raised it (so all ranks stop at the same step)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t)
    return bool(t.item() > 0)


def embedding_std(z: torch.Tensor) -> float:
    """Collapse watch: mean over channels of the std across all tokens of ``z[..., D]``."""
    flat = z.detach().float().reshape(-1, z.shape[-1])
    if flat.shape[0] < 2:
        return float("nan")
    return float(flat.std(0).mean())
