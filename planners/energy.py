"""World-model energy: distance between the rolled-out latent and a goal embedding.

``WorldModelEnergy(world_model, z_context, states_context, z_goal)`` is a planner energy function
``actions[S, H, 7] -> energy[S]``: it rolls the candidates out with :meth:`WorldModel.rollout` (one batch
for all samples, the context broadcast from batch 1, key/value cache on by default) and returns the
mean L1 distance between the last predicted step and the goal (official), or L2 / all-step variants.
The closed-loop MPC runner (:mod:`vjepa2_ac.planners.lockstep`) batches the same rollout over episodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2_ac.world_model import IMAGENET_MEAN, IMAGENET_STD

DISTANCES = ("l1", "l2")
STEP_MODES = ("last", "all")


def preprocess_images(images, size: int | tuple[int, int] | None = None, device=None) -> torch.Tensor:
    """uint8 RGB ``[H, W, 3]`` or ``[B, H, W, 3]`` (numpy or torch) -> normalised ``[B, 3, h, w]`` float32.

    ImageNet mean/std normalisation as for the encoder; resized (bilinear, antialiased) to ``size`` if
    given and different.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 RGB [H, W, 3] or [B, H, W, 3], got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be [H, W, 3] or [B, H, W, 3], got shape {tuple(x.shape)}")
    x = x.to(device).permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W]
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) != hw:
            x = F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def latent_distance(z: torch.Tensor, goal: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """Mean per-element distance over the last two dims: ``z[..., N, D]``, ``goal[..., N, D]`` -> ``[...]``.

    ``"l1"``: mean ``|z - goal|`` (official planning energy); ``"l2"``: mean ``(z - goal)^2``.
    """
    diff = z.float() - goal.float()
    if distance == "l1":
        return diff.abs().mean(dim=(-1, -2))
    if distance == "l2":
        return diff.square().mean(dim=(-1, -2))
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 matmuls natively (CUDA with bf16 support; a CPU with AVX-512 BF16 or
    AMX as oneDNN reports it). Elsewhere bf16 autocast emulates the matmuls and is far slower than
    float32, so ``bf16="auto"`` picks float32 there."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def _autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class WorldModelEnergy:
    """Planner energy ``actions[S, H, 7] -> [S]`` through a world-model rollout.

    Args:
        world_model: a :class:`vjepa2_ac.world_model.WorldModel` (put it in ``eval()`` mode).
        z_context: ``[1, S0, N, D]`` (or ``[S0, N, D]``) normed context embeddings.
        states_context: ``[1, S0, 7]`` (or ``[S0, 7]`` / ``[7]``) context states.
        z_goal: goal embedding ``[N, D]``, ``[1, N, D]`` or ``[1, 1, N, D]``.
        past_actions: ``[1, S0-1, 7]`` actions between context steps (needed when ``S0 > 1``).
        distance: ``"l1"`` (official) or ``"l2"`` (mean squared error).
        steps: ``"last"`` (official: only the last predicted step) or ``"all"`` (mean over the H steps).
        use_cache: key/value-cached rollout (default) or full recompute per step.
        bf16: run the rollout under bf16 autocast (energies are still reduced in float32); ``"auto"``:
            bf16 where the device runs it natively (:func:`bf16_supported`), float32 elsewhere.
        chunk_size: evaluate at most this many samples per rollout batch (bounds memory); None = all.
        static_kv: preallocated, in-place filled key/value buffer during gradient-free rollouts
            (:meth:`WorldModel.rollout`); ``False`` concatenates a growing cache (same energies).
        refine: with ``bf16``, re-evaluate the ``refine`` lowest bf16 energies in float32 and return those
            exact values (so CEM's elites are ranked in float32 while the bulk of the candidates is screened
            in bf16); 0 disables.
    """

    def __init__(
        self,
        world_model,
        z_context: torch.Tensor,
        states_context: torch.Tensor,
        z_goal: torch.Tensor,
        past_actions: torch.Tensor | None = None,
        distance: str = "l1",
        steps: str = "last",
        use_cache: bool = True,
        bf16: bool = False,
        chunk_size: int | None = None,
        refine: int = 0,
        static_kv: bool = True,
    ) -> None:
        if bf16 == "auto":
            bf16 = bf16_supported(next(world_model.parameters()).device)
        if not isinstance(bf16, bool):
            raise ValueError(f"WorldModelEnergy: bf16 must be True, False or 'auto', got {bf16!r}")
        if not isinstance(refine, int) or refine < 0:
            raise ValueError(f"WorldModelEnergy: refine must be an int >= 0, got {refine!r}")
        if distance not in DISTANCES:
            raise ValueError(f"WorldModelEnergy: distance must be one of {DISTANCES}, got {distance!r}")
        if steps not in STEP_MODES:
            raise ValueError(f"WorldModelEnergy: steps must be one of {STEP_MODES}, got {steps!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"WorldModelEnergy: chunk_size must be None or an int >= 1, got {chunk_size!r}")
        self.world_model = world_model
        self.device = next(world_model.parameters()).device
        z_context = torch.as_tensor(z_context).to(self.device)
        if z_context.ndim == 3:
            z_context = z_context[None]
        if z_context.ndim != 4 or z_context.shape[0] != 1:
            raise ValueError(
                f"WorldModelEnergy: z_context must be [1, S0, N, D], got {tuple(z_context.shape)}"
            )
        s0, n, d = z_context.shape[1:]
        states_context = torch.as_tensor(states_context, dtype=torch.float32).to(self.device)
        states_context = states_context.reshape(1, -1, 7) if states_context.shape[-1] == 7 else states_context
        if states_context.shape != (1, s0, 7):
            raise ValueError(
                f"WorldModelEnergy: states_context must be [1, {s0}, 7] to match z_context, "
                f"got {tuple(states_context.shape)}"
            )
        z_goal = torch.as_tensor(z_goal).to(self.device)
        if z_goal.shape[-2:] != (n, d) or z_goal.numel() != n * d:
            raise ValueError(
                f"WorldModelEnergy: z_goal must hold one step of [N={n}, D={d}] tokens, "
                f"got {tuple(z_goal.shape)}"
            )
        if s0 > 1:
            if past_actions is None:
                raise ValueError(
                    f"WorldModelEnergy: past_actions [1, {s0 - 1}, 7] are required when S0 = {s0}"
                )
            past_actions = (
                torch.as_tensor(past_actions, dtype=torch.float32).to(self.device).reshape(1, s0 - 1, 7)
            )
        self.z_context = z_context.float()
        self.states_context = states_context
        self.z_goal = z_goal.float().reshape(1, 1, n, d)
        self.past_actions = past_actions
        self.distance, self.steps = distance, steps
        self.use_cache, self.bf16, self.chunk_size, self.refine = use_cache, bf16, chunk_size, refine
        self.static_kv = static_kv
        self._cache = None
        self._cache32 = None
        if use_cache and s0 > 1:
            # The context steps do not depend on the planned actions: encode them once, batch 1.
            with torch.no_grad(), _autocast(self.device, bf16):
                self._cache = world_model.context_cache(
                    self.z_context, self.states_context, self.past_actions
                )
        self.calls = 0

    def _chunks(self, actions: torch.Tensor) -> Iterator[torch.Tensor]:
        size = self.chunk_size or actions.shape[0]
        yield from actions.split(size, dim=0)

    def rollout(self, actions: torch.Tensor, bf16: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``actions[S, H, 7]`` -> predicted embeddings ``[S, H, N, D]`` (float32), states ``[S, H+1, 7]``.

        ``bf16`` overrides the energy's setting for this call.
        """
        if actions.ndim != 3 or actions.shape[-1] != 7:
            raise ValueError(f"WorldModelEnergy: actions must be [S, H, 7], got {tuple(actions.shape)}")
        bf16 = self.bf16 if bf16 is None else bf16
        cache = self._cache
        if not bf16 and self.bf16 and self._cache is not None:
            if self._cache32 is None:  # the context cache in float32 for the refinement pass
                with torch.no_grad():
                    self._cache32 = self.world_model.context_cache(
                        self.z_context, self.states_context, self.past_actions
                    )
            cache = self._cache32
        actions = actions.to(self.device, torch.float32)
        zs, ss = [], []
        with torch.set_grad_enabled(actions.requires_grad), _autocast(self.device, bf16):
            for chunk in self._chunks(actions):
                z, s = self.world_model.rollout(
                    self.z_context,
                    self.states_context,
                    chunk,
                    past_actions=self.past_actions,
                    use_cache=self.use_cache,
                    cache=cache,
                    static_kv=self.static_kv,
                )
                zs.append(z.float())
                ss.append(s.float())
        return torch.cat(zs), torch.cat(ss)

    def _energy(self, z_pred: torch.Tensor) -> torch.Tensor:
        if self.steps == "last":
            return latent_distance(z_pred[:, -1], self.z_goal[:, 0], self.distance)
        return latent_distance(z_pred, self.z_goal, self.distance).mean(dim=1)

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions[S, H, 7] -> energy[S]`` (float32, on the model's device)."""
        z_pred, _ = self.rollout(actions)  # [S, H, N, D]
        self.calls += 1
        energies = self._energy(z_pred)
        if self.bf16 and self.refine and not actions.requires_grad:
            k = min(self.refine, energies.shape[0])
            best = torch.topk(energies, k, largest=False).indices
            z32, _ = self.rollout(actions[best.to(actions.device)], bf16=False)
            energies = energies.clone()
            energies[best] = self._energy(z32)
        return energies
