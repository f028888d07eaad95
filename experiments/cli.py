"""The ``vjepa2-ac`` command.

Each subcommand lives in its own module, imported only when that subcommand runs (importing torch,
MuJoCo and tensorflow-datasets for ``--help`` would cost seconds). A command module provides
``add_arguments(parser)`` and ``run(args) -> int | None``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vjepa2_ac.experiments.demo", "collect, train and plan on the embedded default, write a report"),
    "collect": ("vjepa2_ac.envs.collect", "collect simulated episodes in the raw DROID layout"),
    "data": ("vjepa2_ac.datasets.cli", "dataset tools (data check DIR)"),
    "pretrain": ("vjepa2_ac.training.pretrain", "V-JEPA masked-latent encoder pretraining (stage 1)"),
    "train": ("vjepa2_ac.training.train_ac", "AC-predictor training on a frozen encoder (stage 2)"),
    "probe": (
        "vjepa2_ac.training.probe",
        "train a probe on frozen embeddings (end-effector / block positions)",
    ),
    "plan": ("vjepa2_ac.experiments.plan", "planning experiments over seeded episodes"),
    "diagnose": (
        "vjepa2_ac.experiments.diagnose",
        "does a world model's predictor move the push block as the simulator does (no planning)",
    ),
    "plot": (
        "vjepa2_ac.experiments.plot",
        "rollout filmstrips, energy traces/landscapes, success bars, curves",
    ),
    "bench": ("vjepa2_ac.experiments.bench", "benchmarks (planning, model, video, envs, train)"),
}


def _top_level_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: vjepa2-ac COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'vjepa2-ac COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vjepa2-ac: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    code = module.run(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
