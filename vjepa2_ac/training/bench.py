"""``vjepa2-ac bench train``: training throughput of a preset and the fraction of matmul throughput reached.

In one run it measures (1) dense matmul throughput (GFLOP/s, bf16 and fp32, square ``--matmul-size``),
(2) the wall time of full training steps on synthetic clips of the preset's shape (AC step with frozen
encoder, predictor-only step on cached embeddings, pretraining step), and (3) counts the FLOPs of each
step analytically (matmuls and attention of every layer; backward = 2 x forward), cross-checked with
``torch.utils.flop_counter``. Reported: clips/s and achieved GFLOP/s as a fraction of the measured matmul
throughput of the same precision.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vjepa2_ac.training.config import PretrainConfig, TrainACConfig, load_config
from vjepa2_ac.training.mask_predictor import MaskTokenPredictor
from vjepa2_ac.training.objectives import (
    ACObjective,
    PretrainObjective,
    encode_clips,
    layer_norm,
    sample_masks,
)
from vjepa2_ac.training.runtime import autocast
from vjepa2_ac.training.schedules import build_optimizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny_sim", help="stage-2 preset (default %(default)s)")
    parser.add_argument(
        "--pretrain-config", default="tiny_pretrain", help="stage-1 preset (default %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, help="clips per step (default: the preset's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default %(default)s)")
    parser.add_argument(
        "--matmul-size", type=int, default=1024, help="square matmul size (default %(default)s)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--fp32", action="store_true", help="also time the AC step in float32")
    parser.add_argument("--plot", help="also write a bar chart PNG of clips/s here")


# ------------------------------------------------------------------------------------------------
# Analytic FLOPs (multiply-add = 2 FLOPs)
# ------------------------------------------------------------------------------------------------


def vit_block_flops(tokens: int, width: int, mlp_ratio: float, attention: bool = True) -> int:
    """One pre-norm transformer block on ``tokens`` tokens (``attention=False``: linear layers only)."""
    hidden = int(width * mlp_ratio)
    qkv = 2 * tokens * width * 3 * width
    attn = 2 * 2 * tokens * tokens * width if attention else 0  # QK^T and AV, dense as SDPA computes them
    proj = 2 * tokens * width * width
    mlp = 2 * 2 * tokens * width * hidden
    return qkv + attn + proj + mlp


def encoder_flops(enc, frames: int, img: int, attention: bool = True) -> int:
    """Forward FLOPs of the encoder on one clip of ``frames`` frames."""
    n = (frames // enc.tubelet_size) * (img // enc.patch_size) ** 2
    patch = 2 * n * (3 * enc.tubelet_size * enc.patch_size**2) * enc.embed_dim
    return patch + enc.depth * vit_block_flops(n, enc.embed_dim, enc.mlp_ratio, attention)


def predictor_flops(cfg: TrainACConfig, steps: int, attention: bool = True) -> int:
    """Forward FLOPs of one AC-predictor call on ``steps`` token steps."""
    enc, p = cfg.model.encoder, cfg.model.predictor
    hw = (enc.grid // cfg.model.token_pool) ** 2
    k = 3 if p.use_extrinsics else 2
    tokens = steps * (k + hw)
    dp = p.predictor_embed_dim
    embed = 2 * steps * hw * enc.embed_dim * dp + 2 * k * steps * 7 * dp
    head = 2 * steps * hw * dp * enc.embed_dim
    return embed + head + p.depth * vit_block_flops(tokens, dp, p.mlp_ratio, attention)


def ac_step_flops(cfg: TrainACConfig, cached: bool, attention: bool = True) -> int:
    """FLOPs of one AC training step per clip: frozen encoder forward + predictor forward/backward."""
    s, enc = cfg.steps_per_clip, cfg.model.encoder
    calls = [s - 1] + [k + 1 for k in range(1, cfg.loss.auto_steps)]  # teacher forcing, then rollout calls
    total = 3 * sum(predictor_flops(cfg, n, attention) for n in calls)  # backward = 2 x forward
    # Layers whose input needs no gradient skip the input-gradient matmul in backward: the patch
    # embedding of the teacher-forcing call (ground-truth z) and the action/state encoders of every call.
    p, hw = cfg.model.predictor, (enc.grid // cfg.model.token_pool) ** 2
    k = 3 if p.use_extrinsics else 2
    total -= 2 * calls[0] * hw * enc.embed_dim * p.predictor_embed_dim
    total -= sum(2 * k * n * 7 * p.predictor_embed_dim for n in calls)
    if not cached:
        if cfg.model.alignment == "duplicate":
            total += cfg.data.frames_per_clip * encoder_flops(enc, enc.tubelet_size, enc.img_size, attention)
        else:
            total += encoder_flops(enc, cfg.data.frames_per_clip, enc.img_size, attention)
    return total


def pretrain_step_flops(cfg: PretrainConfig, kept: list[tuple[int, int]], attention: bool = True) -> int:
    """FLOPs of one pretraining step per clip (``kept`` = (context, target) token counts per mask family)."""
    enc, mp = cfg.model.encoder, cfg.model.mask_predictor
    total = encoder_flops(enc, cfg.data.frames_per_clip, enc.img_size, attention)  # target encoder, forward
    for kc, kt in kept:
        # The context encoder embeds every patch of the clip, then drops the masked tokens.
        n = (cfg.data.frames_per_clip // enc.tubelet_size) * enc.grid**2
        patch = 2 * n * (3 * enc.tubelet_size * enc.patch_size**2) * enc.embed_dim
        ctx = enc.depth * vit_block_flops(kc, enc.embed_dim, enc.mlp_ratio, attention)
        pred = 2 * kc * enc.embed_dim * mp.embed_dim + 2 * kt * mp.embed_dim * enc.embed_dim
        pred += mp.depth * vit_block_flops(kc + kt, mp.embed_dim, mp.mlp_ratio, attention)
        total += 3 * (ctx + pred) + 2 * patch  # the video needs no gradient: no input-grad for the patches
    return total


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def matmul_gflops(n: int, dtype: torch.dtype, reps: int = 10) -> float:
    """Best-of-``reps`` dense ``n x n x n`` matmul throughput in GFLOP/s."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _time(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def bench_ac(
    cfg: TrainACConfig, batch: int, bf16: bool, cached: bool, warmup: int, steps: int
) -> dict[str, Any]:
    """Time full AC training steps on synthetic data of the preset's shapes."""
    from vjepa2_ac import build_encoder, build_predictor
    from vjepa2_ac.training.train_ac import predictor_kwargs

    torch.manual_seed(0)
    dev = torch.device("cpu")
    enc_cfg = cfg.model.encoder
    encoder = build_encoder(**enc_cfg.kwargs()).eval().requires_grad_(False)
    predictor = build_predictor(**predictor_kwargs(cfg))
    predictor.extrinsics_encoder.requires_grad_(False)
    obj = ACObjective(
        predictor, cfg.loss.auto_steps, cfg.loss.loss_exp, cfg.loss.rollout_weight, cfg.model.residual
    )
    opt, sched = build_optimizer(predictor, cfg.optim)
    f, s = cfg.data.frames_per_clip, cfg.steps_per_clip
    video = torch.randn(batch, 3, f, enc_cfg.img_size, enc_cfg.img_size)
    states, actions = torch.randn(batch, s, 7) * 0.1, torch.randn(batch, s, 7) * 0.01
    with autocast(dev, bf16):
        z_cached = encode_clips(
            encoder,
            video,
            tubelet=enc_cfg.tubelet_size,
            alignment=cfg.model.alignment,
            pool=cfg.model.token_pool,
        ).float()

    def step():
        if cached:
            z = z_cached
        else:
            with autocast(dev, bf16):
                z = encode_clips(
                    encoder,
                    video,
                    tubelet=enc_cfg.tubelet_size,
                    alignment=cfg.model.alignment,
                    pool=cfg.model.token_pool,
                ).float()
        with autocast(dev, bf16):
            loss = obj(z, actions, states)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    sec = _time(step, warmup, steps)
    flops = {"flops": ac_step_flops(cfg, cached), "no_attn": ac_step_flops(cfg, cached, attention=False)}
    return {"sec": sec, **{k: v * batch for k, v in flops.items()}, "counted": _counted(step)}


def bench_pretrain(cfg: PretrainConfig, batch: int, bf16: bool, warmup: int, steps: int) -> dict[str, Any]:
    """Time pretraining steps (target encoder, masked context encoder, mask-token predictor, EMA-free)."""
    from vjepa2_ac import build_encoder

    torch.manual_seed(0)
    dev = torch.device("cpu")
    enc = cfg.model.encoder
    encoder, target = build_encoder(**enc.kwargs()), build_encoder(**enc.kwargs()).requires_grad_(False)
    mp = cfg.model.mask_predictor
    pred = MaskTokenPredictor(
        enc.embed_dim, mp.embed_dim, mp.depth, mp.num_heads, mp.mlp_ratio, len(cfg.masks)
    )
    obj = PretrainObjective(encoder, pred)
    opt, sched = build_optimizer(obj, cfg.optim)
    video = torch.randn(batch, 3, cfg.data.frames_per_clip, enc.img_size, enc.img_size)
    grid = (cfg.data.frames_per_clip // enc.tubelet_size, enc.grid, enc.grid)
    masks = sample_masks(batch, grid, cfg.masks, 0, 0, dev)
    kept = [(c.shape[1], t.shape[1]) for c, t in masks]

    def step():
        with torch.no_grad(), autocast(dev, bf16):
            h = layer_norm(target(video).float())
        with autocast(dev, bf16):
            loss = obj(video, h, masks, grid)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    sec = _time(step, warmup, steps)
    flops = {
        "flops": pretrain_step_flops(cfg, kept),
        "no_attn": pretrain_step_flops(cfg, kept, attention=False),
    }
    return {"sec": sec, **{k: v * batch for k, v in flops.items()}, "counted": _counted(step)}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(TrainACConfig, args.config)
    pcfg = load_config(PretrainConfig, args.pretrain_config)
    b = args.batch_size or cfg.data.batch_size
    pb = args.batch_size or pcfg.data.batch_size
    peak = {
        "bf16": matmul_gflops(args.matmul_size, torch.bfloat16),
        "fp32": matmul_gflops(args.matmul_size, torch.float32),
    }
    rows = [
        (
            "AC step: frozen encoder + predictor",
            "bf16",
            b,
            bench_ac(cfg, b, True, False, args.warmup, args.steps),
        ),
        (
            "AC step: cached embeddings (predictor only)",
            "bf16",
            b,
            bench_ac(cfg, b, True, True, args.warmup, args.steps),
        ),
    ]
    if args.fp32:
        rows.append(
            (
                "AC step: frozen encoder + predictor",
                "fp32",
                b,
                bench_ac(cfg, b, False, False, args.warmup, args.steps),
            )
        )
    rows.append(
        (
            "pretrain step (2 mask families)",
            "bf16",
            pb,
            bench_pretrain(pcfg, pb, True, args.warmup, args.steps),
        )
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"presets {args.config} / {args.pretrain_config}"
    )
    n = args.matmul_size
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"matmul {n}^3: bf16 {peak['bf16']:.0f} GFLOP/s, fp32 {peak['fp32']:.0f} GFLOP/s")
    print()
    hdr = "| variant | dtype | batch | ms/step | clips/s | GFLOP/step | GFLOP/s | of matmul peak |"
    print(hdr)
    print("|" + "---|" * 8)
    for name, dt, batch, r in rows:
        gfs = r["flops"] / r["sec"] / 1e9
        print(
            f"| {name} | {dt} | {batch} | {r['sec'] * 1e3:.0f} | {batch / r['sec']:.1f} | "
            f"{r['flops'] / 1e9:.2f} | {gfs:.1f} | {gfs / peak[dt]:.1%} |"
        )
    if args.plot:
        from vjepa2_ac.training.plots import plot_throughput

        data = [
            {
                "name": name,
                "dtype": dt,
                "clips_per_s": batch / r["sec"],
                "fraction": r["flops"] / r["sec"] / 1e9 / peak[dt],
            }
            for name, dt, batch, r in rows
        ]
        title = (
            f"training throughput: {args.config} / {args.pretrain_config}, "
            f"{torch.get_num_threads()} thread(s), "
            f"load avg {os.getloadavg()[0]:.1f}\nmeasured matmul {args.matmul_size}^3: "
            f"bf16 {peak['bf16']:.0f}, fp32 {peak['fp32']:.0f} GFLOP/s"
        )
        plot_throughput(data, args.plot, title)
    print()
    print("FLOP count check (GFLOP/step without attention; torch.utils.flop_counter skips CPU SDPA):")
    for name, dt, _, r in rows:
        print(f"  {name} [{dt}]: analytic {r['no_attn'] / 1e9:.3f}, flop_counter {r['counted'] / 1e9:.3f}")
    return 0
