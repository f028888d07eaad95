"""``vjepa2-ac bench NAME``: benchmark scripts that print a table (ours vs a baseline in the same run).

Each benchmark lives next to the code it measures and provides ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    "planning": ("vjepa2_ac.planners.bench", "CEM iteration time: cached rollout vs the official-style naive one"),
    "video": ("vjepa2_ac.datasets.bench", "raw-DROID clip decoding throughput (clips/s)"),
    "envs": ("vjepa2_ac.envs.bench", "MuJoCo physics steps/s and rendered frames/s"),
    "train": ("vjepa2_ac.training.bench", "training throughput (clips/s) and matmul-throughput fraction"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module_name, help_) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module_name)
        # Arguments are added lazily below, only for the benchmark that runs.
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int | None:
    module = importlib.import_module(args._module)
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac bench {args.benchmark}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(args.rest))
