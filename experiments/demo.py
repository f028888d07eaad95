"""``vjepa2-ac demo``: the whole chain on simulated data, as the user's own commands, no downloads.

1. ``vjepa2-ac collect``: reach and push episodes in the raw DROID layout (push from the aligned start);
2. ``vjepa2-ac pretrain --config sim_encoder``: the encoder, label-free (frames + end-effector state);
3. ``vjepa2-ac train --config sim_world_model``: the AC predictor on the frozen encoder, Strategy A
   tubelets, data read through the DROID loader;
4. ``vjepa2-ac plan``: reach and push with the learned model (CEM + MPC on the L1 energy to the goal
   image's embedding) and two baselines: random actions and the simulator oracle (the same CEM, encoder
   and image energy, every candidate simulated and rendered by the true simulator);
5. ``OUT/report.md``: success table with 95 % Wilson intervals, timings, the equivalent commands, and
   PNGs (success bars, training curves, filmstrips, energy traces, trajectories, landscapes).

Every stage is the subcommand itself (its argument parser and ``run``), so ``report.md`` lists exactly
the commands that reproduce it. ``--quick`` shrinks every stage for a smoke test. Stages resume: data
collection continues, training resumes from its checkpoint, finished plans are kept.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import time
from pathlib import Path

from vjepa2_ac.experiments.results import atomic_write_text, load_episode_records, markdown_table

# Training episodes use their own seed streams, far from the evaluation seeds (plan: episode i = seed i).
COLLECT_SEED = 1000
TRAIN_EPISODES = 600
TRAIN_STEPS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (~1 min)")
    parser.add_argument("--out", default="vjepa2_ac_demo", help="output directory (default ./vjepa2_ac_demo)")
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="evaluation episodes per task and method (default 10; the oracle gets half)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="skip training: plan with this checkpoint (`pretrained`: the shipped one)",
    )
    parser.add_argument("--tasks", default="reach,push", help="comma-separated tasks (default reach,push)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (episode i: env seed SEED + i)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--no-progress", action="store_true")


MODULES = {
    "collect": "vjepa2_ac.envs.collect",
    "pretrain": "vjepa2_ac.training.pretrain",
    "train": "vjepa2_ac.training.train_ac",
    "plan": "vjepa2_ac.experiments.plan",
}


def run_command(argv: list[str]) -> int:
    """Run ``vjepa2-ac <argv>`` in this process through the subcommand's own parser and ``run``."""
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(MODULES[name])
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac {name}")
    module.add_arguments(parser)
    code = module.run(parser.parse_args(rest))
    if code:
        raise SystemExit(f"vjepa2-ac demo: `vjepa2-ac {shlex.join(argv)}` failed with exit code {code}")
    return 0


def training_commands(out: Path, quick: bool, threads: int) -> list[list[str]]:
    """The commands that collect the data and train the world model into ``out/world_model``."""
    episodes, steps = (8, 12) if quick else (TRAIN_EPISODES, TRAIN_STEPS)
    data = {task: out / "data" / task for task in ("reach", "push")}
    cmds = [
        ["collect", "--task", "reach", "--episodes", str(episodes), "--max-steps", str(steps)]
        + ["--seed", str(COLLECT_SEED), "--out", str(data["reach"])],
        ["collect", "--task", "push", "--push-start", "aligned", "--episodes", str(episodes)]
        + ["--max-steps", str(steps), "--seed", str(COLLECT_SEED), "--out", str(data["push"])],
    ]
    sources = ["--data", str(data["reach"]), "--data", str(data["push"])]
    small = ["--steps", "4", "--batch-size", "8", "--set", "optim.warmup_steps=1"] if quick else []
    cmds.append(
        ["pretrain", "--config", "sim_encoder", *sources, "--out", str(out / "encoder")]
        + ["--threads", str(threads), *small]
    )
    cmds.append(
        ["train", "--config", "sim_world_model", *sources]
        + ["--encoder-checkpoint", str(out / "encoder" / "encoder.pt"), "--out", str(out / "world_model")]
        + ["--threads", str(threads), *small]
        + (["--set", "data.cache_passes=1"] if quick else [])
    )
    return cmds


# The file a finished training stage leaves in its --out folder (the stage is then skipped).
FINAL_OUTPUT = {"pretrain": "encoder.pt", "train": "world_model.pt"}


def _out(cmd: list[str]) -> Path:
    return Path(cmd[cmd.index("--out") + 1])


def _stage_done(cmd: list[str]) -> bool:
    name = FINAL_OUTPUT.get(cmd[0])
    return name is not None and (_out(cmd) / name).exists()


def _resumable(cmd: list[str]) -> list[str]:
    """A training stage interrupted after its first checkpoint resumes (``--resume``); one interrupted
    before it starts over (``--overwrite``: its folder holds nothing worth keeping)."""
    if cmd[0] not in FINAL_OUTPUT or not _out(cmd).exists():
        return cmd
    return [*cmd, "--resume" if (_out(cmd) / "checkpoint.pt").exists() else "--overwrite"]


def plan_commands(
    out: Path, ckpt: str, tasks: list[str], episodes: int, quick: bool, args
) -> list[list[str]]:
    """One ``plan`` command per task and method (world model, random, oracle with half the episodes)."""
    wm = ["--samples", "8", "--iterations", "1", "--topk", "2"] if quick else []
    # The oracle simulates and renders every candidate; fewer samples keep it affordable.
    oracle = ["--samples", "4" if quick else "32", "--iterations", "1" if quick else "2"]
    oracle += ["--topk", "2" if quick else "6"]
    steps = ["--max-steps", "2"] if quick else []
    cmds = []
    for task in tasks:
        common = ["--task", task, "--seed", str(args.seed), "--threads", str(args.threads), *steps]
        common += ["--save-frames", "2"] + (["--no-progress"] if args.no_progress else [])
        n, n_oracle = str(episodes), str(max(1, episodes // 2))
        runs = out / "runs"
        cmds += [
            ["plan", "--checkpoint", ckpt, *common, "--episodes", n, *wm]
            + ["--landscapes", "1", "--out", str(runs / f"{task}_world_model_cem")],
            ["plan", "--baseline", "random", *common, "--episodes", n, "--landscapes", "0"]
            + ["--out", str(runs / f"{task}_random")],
            ["plan", "--checkpoint", ckpt, "--baseline", "oracle", *common, "--episodes", n_oracle, *oracle]
            + ["--landscapes", "0", "--out", str(runs / f"{task}_oracle_cem")],
        ]
    return cmds


def run_demo(args: argparse.Namespace) -> Path:
    """Run the demo; returns the path of the report."""
    from vjepa2_ac.experiments.plot import plot_curves, plot_run, plot_success

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in ("reach", "push"):
            raise SystemExit(f"vjepa2-ac demo: --tasks: unknown task {t!r}; valid: reach, push")
    # 10 episodes per task and method (5 for the oracle) keep the demo within 30 minutes on a 2-core CPU;
    # the README's success rates come from `vjepa2-ac plan` over 100 episodes.
    episodes = args.episodes or (2 if args.quick else 10)
    timings: dict[str, float] = {}
    executed: list[list[str]] = []
    if args.checkpoint:
        from vjepa2_ac.experiments.pretrained import resolve_checkpoint

        try:
            ckpt = Path(resolve_checkpoint(args.checkpoint))
        except FileNotFoundError as e:
            raise SystemExit(f"vjepa2-ac demo: --checkpoint: {e}") from None
        if not ckpt.is_file():
            raise SystemExit(f"vjepa2-ac demo: --checkpoint: file not found: {ckpt}")
        ckpt_arg = args.checkpoint if args.checkpoint == "pretrained" else str(ckpt)
    else:
        for cmd in training_commands(out, args.quick, args.threads):
            executed.append(cmd)
            if _stage_done(cmd):
                continue
            t = time.time()
            run_command(_resumable(cmd))
            key = f"{cmd[0]}_{cmd[cmd.index('--task') + 1]}_s" if cmd[0] == "collect" else f"{cmd[0]}_s"
            timings[key] = time.time() - t
        ckpt = out / "world_model" / "world_model.pt"
        ckpt_arg = str(ckpt)
    run_dirs = []
    for cmd in plan_commands(out, ckpt_arg, tasks, episodes, args.quick, args):
        executed.append(cmd)
        t = time.time()
        run_command(cmd)
        run_dir = _out(cmd)
        timings[f"plan_{run_dir.name}_s"] = time.time() - t
        run_dirs.append(run_dir)
    t = time.time()
    figs = out / "figures"
    plot_success(run_dirs, figs / "success.png")
    curves = [p for p in (out / "encoder" / "metrics.csv", out / "world_model" / "metrics.csv") if p.exists()]
    if curves:
        plot_curves(curves, figs / "training_curves.png")
    for d in run_dirs:
        plot_run(d, figs / d.name, max_filmstrips=1, success=False)
    timings["figures_s"] = time.time() - t
    return _report(out, run_dirs, timings, args, ckpt, executed)


def _report(out: Path, run_dirs: list[Path], timings: dict, args, ckpt: Path, commands) -> Path:
    from vjepa2_ac.experiments.plan import load_world_model
    from vjepa2_ac.experiments.results import aggregate, atomic_write_json

    records = []
    for d in run_dirs:
        records += load_episode_records(d)
    rows = aggregate(records)
    signals = load_world_model(str(ckpt)).training_signals
    lines = [
        "# vjepa2-ac demo report",
        "",
        f"Mode: {'quick (smoke test: tiny budgets, numbers meaningless)' if args.quick else 'full'}; "
        f"checkpoint `{ckpt}`, trained on: {', '.join(signals) or 'unknown'}; {len(records)} episodes; "
        f"evaluation seed {args.seed}.",
        "",
        "## Planning success (95 % Wilson interval)",
        "",
        markdown_table(rows),
        "Planning time per step is the wall time of one MPC step divided by the episodes planned together.",
        "",
        "## The same, as commands",
        "",
        "```bash",
        *[f"vjepa2-ac {shlex.join(c)}" for c in commands],
        "```",
        "",
        "## Figures",
        "",
        "![success](figures/success.png)",
        "",
    ]
    if (out / "figures" / "training_curves.png").exists():
        lines += ["![training curves](figures/training_curves.png)", ""]
    for d in run_dirs:
        for png in sorted((out / "figures" / d.name).glob("*.png")):
            lines.append(f"- [{d.name}/{png.name}](figures/{d.name}/{png.name})")
    lines += ["", "## Timings (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    atomic_write_json(
        out / "report.json",
        {"rows": rows, "timings": timings, "checkpoint": str(ckpt), "commands": commands},
    )
    return report


def run(args: argparse.Namespace) -> int:
    report = run_demo(args)
    print(report.read_text())
    print(json.dumps({"report": str(report)}))
    return 0
