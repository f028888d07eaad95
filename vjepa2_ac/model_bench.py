"""World-model speed benchmark: cached vs full-recompute rollout, fp32 vs bf16 autocast, RoPE tables.

Run ``python -m vjepa2_ac.model_bench [--preset small] [--samples 100] [--horizon 3]``. Prints one table
(milliseconds, best of ``--reps`` after a warm-up). The "naive" rollout is the official planner's
semantics (the whole growing sequence re-run every step, ``WorldModel.rollout(use_cache=False)``); the
RoPE baseline recomputes sines/cosines and rotates the three axis chunks separately on every call, as the
official attention does. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from vjepa2_ac.encoder import build_encoder
from vjepa2_ac.predictor import build_predictor
from vjepa2_ac.rope import apply_rope, predictor_rope_tables, rope_chunk_dim
from vjepa2_ac.world_model import WorldModel

PRESETS = {
    # The "small" configuration of the official CPU timing baseline (64 tokens per frame, 2.75 M params).
    "small": dict(img_size=64, patch_size=8, embed_dim=192, predictor_embed_dim=192, depth=6, num_heads=6),
    # The released V-JEPA 2-AC predictor shape (256 tokens per frame, 305 M params).
    "vitg": dict(
        img_size=256, patch_size=16, embed_dim=1408, predictor_embed_dim=1024, depth=24, num_heads=16
    ),
}


def _percall_rope(x: torch.Tensor, steps: int, cond: int, h: int, w: int) -> torch.Tensor:
    """Baseline: angles recomputed per call, three chunks rotated separately and concatenated."""
    hd = x.shape[-1]
    dc = rope_chunk_dim(hd)
    per = cond + h * w
    slot = torch.arange(steps * per, device=x.device) % per
    patch = (slot - cond).clamp(min=0)
    pos = [torch.arange(steps, device=x.device).repeat_interleave(per), patch // w, patch % w]
    is_patch = (slot >= cond).float()
    out = []
    for i, p in enumerate(pos):
        chunk = x[..., i * dc : (i + 1) * dc]
        omega = 1.0 / 10000 ** (torch.arange(dc // 2, device=x.device, dtype=x.dtype) / (dc / 2))
        ang = p.to(x.dtype)[:, None] * omega
        if i > 0:
            ang = ang * is_patch[:, None]
        cos, sin = ang.cos().repeat(1, 2), ang.sin().repeat(1, 2)
        pairs = chunk.unflatten(-1, (-1, 2))
        rot = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        out.append(chunk * cos + rot * sin)
    out.append(x[..., 3 * dc :])
    return torch.cat(out, dim=-1)


_CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _best_ms(fn, reps: int) -> float:
    fn()  # warm-up (allocations, caches)
    best = float("inf")
    for _ in range(reps):
        t0 = _clock()
        fn()
        best = min(best, _clock() - t0)
    return 1000.0 * best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of the benchmark."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="predictor shape")
    parser.add_argument("--samples", type=int, default=100, help="rollouts in parallel (CEM samples)")
    parser.add_argument("--horizon", type=int, default=3, help="planning horizon H (steps)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (best is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument(
        "--clock",
        choices=sorted(_CLOCK),
        default="wall",
        help="wall: elapsed; cpu: this process's CPU time (steadier on a shared machine; use --threads 1)",
    )


def run(args: argparse.Namespace) -> int:
    """Builds the preset, times the rollouts and RoPE, prints the table."""
    if args.samples < 1 or args.horizon < 1 or args.reps < 1:
        raise SystemExit("--samples, --horizon and --reps must be >= 1")
    global _clock
    _clock = _CLOCK[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PRESETS[args.preset]
    torch.manual_seed(0)
    pred = build_predictor(num_frames=2 * (args.horizon + 1), tubelet_size=2, **cfg)
    enc_cfg = {k: cfg[k] for k in ("img_size", "patch_size", "embed_dim", "num_heads")}
    enc = build_encoder(num_frames=2, tubelet_size=2, depth=1, use_rope=True, **enc_cfg)
    wm = WorldModel(enc, pred, alignment="duplicate").eval()
    n = pred.tokens_per_frame
    z = torch.randn(1, 1, n, cfg["embed_dim"])
    st = torch.zeros(1, 1, 7)
    s, horizon = args.samples, args.horizon
    print(
        f"preset={args.preset} samples={s} horizon={horizon} tokens/frame={n} "
        f"threads={torch.get_num_threads()} clock={args.clock} "
        f"params={sum(p.numel() for p in pred.parameters()):,}"
    )
    print(f"{'H':>2} | {'naive fp32':>11} | {'cached fp32':>11} | {'cached bf16':>11} | {'speed-up':>8}")
    for h in range(1, horizon + 1):
        acts = torch.randn(s, h, 7) * 0.05
        row = []
        for use_cache, bf16 in ((False, False), (True, False), (True, True)):
            amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

            def step(use_cache=use_cache, amp=amp, acts=acts):
                with torch.no_grad(), amp:
                    wm.rollout(z, st, acts, use_cache=use_cache)

            row.append(_best_ms(step, args.reps))
        print(f"{h:>2} | {row[0]:>11.0f} | {row[1]:>11.0f} | {row[2]:>11.0f} | {row[0] / row[2]:>7.1f}x")
    # RoPE alone, on the q/k of one layer for an H-step sequence.
    hd = cfg["predictor_embed_dim"] // cfg["num_heads"]
    g = pred.grid_height
    qk = torch.randn(2, s, cfg["num_heads"], horizon * (2 + n), hd)
    with torch.no_grad():
        base = _best_ms(lambda: _percall_rope(qk, horizon, 2, g, g), args.reps)

        def ours():
            cos, sin = predictor_rope_tables(horizon, 2, g, g, hd, dtype=qk.dtype, device=qk.device)
            apply_rope(qk, cos, sin)

        fast = _best_ms(ours, args.reps)
        err = (
            (
                _percall_rope(qk, horizon, 2, g, g)
                - apply_rope(
                    qk, *predictor_rope_tables(horizon, 2, g, g, hd, dtype=qk.dtype, device=qk.device)
                )
            )
            .abs()
            .max()
            .item()
        )
    print(
        f"RoPE q+k, one layer, {horizon} steps: per-call {base:.1f} ms, cached tables {fast:.1f} ms "
        f"({base / fast:.1f}x), max diff {err:.1e}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa2_ac.model_bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m vjepa2_ac.model_bench", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
