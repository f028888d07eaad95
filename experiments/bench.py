"""``vjepa2-ac bench NAME``: benchmark scripts that print a table (ours vs a baseline in the same run).

Each benchmark lives next to the code it measures and provides ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    "planning": (
        "vjepa2_ac.planners.bench",
        "CEM iteration time: cached rollout vs the official-style naive one",
    ),
    "video": ("vjepa2_ac.datasets.bench", "raw-DROID clip decoding throughput (clips/s)"),
    "envs": ("vjepa2_ac.envs.bench", "MuJoCo physics steps/s and rendered frames/s"),
    "model": ("vjepa2_ac.model_bench", "world-model rollout: KV-cached/bf16 vs naive official, RoPE tables"),
    "train": ("vjepa2_ac.training.bench", "training throughput (clips/s) and matmul-throughput fraction"),
    "plan": (
        "vjepa2_ac.experiments.bench_plan",
        "the plan command: ms per MPC step, cached vs recompute rollout",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(f"{n} ({h})" for n, (_, h) in BENCHMARKS.items())
    parser.add_argument("benchmark", choices=list(BENCHMARKS), metavar="BENCHMARK", help=f"one of: {names}")
    # The benchmark's own options are parsed by its module, imported only for the benchmark that runs.
    parser.add_argument(
        "rest", nargs=argparse.REMAINDER, help="options of the benchmark (see BENCHMARK --help)"
    )


def run(args: argparse.Namespace) -> int | None:
    module = importlib.import_module(BENCHMARKS[args.benchmark][0])
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac bench {args.benchmark}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(args.rest))
