"""``vjepa2-ac demo``: the whole pipeline on the embedded default, no downloads.

1. collects reach and push episodes in the MuJoCo tasks (noisy goal-directed + random actions),
2. trains the world model with the recipe of :mod:`vjepa2_ac.experiments.recipe` (encoder with
   position probe and energy-distance loss, frozen; residual AC predictor on precomputed embeddings),
3. plans from pixels on reach and push with the learned model (CEM + MPC on the L1 energy to the goal
   image embedding) and with the two baselines: random actions and the simulator oracle (the same CEM
   and image energy, but every candidate is simulated and rendered by the true simulator),
4. writes ``OUT/report.md`` (success table with 95 % Wilson intervals, planning time per step,
   training time) and PNGs: success bars, training curves, filmstrips, energy traces, trajectories
   and an energy landscape per task.

``--quick`` shrinks every stage for a smoke test (about a minute). Everything is cached in ``OUT``:
re-running resumes after the last finished stage / episode.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vjepa2_ac.experiments.episodes import CollectConfig
from vjepa2_ac.experiments.recipe import RecipeConfig, TrainConfig, train_recipe
from vjepa2_ac.experiments.results import atomic_write_text, load_episode_records, markdown_table
from vjepa2_ac.experiments.sim_model import SimModelConfig


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--no-progress", action="store_true")


def quick_recipe(seed: int = 0) -> RecipeConfig:
    """Tiny recipe for smoke tests: a few episodes and training steps, a 32-pixel model."""
    return RecipeConfig(
        model=SimModelConfig(
            image_size=32, patch_size=16, embed_dim=32, depth=1, pred_embed_dim=32, pred_depth=1
        ),
        collect=CollectConfig(episodes=4, steps=6, contact_episodes=2),
        train=TrainConfig(
            encoder_steps=4, encoder_batch=8, predictor_steps=4, predictor_batch=4, context=2, rollout=2
        ),
        seed=seed,
    )


def full_recipe(seed: int = 0) -> RecipeConfig:
    """The recipe the README's numbers come from (see docs/experiments.md)."""
    return RecipeConfig(seed=seed)


def plan_namespace(**kw) -> argparse.Namespace:
    """A `vjepa2-ac plan` argument namespace with its defaults, overridden by ``kw``."""
    from vjepa2_ac.experiments import plan

    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    required = ["--task", kw.pop("task"), "--out", str(kw.pop("out"))]
    args = parser.parse_args(required)
    for k, v in kw.items():
        if not hasattr(args, k):
            raise AttributeError(f"plan has no option {k!r}")
        setattr(args, k, v)
    return args


def _methods(quick: bool) -> list[dict]:
    # Horizon, action bound, MPC steps and CEM's elites are `plan`'s task defaults (push plans 4 steps
    # ahead and keeps 30 elites).
    wm = {"samples": 100, "iterations": 3} if not quick else {"samples": 8, "iterations": 1, "topk": 2}
    # The oracle simulates and renders every candidate (~5 ms each); fewer samples keep it affordable.
    oracle = (
        {"samples": 32, "iterations": 2, "topk": 6}
        if not quick
        else {"samples": 4, "iterations": 1, "topk": 2}
    )
    return [
        {"name": "world_model_cem", **wm},
        {"name": "random", "baseline": "random"},
        # Half the episodes for the oracle: it renders ~64 candidates per MPC step.
        {"name": "oracle_cem", "baseline": "oracle", "episode_fraction": 0.5, **oracle},
    ]


def run_demo(args: argparse.Namespace) -> Path:
    """Run the demo; returns the path of the report."""
    from vjepa2_ac.experiments import plan
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
    progress = not args.no_progress
    timings: dict[str, float] = {}
    t0 = time.time()
    if args.checkpoint:
        from vjepa2_ac.experiments.pretrained import resolve_checkpoint

        try:
            ckpt = Path(resolve_checkpoint(args.checkpoint))
        except FileNotFoundError as e:
            raise SystemExit(f"vjepa2-ac demo: --checkpoint: {e}") from None
        if not ckpt.is_file():
            raise SystemExit(f"vjepa2-ac demo: --checkpoint: file not found: {ckpt}")
    else:
        cfg = quick_recipe(args.seed) if args.quick else full_recipe(args.seed)
        cfg.train.threads = args.threads
        ckpt = train_recipe(cfg, out / "train", progress=progress)
    timings["training_s"] = time.time() - t0
    max_steps = {"reach": 3, "push": 3} if args.quick else {"reach": 30, "push": 40}
    run_dirs = []
    for task in tasks:
        for m in _methods(args.quick):
            m = dict(m)
            name = m.pop("name")
            n_eps = max(1, round(episodes * m.pop("episode_fraction", 1.0)))
            run_dir = out / "runs" / f"{task}_{name}"
            t = time.time()
            ns = plan_namespace(
                task=task,
                out=run_dir,
                checkpoint=str(ckpt),
                episodes=n_eps,
                seed=args.seed,
                max_steps=max_steps[task],
                threads=args.threads,
                no_progress=not progress,
                save_frames=2,
                landscapes=1 if name == "world_model_cem" else 0,
                **m,
            )
            plan.plan_episodes(ns)
            timings[f"plan_{task}_{name}_s"] = time.time() - t
            run_dirs.append(run_dir)
    figs = out / "figures"
    plot_success(run_dirs, figs / "success.png")
    train_dir = ckpt.parent
    curves = [p for p in (train_dir / "encoder.csv", train_dir / "predictor.csv") if p.exists()]
    if curves:
        plot_curves(curves, figs / "training_curves.png")
    for d in run_dirs:
        plot_run(d, figs / d.name, max_filmstrips=1, success=False)
    timings["total_s"] = time.time() - t0
    report = _report(out, run_dirs, timings, args, ckpt)
    return report


def _report(out: Path, run_dirs: list[Path], timings: dict, args, ckpt: Path) -> Path:
    from vjepa2_ac.experiments.results import aggregate, atomic_write_json

    records = []
    for d in run_dirs:
        records += load_episode_records(d)
    rows = aggregate(records)
    lines = [
        "# vjepa2-ac demo report",
        "",
        f"Mode: {'quick (smoke test: tiny model, numbers meaningless)' if args.quick else 'full'}; "
        f"checkpoint `{ckpt}`; {len(records)} episodes in total; seed {args.seed}.",
        "",
        "## Planning success (95 % Wilson interval)",
        "",
        markdown_table(rows),
        "Planning time per step is the wall time of one MPC step divided by the episodes planned together.",
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
    atomic_write_json(out / "report.json", {"rows": rows, "timings": timings, "checkpoint": str(ckpt)})
    return report


def run(args: argparse.Namespace) -> int:
    report = run_demo(args)
    print(report.read_text())
    print(json.dumps({"report": str(report)}))
    return 0
