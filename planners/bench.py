"""``vjepa2-ac bench planning``: ms per CEM iteration, our rollout vs the official-style naive one.

In one process and on the same random predictor weights it times

* **ours**: :class:`~vjepa2_ac.planners.cem.CEM` (paper preset) on a
  :class:`~vjepa2_ac.planners.energy.WorldModelEnergy`: key/value-cached rollout (one pass per new step)
  in one preallocated key/value buffer, bf16 autocast where the device runs bf16 natively (``--dtype
  auto``; float32 elsewhere), cached RoPE tables, batched torch pose updates, all samples in one batch, the
  context broadcast from batch 1;
* **naive**: :class:`~vjepa2_ac.planners.reference.NaiveWorldModel.cem`: float32, the whole growing
  sequence re-run at every rollout step, RoPE tables recomputed in every attention call, per-slot
  condition-token projections, context repeated per sample, per-sample Python pose loop (how the
  official planning code spends its time);
* ``ours_fp32`` (ablation): our cached rollout without bf16 (the same run as ours when ours is fp32);
* ``ours_kvcat`` (``--kvcat-ablation``): ours with a growing, concatenated key/value cache instead of the
  preallocated buffer.

``--paper`` adds one row per config for the paper's planning preset (800 samples, 10 iterations, top 10,
horizon 1): seconds per planned action of our planner.

It also measures the machine's fp32 and bf16 matmul throughput and reports which fraction of the peak
of its own dtype each path reaches, counting the FLOPs of one CEM iteration analytically (matmuls and
attention of the predictor passes each path actually performs), and the energy error of bf16 and of the
naive path against our float32 cached rollout on the same candidate actions.

Encoding the context and goal images is outside the CEM iteration (done once per MPC step), so the
benchmark feeds random layer-normed embeddings and builds only a one-block placeholder encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from vjepa2_ac.planners.bench_measure import (
    DTYPES,
    PAPER,
    SHAPES,
    BenchShape,
    build_world_model,
    cem_iteration_flops,
    energy_errors,
    matmul_gflops,
    random_problem,
    time_naive,
    time_ours,
    time_paper,
)
from vjepa2_ac.planners.energy import bf16_supported
from vjepa2_ac.planners.reference import NaiveWorldModel

__all__ = ["SHAPES", "BenchShape", "add_arguments", "build_world_model", "cem_iteration_flops", "main", "run"]


def _parse_ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"bench planning: {name} must be a comma-separated list of integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise SystemExit(f"bench planning: {name} must hold integers >= 1, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of ``vjepa2-ac bench planning``."""
    parser.add_argument("--json", type=Path, default=None, help="write one JSON record per run to this file")
    parser.add_argument(
        "--configs",
        default=None,
        help="comma list of: small, vitg (default: small, plus vitg when CUDA is used)",
    )
    parser.add_argument("--samples", default="100,800", help="CEM samples per iteration (comma list)")
    parser.add_argument("--horizons", default="1,2,3", help="planning horizons (comma list)")
    parser.add_argument(
        "--iterations", type=int, default=3, help="CEM iterations timed for ours (mean per iteration)"
    )
    parser.add_argument(
        "--naive-iterations", type=int, default=1, help="CEM iterations timed for the naive path"
    )
    parser.add_argument(
        "--naive-max-samples",
        type=int,
        default=None,
        help="run the naive path with at most this many samples, extrapolate linearly (labelled in output)",
    )
    parser.add_argument(
        "--no-fp32-ablation", action="store_true", help="skip timing our rollout without bf16"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="dtype of ours: bf16 autocast, fp32, or auto (bf16 where the device runs it natively)",
    )
    parser.add_argument(
        "--kvcat-ablation",
        action="store_true",
        help="also time ours with a concatenated key/value cache instead of the preallocated buffer",
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="add the paper preset (800 samples, 10 iterations, top 10, horizon 1): s per planned action",
    )
    parser.add_argument(
        "--paper-iterations",
        type=int,
        default=10,
        help="CEM iterations timed for the paper preset (fewer than 10: scaled to 10, labelled)",
    )
    parser.add_argument(
        "--skip-iteration-rows",
        action="store_true",
        help="only the paper-preset rows (with --paper)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--matmul-size", type=int, default=2048, help="n of the n x n matmul throughput probe"
    )
    parser.add_argument(
        "--error-samples",
        type=int,
        default=32,
        help="candidates used to measure the bf16 / naive energy error",
    )


def _check_args(args: argparse.Namespace, device: torch.device) -> tuple[list[str], list[int], list[int]]:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench planning: --device cuda requested but CUDA is not available")
    if args.iterations < 1 or args.naive_iterations < 1:
        raise SystemExit("bench planning: --iterations and --naive-iterations must be >= 1")
    if not 1 <= args.paper_iterations <= PAPER["iterations"]:
        raise SystemExit(f"bench planning: --paper-iterations must be in [1, {PAPER['iterations']}]")
    if args.skip_iteration_rows and not args.paper:
        raise SystemExit("bench planning: --skip-iteration-rows needs --paper (nothing to measure)")
    if args.naive_max_samples is not None and args.naive_max_samples < 2:
        raise SystemExit("bench planning: --naive-max-samples must be >= 2")
    configs = (args.configs or ("small,vitg" if device.type == "cuda" else "small")).split(",")
    for c in configs:
        if c not in SHAPES:
            raise SystemExit(f"bench planning: unknown config {c!r}; valid: {', '.join(SHAPES)}")
    samples_list = _parse_ints(args.samples, "--samples")
    if min(samples_list) < 2:
        raise SystemExit("bench planning: --samples must be >= 2 (CEM keeps at least 2 elites)")
    horizons = _parse_ints(args.horizons, "--horizons")
    if args.matmul_size < 16 or args.error_samples < 2:
        raise SystemExit("bench planning: --matmul-size must be >= 16 and --error-samples >= 2")
    return configs, samples_list, horizons


def _peaks(args: argparse.Namespace, device: torch.device, bf16_native: bool) -> tuple[float, float]:
    fp32_peak = matmul_gflops(torch.float32, device, args.matmul_size)
    # Emulated bf16 runs at a few GFLOP/s: probe it small so the probe does not take minutes.
    n16 = args.matmul_size if bf16_native else min(args.matmul_size, 512)
    bf16_peak = matmul_gflops(torch.bfloat16, device, n16, reps=5 if bf16_native else 1)
    return fp32_peak, bf16_peak


def _iteration_record(args, device, shape, model, samples, horizon, bf16, peaks) -> dict:
    """One table row: ours (+ ablations) vs naive at ``samples`` x ``horizon``."""
    wm, naive, problem = model
    fp32_peak, bf16_peak = peaks
    ours_ms = time_ours(wm, problem, samples, horizon, args.iterations, bf16, device)
    fp32_ms = None
    if not bf16:
        fp32_ms = ours_ms  # ours already is the float32 path
    elif not args.no_fp32_ablation:
        fp32_ms = time_ours(wm, problem, samples, horizon, 1, False, device)
    kvcat_ms = None
    if args.kvcat_ablation:
        kvcat_ms = time_ours(wm, problem, samples, horizon, args.iterations, bf16, device, static_kv=False)
    naive_samples = min(samples, args.naive_max_samples or samples)
    naive_ms = time_naive(naive, problem, naive_samples, horizon, args.naive_iterations, device)
    extrapolated = naive_samples != samples
    if extrapolated:
        naive_ms *= samples / naive_samples
    errs = energy_errors(wm, naive, problem, horizon, args.error_samples)
    f_ours = cem_iteration_flops(shape, samples, horizon, cached=True)
    f_naive = cem_iteration_flops(shape, samples, horizon, cached=False)
    ours_peak = bf16_peak if bf16 else fp32_peak
    return {
        "preset": "iteration",
        "config": shape.name,
        "samples": samples,
        "horizon": horizon,
        "ours_ms": ours_ms,
        "naive_ms": naive_ms,
        "speedup": naive_ms / ours_ms,
        "ours_dtype": "bf16" if bf16 else "fp32",
        "ours_fp32_ms": fp32_ms,
        "ours_kvcat_ms": kvcat_ms,
        "naive_extrapolated_from_samples": naive_samples if extrapolated else None,
        "ours_gflop": f_ours / 1e9,
        "naive_gflop": f_naive / 1e9,
        "ours_gflops": f_ours / ours_ms / 1e6,
        "naive_gflops": f_naive / naive_ms / 1e6,
        "ours_frac_peak": f_ours / ours_ms / 1e6 / ours_peak,
        "ours_frac_bf16_peak": f_ours / ours_ms / 1e6 / bf16_peak,
        "ours_fp32_frac_fp32_peak": f_ours / fp32_ms / 1e6 / fp32_peak if fp32_ms else None,
        "naive_frac_fp32_peak": f_naive / naive_ms / 1e6 / fp32_peak,
        "matmul_fp32_gflops": fp32_peak,
        "matmul_bf16_gflops": bf16_peak,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "iterations_timed": args.iterations,
        "naive_iterations_timed": args.naive_iterations,
        **errs,
    }


def _print_tables(records: list[dict]) -> None:
    rows = [r for r in records if r["preset"] == "iteration"]
    if rows:
        print(
            f"{'config':<7}{'S':>5}{'H':>3}{'dtype':>6}{'ours ms':>10}{'fp32 ms':>10}{'kvcat ms':>10}"
            f"{'naive ms':>11}{'speed-up':>10}{'ours GF/s':>11}{'%peak':>7}{'naive GF/s':>12}{'%fp32pk':>9}"
            f"{'bf16 err':>10}"
        )
    for r in rows:
        naive = f"{r['naive_ms']:.0f}" + ("*" if r["naive_extrapolated_from_samples"] else "")
        fp32 = f"{r['ours_fp32_ms']:.0f}" if r["ours_fp32_ms"] is not None else "-"
        kvcat = f"{r['ours_kvcat_ms']:.0f}" if r["ours_kvcat_ms"] is not None else "-"
        print(
            f"{r['config']:<7}{r['samples']:>5}{r['horizon']:>3}{r['ours_dtype']:>6}{r['ours_ms']:>10.0f}"
            f"{fp32:>10}{kvcat:>10}{naive:>11}{r['speedup']:>9.1f}x{r['ours_gflops']:>11.0f}"
            f"{100 * r['ours_frac_peak']:>6.1f}%{r['naive_gflops']:>12.0f}"
            f"{100 * r['naive_frac_fp32_peak']:>8.1f}%{r['bf16_energy_rel_err']:>10.1e}"
        )
    if any(r["naive_extrapolated_from_samples"] for r in rows):
        print("* naive time extrapolated linearly from --naive-max-samples samples")
    if rows:
        print(
            "ours = cached rollout in a preallocated key/value buffer, in its dtype (fp32 = same in float32; "
            "kvcat = ours with a concatenated cache); naive = official-style full recompute, fp32; "
            "GF/s = analytic FLOPs / time; %peak = of the matmul peak of ours' dtype; bf16 err = max "
            "relative energy error of bf16 vs fp32"
        )
    for r in records:
        if r["preset"] == "paper":
            scaled = f" (timed {r['iterations_timed']} iterations, scaled to 10)" if r["extrapolated"] else ""
            print(
                f"paper preset ({r['samples']} samples, {r['iterations']} iterations, top {r['topk']}, "
                f"horizon {r['horizon']}), {r['config']}, {r['ours_dtype']}: {r['s_per_action']:.2f} s per "
                f"planned action{scaled}"
            )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    device = torch.device(args.device)
    configs, samples_list, horizons = _check_args(args, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16_native = bf16_supported(device)
    bf16 = {"auto": bf16_native, "bf16": True, "fp32": False}[args.dtype]
    peaks = _peaks(args, device, bf16_native)
    cpu = platform.processor() or platform.machine()
    print(
        f"# planning benchmark: device={device.type} threads={torch.get_num_threads()} "
        f"cpu_count={os.cpu_count()} ({cpu}); matmul {args.matmul_size}^2: fp32 {peaks[0]:.0f} GFLOP/s, "
        f"bf16 {peaks[1]:.0f} GFLOP/s ({'native' if bf16_native else 'emulated'}); ours in "
        f"{'bf16' if bf16 else 'fp32'}"
    )
    records = []
    runs = (
        []
        if args.skip_iteration_rows
        else [(c, s, h) for c in configs for s in samples_list for h in horizons]
    )
    runs += [(c, None, None) for c in configs] if args.paper else []
    bar = tqdm(runs, desc="bench planning", leave=False)
    models: dict[str, tuple] = {}
    for config, samples, horizon in bar:
        shape = SHAPES[config]
        if config not in models:
            wm = build_world_model(shape, device, args.seed)
            models = {
                config: (wm, NaiveWorldModel(wm.predictor), random_problem(wm, shape, device, args.seed))
            }
        if samples is None:
            bar.set_postfix_str(f"{config} paper preset")
            s_action = time_paper(models[config][0], models[config][2], args.paper_iterations, bf16, device)
            records.append(
                {
                    "preset": "paper",
                    "config": config,
                    **PAPER,
                    "ours_dtype": "bf16" if bf16 else "fp32",
                    "s_per_action": s_action,
                    "iterations_timed": args.paper_iterations,
                    "extrapolated": args.paper_iterations != PAPER["iterations"],
                    "matmul_fp32_gflops": peaks[0],
                    "matmul_bf16_gflops": peaks[1],
                    "device": device.type,
                    "threads": torch.get_num_threads(),
                }
            )
            continue
        bar.set_postfix_str(f"{config} S={samples} H={horizon}")
        records.append(_iteration_record(args, device, shape, models[config], samples, horizon, bf16, peaks))
    bar.close()
    _print_tables(records)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, args.json)
        print(f"wrote {len(records)} records to {args.json}")
    speedups = [
        r["speedup"]
        for r in records
        if r["preset"] == "iteration" and r["samples"] == max(samples_list) and r["horizon"] == 3
    ]
    if speedups:
        print(f"speed-up at H=3, S={max(samples_list)}: {statistics.mean(speedups):.1f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa2_ac.planners.bench``: same options as ``vjepa2-ac bench planning``."""
    parser = argparse.ArgumentParser(prog="vjepa2-ac bench planning", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
