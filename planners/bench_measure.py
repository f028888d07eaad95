"""What ``vjepa2-ac bench planning`` measures: benchmark shapes, analytic FLOPs, the matmul peak probe, and
the timed planners (ours, the paper preset, the official-style naive path) with their energy errors.

The table, JSON records and command-line handling live in :mod:`vjepa2_ac.planners.bench`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.energy import WorldModelEnergy
from vjepa2_ac.planners.reference import NaiveWorldModel


@dataclass(frozen=True)
class BenchShape:
    """Predictor shape of a benchmark config (plus the placeholder encoder it needs)."""

    name: str
    img_size: int
    patch_size: int
    embed_dim: int  # encoder width = predictor input/output width
    predictor_embed_dim: int
    depth: int
    num_heads: int

    @property
    def tokens_per_frame(self) -> int:
        return (self.img_size // self.patch_size) ** 2


SHAPES = {
    # the official benchmark shape: img 64, patch 8 (64 tokens), width 192, depth 6, 6 heads
    "small": BenchShape("small", 64, 8, 192, 192, 6, 6),
    # the released V-JEPA 2-AC predictor: 256 px, patch 16 (256 tokens), ViT-g width 1408, Dp 1024, depth 24
    "vitg": BenchShape("vitg", 256, 16, 1408, 1024, 24, 16),
    # the shipped simulation world model (experiments/sim_model.py defaults): 16 tokens, Dp 64, depth 2
    "sim": BenchShape("sim", 64, 16, 128, 64, 2, 4),
}
DTYPES = ("auto", "bf16", "fp32")
PAPER = {"samples": 800, "iterations": 10, "topk": 10, "horizon": 1}


def build_world_model(shape: BenchShape, device: torch.device, seed: int = 0):
    """Random-weight world model with the benchmark's predictor and a one-block placeholder encoder."""
    from vjepa2_ac.encoder import build_encoder
    from vjepa2_ac.predictor import build_predictor
    from vjepa2_ac.world_model import WorldModel

    torch.manual_seed(seed)
    encoder = build_encoder(
        img_size=shape.img_size,
        patch_size=shape.patch_size,
        num_frames=2,
        tubelet_size=2,
        embed_dim=shape.embed_dim,
        depth=1,
        num_heads=max(1, shape.embed_dim // 64),
        use_rope=True,
    )
    predictor = build_predictor(
        img_size=shape.img_size,
        patch_size=shape.patch_size,
        num_frames=64,
        tubelet_size=2,
        embed_dim=shape.embed_dim,
        predictor_embed_dim=shape.predictor_embed_dim,
        depth=shape.depth,
        num_heads=shape.num_heads,
    )
    return WorldModel(encoder, predictor).to(device).eval()


# -- analytic FLOPs ------------------------------------------------------------------------------------
def _pass_flops(shape: BenchShape, batch: int, new_steps: int, key_steps: int, cond: int = 2) -> float:
    """Matmul + attention FLOPs of one predictor pass over ``new_steps`` steps attending to ``key_steps``."""
    hw, d, dp = shape.tokens_per_frame, shape.embed_dim, shape.predictor_embed_dim
    n_new = new_steps * (cond + hw)
    n_keys = key_steps * (cond + hw)
    hidden = 4 * dp
    per_layer = 2 * n_new * (4 * dp * dp + 2 * dp * hidden) + 4 * n_new * n_keys * dp
    embed = 2 * new_steps * hw * d * dp * 2 + 2 * new_steps * cond * 7 * dp  # predictor_embed + proj, cond
    return float(batch) * (shape.depth * per_layer + embed)


def cem_iteration_flops(shape: BenchShape, samples: int, horizon: int, cached: bool) -> float:
    """FLOPs of one CEM iteration: ``cached``: one pass per new step over the growing key/value cache;
    otherwise (naive) step ``h`` re-runs all ``h+1`` steps with full attention."""
    if cached:
        return sum(_pass_flops(shape, samples, 1, h + 1) for h in range(horizon))
    return sum(_pass_flops(shape, samples, h + 1, h + 1) for h in range(horizon))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` throughput of an ``n x n`` matmul in GFLOP/s."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    (a @ b).sum().item()  # warm-up (and make sure the kernel exists)
    best = math.inf
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def random_problem(wm, shape: BenchShape, device: torch.device, seed: int):
    """Layer-normed random context and goal ``[1, 1, N, D]`` and a DROID-like state ``[1, 1, 7]``."""
    g = torch.Generator().manual_seed(seed)
    hw, d = shape.tokens_per_frame, shape.embed_dim
    z_ctx = F.layer_norm(torch.randn(1, 1, hw, d, generator=g), (d,)).to(device)
    z_goal = F.layer_norm(torch.randn(1, 1, hw, d, generator=g), (d,)).to(device)
    state = torch.tensor([[[0.58, -0.002, 0.25, -3.07, 0.03, -1.91, 0.997]]], device=device)
    return z_ctx, state, z_goal


def time_ours(
    wm, problem, samples: int, horizon: int, iterations: int, bf16: bool, device, static_kv: bool = True
) -> float:
    """ms per CEM iteration of our planner (after a one-iteration warm-up)."""
    z_ctx, state, z_goal = problem
    energy = WorldModelEnergy(wm, z_ctx, state, z_goal, use_cache=True, bf16=bf16, static_kv=static_kv)
    gen = torch.Generator().manual_seed(0)
    topk = min(10, samples)
    with torch.no_grad():
        CEM(CEMConfig.paper(samples=samples, iterations=1, topk=topk)).plan(
            energy, horizon, generator=gen, device=device
        )
        _sync(device)
        t0 = time.perf_counter()
        CEM(CEMConfig.paper(samples=samples, iterations=iterations, topk=topk)).plan(
            energy, horizon, generator=gen, device=device
        )
        _sync(device)
    return (time.perf_counter() - t0) / iterations * 1e3


def time_paper(wm, problem, iterations: int, bf16: bool, device) -> float:
    """Seconds per planned action with the paper preset (``iterations`` of its 10 timed, scaled to 10)."""
    z_ctx, state, z_goal = problem
    energy = WorldModelEnergy(wm, z_ctx, state, z_goal, use_cache=True, bf16=bf16)
    cfg = dict(samples=PAPER["samples"], topk=PAPER["topk"])
    with torch.no_grad():
        CEM(CEMConfig.paper(iterations=1, **cfg)).plan(energy, PAPER["horizon"], device=device)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        CEM(CEMConfig.paper(iterations=iterations, **cfg)).plan(
            energy, PAPER["horizon"], generator=torch.Generator().manual_seed(0), device=device
        )
        _sync(device)
    return (time.perf_counter() - t0) * PAPER["iterations"] / iterations


def time_naive(naive: NaiveWorldModel, problem, samples: int, horizon: int, iterations: int, device) -> float:
    """ms per CEM iteration of the naive official-style planner (no warm-up beyond a 2-sample call)."""
    z_ctx, state, z_goal = problem
    with torch.no_grad():
        naive.cem(z_ctx, state, z_goal, horizon, samples=2, iterations=1, topk=2)
        _sync(device)
        t0 = time.perf_counter()
        naive.cem(
            z_ctx, state, z_goal, horizon, samples=samples, iterations=iterations, topk=min(10, samples)
        )
        _sync(device)
    return (time.perf_counter() - t0) / iterations * 1e3


def energy_errors(wm, naive: NaiveWorldModel, problem, horizon: int, n: int = 32) -> dict[str, float]:
    """Max relative energy error on ``n`` random candidates: bf16 vs fp32 (ours), naive vs ours fp32."""
    z_ctx, state, z_goal = problem
    g = torch.Generator().manual_seed(123)
    actions = torch.zeros(n, horizon, 7)
    actions[..., :3] = (torch.rand(n, horizon, 3, generator=g) - 0.5) * 0.1
    actions[..., 6] = (torch.rand(n, horizon, generator=g) - 0.5) * 1.5
    actions = actions.to(z_ctx.device)
    with torch.no_grad():
        e32 = WorldModelEnergy(wm, z_ctx, state, z_goal, bf16=False)(actions)
        e16 = WorldModelEnergy(wm, z_ctx, state, z_goal, bf16=True)(actions)
        z_naive, _ = naive.rollout(z_ctx.expand(n, -1, -1, -1), state.expand(n, -1, -1), actions)
        en = (z_naive[:, -1] - z_goal[:, 0]).abs().mean((-1, -2))
    spread = float(e32.max() - e32.min())
    return {
        "bf16_energy_rel_err": float(((e16 - e32).abs() / e32.abs()).max()),
        "bf16_energy_err_vs_spread": float((e16 - e32).abs().max()) / max(spread, 1e-12),
        "bf16_argmin_same": bool(int(e16.argmin()) == int(e32.argmin())),
        "naive_energy_rel_err": float(((en - e32).abs() / e32.abs()).max()),
    }
