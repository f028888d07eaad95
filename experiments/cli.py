"""The ``vjepa2-ac`` command.

Each subcommand lives in its own module, imported only when that subcommand runs (importing torch,
MuJoCo and tensorflow-datasets for ``--help`` would cost seconds). A command module provides
``add_arguments(parser)`` and ``run(args) -> int | None``.

Expected failures (bad data, config, checkpoint, paths, a taken run directory, ...) are reported here,
once for every command, as one line ``vjepa2-ac CMD: message`` with the exit code of :data:`EXIT_CODES`;
anything else is a bug and keeps its traceback.
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


# Exit codes of expected failures, by exception class (most specific first; a subclass not listed gets the
# code of its nearest listed base). Classes are named, not imported: importing them would pull in torch
# for every command. 1 stays "finished, but found problems" (``data check`` with bad episodes) and
# Python's own exit code of an unexpected exception.
EXIT_CODES: dict[str, tuple[int, str]] = {
    "vjepa2_ac.experiments.plan.PlanError": (2, "bad command-line argument"),
    "vjepa2_ac.experiments.droid_plan.DroidPlanError": (2, "bad command-line argument"),
    "vjepa2_ac.training.config.ConfigError": (3, "invalid configuration key or value"),
    "yaml.error.YAMLError": (3, "a YAML file or --set value does not parse"),
    "vjepa2_ac.datasets.errors.DataError": (4, "bad or unreadable data"),
    "vjepa2_ac.checkpoint.CheckpointError": (5, "bad, damaged or mismatched checkpoint"),
    "builtins.FileNotFoundError": (6, "a named file or folder does not exist"),
    "vjepa2_ac.errors.RunDirError": (7, "the output folder holds another run (--resume or --overwrite)"),
    "builtins.FileExistsError": (7, "an output exists and would be overwritten"),
    "vjepa2_ac.errors.RunLockedError": (8, "another process works in the output folder"),
    "vjepa2_ac.errors.DeviceError": (9, "the requested device is not available"),
    "vjepa2_ac.errors.NonFiniteError": (10, "training met a non-finite loss or gradient"),
    "vjepa2_ac.planners.base.NonFiniteEnergyError": (10, "planning met a non-finite energy"),
}


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of an expected failure, or ``None`` for an unexpected exception."""
    for cls in type(exc).__mro__:
        entry = EXIT_CODES.get(f"{cls.__module__}.{cls.__qualname__}")
        if entry is not None:
            return entry[0]
    return None


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line messages, e.g. key lists, joined with '; ')."""
    parts = [p.strip() for p in str(exc).splitlines() if p.strip()]
    return "; ".join(parts) or type(exc).__name__


def _command_label(name: str, args: argparse.Namespace) -> str:
    # Nested commands (``data check``, ``plot run``) name their sub-command in a ``*_command`` (or
    # ``what``) attribute.
    sub = [v for k, v in vars(args).items() if (k.endswith("_command") or k == "what") and isinstance(v, str)]
    return " ".join([name, *sub[:1]])


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
    try:
        code = module.run(args)
    except Exception as exc:
        exit_code = exit_code_for(exc)
        if exit_code is None:
            raise
        print(f"vjepa2-ac {_command_label(name, args)}: {one_line(exc)}", file=sys.stderr)
        return exit_code
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
