"""``vjepa2-ac bench plan``: the user-facing ``plan`` command, cached rollout against the official scheme.

Runs ``vjepa2-ac plan`` twice per configuration on the same seeded episodes (one lockstep batch), once
with ``--rollout cached`` (one predictor pass per rollout step over a key/value buffer) and once with
``--rollout recompute`` (the whole growing sequence at every step, as the official planner does), and
prints the wall time of one MPC step per episode, the float32 matmul peak measured in the same run,
and whether both runs executed the same actions.

    vjepa2-ac bench plan --checkpoint pretrained --tasks push,reach --episodes 25 --max-steps 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

ROLLOUTS = ("recompute", "cached")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default="pretrained", help="world model checkpoint (default: shipped)"
    )
    parser.add_argument("--tasks", default="push,reach", help="comma-separated tasks (or Fetch env ids)")
    parser.add_argument("--horizons", default="", help="comma-separated horizons (default: each task's)")
    parser.add_argument("--episodes", type=int, default=25, help="episodes planned in lockstep")
    parser.add_argument("--max-steps", type=int, default=4, help="planned steps per episode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")


def _plan(args, task: str, horizon: int | None, rollout: str, out: Path) -> list[dict]:
    from vjepa2_ac.experiments import plan

    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    argv = ["--checkpoint", args.checkpoint, "--task", task, "--episodes", str(args.episodes)]
    argv += ["--batch-episodes", str(args.episodes), "--max-steps", str(args.max_steps)]
    argv += ["--rollout", rollout, "--threads", str(args.threads), "--out", str(out)]
    argv += ["--landscapes", "0", "--save-frames", "0", "--no-progress"]
    if horizon is not None:
        argv += ["--horizon", str(horizon)]
    result = plan.plan_episodes(parser.parse_args(argv))
    records = [json.loads(p.read_text()) for p in sorted((out / "episodes").glob("ep_*.json"))]
    return records, result["settings"]


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.planners.bench_measure import matmul_gflops

    if args.episodes < 1 or args.max_steps < 1:
        raise SystemExit("vjepa2-ac bench plan: --episodes and --max-steps must be >= 1")
    torch.set_num_threads(args.threads)
    peak = matmul_gflops(torch.float32, torch.device("cpu"))
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    horizons = [int(h) for h in args.horizons.split(",") if h.strip()] or [None]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            for horizon in horizons:
                times, actions = {}, {}
                for rollout in ROLLOUTS:
                    out = Path(tmp) / f"{task}_{horizon}_{rollout}"
                    records, settings = _plan(args, task, horizon, rollout, out)
                    # The first MPC step also encodes the goal images; time the steps after it.
                    times[rollout] = 1000 * float(
                        np.mean([t for r in records for t in r["planning_times_s"][1:]])
                    )
                    actions[rollout] = np.array([r["actions"] for r in records], dtype=np.float64)
                same = actions["cached"].shape == actions["recompute"].shape and np.allclose(
                    actions["cached"], actions["recompute"], atol=1e-6
                )
                rows.append(
                    {
                        "task": task,
                        "horizon": settings["horizon"],
                        "samples": settings["samples"],
                        "iterations": settings["iterations"],
                        "episodes": args.episodes,
                        "recompute_ms_per_step": round(times["recompute"], 2),
                        "cached_ms_per_step": round(times["cached"], 2),
                        "speedup": round(times["recompute"] / times["cached"], 2),
                        "same_actions": bool(same),
                        "fp32_matmul_gflops": round(peak, 1),
                    }
                )
    print(f"fp32 matmul peak in this run: {peak:.1f} GFLOP/s ({args.threads} thread(s))")
    header = ["task", "horizon", "CEM", "episodes", "recompute (ms/step)", "cached (ms/step)", "speed-up"]
    print("| " + " | ".join([*header, "same actions"]) + " |")
    print("|" + " --- |" * (len(header) + 1))
    for r in rows:
        print(
            f"| {r['task']} | {r['horizon']} | {r['samples']} x {r['iterations']} | {r['episodes']} | "
            f"{r['recompute_ms_per_step']:.1f} | {r['cached_ms_per_step']:.1f} | {r['speedup']:.2f}x | "
            f"{'yes' if r['same_actions'] else 'no'} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0
