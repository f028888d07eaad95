"""``vjepa2-ac plan``: planning experiments over N seeded episodes of a simulated task.

    vjepa2-ac plan --checkpoint CKPT --task reach --episodes 100 --out runs/reach_cem
    vjepa2-ac plan --checkpoint CKPT --task push --baseline oracle --episodes 100 --out runs/push_oracle
    vjepa2-ac plan --task reach --baseline random --episodes 100 --out runs/reach_random

``CKPT`` is any :class:`~vjepa2_ac.WorldModel` checkpoint: one written by ``vjepa2-ac train``, the one
``vjepa2-ac demo`` trains, ``pretrained`` (the shipped model), or one assembled from official weights.
Episode ``i`` is env seed ``--seed + i``; its planner draws from its own generator, so its outcome does
not depend on the other episodes. Each planned action is one token step of the model and is executed as
the control steps of that step (:mod:`vjepa2_ac.planners.execution`); ``--max-steps`` counts planned
steps. Each finished episode is written atomically to ``OUT/episodes/ep_<i>.json``; re-running the same
command continues an interrupted run. ``OUT/summary.{md,csv,json}`` hold the aggregate table with 95 %
Wilson intervals. The first ``--save-frames`` episodes also store their frames (``vjepa2-ac plot``), the
first ``--landscapes`` an energy landscape around the first chosen action.

Methods: the world model (any ``--planner``), ``--baseline oracle`` (CEM whose candidates are simulated by
the true simulator, rendered and scored with the same encoder and image energy: the world model's upper
bound; ``--oracle-energy distance`` scores the true task distance), ``--baseline random``. The loop itself
is :func:`vjepa2_ac.planners.lockstep.run_lockstep`; this module is the command line and the run folder.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vjepa2_ac.envs.starts import (
    ALL_TASKS,
    PUSH_STARTS,
    add_task_arguments,
    make_env,
    require_available,
    reset_episode,
    task_kind,
)
from vjepa2_ac.envs.subgoals import SUBGOAL_ROUNDINGS
from vjepa2_ac.experiments.results import atomic_write_json, episode_path, write_summary
from vjepa2_ac.planners.cem import CEMConfig
from vjepa2_ac.planners.lockstep import (
    OracleCEM,
    RandomPolicy,
    SinglePlanner,
    SubGoal,
    WorldModelCEM,
    run_lockstep,
)

PLANNERS = ("cem", "mppi", "gd", "random_shooting")
BASELINES = ("random", "oracle")
WARM_STARTS = ("none", "previous")
# Per task, in control steps of the env: the episode budget and the per-axis motion bound of one control
# step; a planned token step of k frames gets max_steps // k steps and k times the bound. CEM's horizon
# (token steps) and elites: push looks further ahead and keeps 30 of 100 candidates (a wider elite mean
# carries less sampling noise into the gripper's sideways motion, where the energy is flat before contact).
TASK_DEFAULTS = {
    "reach": {
        "control_steps": 30,
        "control_maxnorm": 0.025,
        "horizon": 1,
        "topk": 10,
        "stop_distance": 0.015,
    },
    "push": {"control_steps": 40, "control_maxnorm": 0.015, "horizon": 2, "topk": 30},
    # Gymnasium-Robotics Fetch: the env's own 50-step episodes (25 Hz). FetchPush starts the gripper
    # away from the block, so it plans through 16 sub-goal images of the scripted expert at the expert's
    # pace, redrawn from the current scene every 4 planned steps (a block pushed a little differently
    # leaves sub-goals drawn once behind), with a finer CEM (200 x 4): a push that misses the block's
    # centre by a centimetre turns it.
    "FetchReach-v4": {"control_steps": 50, "control_maxnorm": 0.025, "horizon": 1, "topk": 10},
    "FetchPush-v4": {
        "control_steps": 50,
        "control_maxnorm": 0.025,
        "horizon": 1,
        "samples": 200,
        "iterations": 4,
        "topk": 40,
        "subgoals": 16,
        "subgoal_pace": 1.0,
        "subgoal_refresh": 4,
    },
}
# CEM settings of tasks without a default of their own (droid).
DEFAULT_SAMPLES, DEFAULT_ITERATIONS, DEFAULT_TOPK = 100, 3, 10
# DROID camera roles of the model's training data -> the simulator's cameras (as `collect` writes them).
SIM_CAMERAS = {"left": "exterior_1", "right": "exterior_2", "wrist": "wrist"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", help="a world model checkpoint (train, demo or official), or `pretrained`"
    )
    add_task_arguments(parser, "task: reach, push, or droid (offline, see --droid)")
    parser.add_argument("--droid", default=None, help="--task droid: .npz clips (observations, states)")
    parser.add_argument("--resize", action="store_true", help="--task droid: resize frames to the model size")
    parser.add_argument("--episodes", type=int, default=100, help="number of seeded episodes")
    parser.add_argument("--planner", default="cem", help=f"planner: {', '.join(PLANNERS)}")
    parser.add_argument("--baseline", default=None, help=f"run a baseline instead: {', '.join(BASELINES)}")
    parser.add_argument("--oracle-energy", default="image", choices=("image", "distance"))
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED + i")
    g = parser.add_argument_group("planner settings")
    g.add_argument(
        "--samples", type=int, default=None, help="CEM candidates per iteration; task default (100)"
    )
    g.add_argument(
        "--iterations", type=int, default=None, help="CEM iterations per planned step; task default (3)"
    )
    g.add_argument("--topk", type=int, default=None, help="CEM elites per iteration; task default")
    g.add_argument("--horizon", type=int, default=None, help="planning horizon (token steps); task default")
    g.add_argument(
        "--maxnorm", type=float, default=None, help="per-axis bound of one planned step (m); task default"
    )
    g.add_argument("--max-steps", type=int, default=None, help="planned steps per episode; task default")
    g.add_argument("--no-keep-still", action="store_true", help="do not always evaluate the zero action")
    g.add_argument(
        "--warm-start",
        choices=WARM_STARTS,
        default="none",
        help="CEM's initial mean at each MPC step: none (zero, the default) or previous (the previous "
        "plan shifted by one step, which carries its sampling noise into the next step)",
    )
    g.add_argument(
        "--action-cost",
        type=float,
        default=0.0,
        help="world model: add this times the L1 norm of a candidate's xyz actions (metres, summed over "
        "the horizon) to its energy, a control cost (0: the pure goal energy)",
    )
    g.add_argument(
        "--stop-energy",
        type=float,
        default=None,
        help="world model: hold still while the current observation's energy to the goal is below this",
    )
    g.add_argument(
        "--stop-distance",
        type=float,
        default=None,
        help="as --stop-energy, given in metres through the checkpoint's energy-per-metre calibration; task "
        "default (reach 0.015, used when the checkpoint is calibrated), 0 turns it off",
    )
    g.add_argument("--batch-episodes", type=int, default=25, help="episodes planned in lockstep")
    g.add_argument(
        "--rollout",
        choices=("cached", "recompute"),
        default="cached",
        help="world model CEM: one predictor pass per rollout step over a key/value cache (cached), or "
        "the whole growing sequence at every step as the official planner does (recompute: slower, the "
        "same energies up to float rounding)",
    )
    g.add_argument(
        "--subgoals",
        type=int,
        default=None,
        help="goal images per episode: K > 1 plans through K-1 sub-goal images rendered from states the "
        "env's scripted expert passes through, then the goal image (the paper's multi-stage protocol); "
        "task default (FetchPush-v4 16, else 1)",
    )
    g.add_argument(
        "--subgoal-pace",
        type=float,
        default=None,
        help="pursue each sub-goal for this many times the expert's time to it (> 1: slower than the "
        "expert; lowered so that sub-goals leave the last 20 %% of the episode to the goal); default 1",
    )
    g.add_argument(
        "--subgoal-rounding",
        choices=SUBGOAL_ROUNDINGS,
        default="each",
        help="how paced sub-goal times become whole planned steps: 'each' rounds every sub-goal's time "
        "up (close sub-goals take longer, possibly past the episode's end), 'cumulative' rounds the "
        "switch times (the schedule keeps pace x the expert's time)",
    )
    g.add_argument(
        "--subgoal-refresh",
        type=int,
        default=None,
        metavar="N",
        help="every N planned steps, redraw the remaining sub-goals: the scripted expert runs again from "
        "the current scene (closed-loop sub-goals; 0: drawn once at the start); task default "
        "(FetchPush-v4 4, else 0)",
    )
    parser.add_argument(
        "--push-start", default="aligned", choices=PUSH_STARTS, help="push start distribution"
    )
    parser.add_argument("--goal-image", default=None, help="PNG/NPY goal image used for every episode")
    parser.add_argument("--save-frames", type=int, default=3, help="store frames of the first K episodes")
    parser.add_argument(
        "--landscapes", type=int, default=1, help="energy landscapes for the first K episodes"
    )
    parser.add_argument("--overwrite", action="store_true", help="delete finished episodes in OUT first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--no-progress", action="store_true")


# ----------------------------------------------------------------------------------------------- setup
class PlanError(ValueError):
    """Bad command-line input, reported before any long work starts."""


def method_name(args: argparse.Namespace) -> str:
    """Label of the method in tables and file names."""
    if args.baseline == "random":
        return "random"
    if args.baseline == "oracle":
        return "oracle_cem" if args.oracle_energy == "image" else "oracle_cem_distance"
    return f"world_model_{args.planner}"


def validate_args(args: argparse.Namespace) -> None:
    """Every check that can fail fast, with the offending argument named."""
    from vjepa2_ac.experiments.pretrained import resolve_checkpoint

    try:
        args.checkpoint = resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as e:
        raise PlanError(f"--checkpoint: {e}") from None
    if args.task not in ALL_TASKS:
        raise PlanError(f"--task/--env: unknown task {args.task!r}; valid: {', '.join(ALL_TASKS)}, droid")
    try:
        require_available(args.task)
    except ValueError as e:
        raise PlanError(str(e)) from None
    if args.planner not in PLANNERS:
        raise PlanError(f"--planner: unknown planner {args.planner!r}; valid: {', '.join(PLANNERS)}")
    if args.baseline is not None and args.baseline not in BASELINES:
        raise PlanError(f"--baseline: unknown baseline {args.baseline!r}; valid: {', '.join(BASELINES)}")
    if args.baseline != "random" and args.checkpoint is None:
        raise PlanError("--checkpoint is required (only --baseline random runs without a world model)")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise PlanError(f"--checkpoint: file not found: {args.checkpoint}")
    if args.episodes < 1:
        raise PlanError(f"--episodes must be >= 1, got {args.episodes}")
    defaults = TASK_DEFAULTS.get(args.task, {})
    if args.samples is None:
        args.samples = defaults.get("samples", DEFAULT_SAMPLES)
    if args.iterations is None:
        args.iterations = defaults.get("iterations", DEFAULT_ITERATIONS)
    if args.subgoals is None:
        args.subgoals = 1 if args.goal_image else defaults.get("subgoals", 1)
    if args.subgoal_pace is None:
        args.subgoal_pace = defaults.get("subgoal_pace", 1.0)
    if args.subgoal_refresh is None:
        args.subgoal_refresh = defaults.get("subgoal_refresh", 0) if args.subgoals > 1 else 0
    for name in ("samples", "iterations", "batch_episodes", "threads", "subgoals"):
        if getattr(args, name) < 1:
            raise PlanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("save_frames", "landscapes"):
        if getattr(args, name) < 0:
            raise PlanError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.horizon is not None and args.horizon < 1:
        raise PlanError(f"--horizon must be >= 1, got {args.horizon}")
    if args.max_steps is not None and args.max_steps < 1:
        raise PlanError(f"--max-steps must be >= 1, got {args.max_steps}")
    if not 0 <= args.action_cost < math.inf:
        raise PlanError(f"--action-cost must be a finite number >= 0, got {args.action_cost}")
    if args.action_cost and (args.baseline is not None or args.planner != "cem"):
        raise PlanError(
            "--action-cost is used by the world model's batched CEM only (no --baseline, --planner cem)"
        )
    if args.maxnorm is not None and not 0 < args.maxnorm <= 0.2:
        raise PlanError(f"--maxnorm must be in (0, 0.2] metres, got {args.maxnorm}")
    if args.topk is None:
        args.topk = defaults.get("topk", DEFAULT_TOPK)
    if not 2 <= args.topk <= args.samples:
        raise PlanError(f"--topk must be in [2, --samples={args.samples}], got {args.topk}")
    if args.stop_energy is not None and args.stop_distance not in (None, 0):
        raise PlanError("--stop-energy and --stop-distance are alternatives; give one")
    if args.stop_energy is not None and not 0 < args.stop_energy < math.inf:  # NaN fails too
        raise PlanError(f"--stop-energy must be a finite number > 0, got {args.stop_energy}")
    if args.stop_distance is not None and not 0 <= args.stop_distance <= 0.2:
        raise PlanError(f"--stop-distance must be in [0, 0.2] metres (0: off), got {args.stop_distance}")
    if (
        args.stop_distance is None
        and args.stop_energy is None
        and args.baseline is None
        and args.planner == "cem"
    ):
        # The task's default hold-still distance (reach), used when the checkpoint has a calibration.
        args.stop_distance = TASK_DEFAULTS.get(args.task, {}).get("stop_distance")
        args.default_stop = True
    if not 0.25 <= args.subgoal_pace <= 10:
        raise PlanError(f"--subgoal-pace must be in [0.25, 10], got {args.subgoal_pace}")
    if args.subgoals > 1 and args.goal_image:
        raise PlanError("--subgoals and --goal-image are alternatives; give one")
    if args.subgoal_refresh < 0:
        raise PlanError(f"--subgoal-refresh must be >= 0 planned steps (0: off), got {args.subgoal_refresh}")
    if args.subgoal_refresh and args.subgoals < 2:
        raise PlanError("--subgoal-refresh redraws sub-goals: it needs --subgoals >= 2")


def load_world_model(path: str):
    """The checkpoint's :class:`~vjepa2_ac.WorldModel` (eval mode, no gradients) or a clear PlanError."""
    from vjepa2_ac.checkpoint import CheckpointError
    from vjepa2_ac.world_model import WorldModel

    try:
        model = WorldModel.from_checkpoint(path)
    except (CheckpointError, ValueError, TypeError, KeyError) as e:
        raise PlanError(f"--checkpoint {path}: not a loadable world model checkpoint: {e}") from None
    return model.eval().requires_grad_(False)


def resolve_stop_energy(args: argparse.Namespace, model) -> float | None:
    """The hold-still threshold in energy units: ``--stop-energy``, or ``--stop-distance`` times the
    checkpoint's calibrated energy per metre."""
    if not args.stop_distance:
        return args.stop_energy
    per_metre = None if model is None else model.metadata.get("energy_per_metre")
    if per_metre is None and getattr(args, "default_stop", False):
        args.stop_distance = None  # the task default needs a calibrated checkpoint; without one, no hold
        return args.stop_energy
    if per_metre is None:
        raise PlanError(
            f"--stop-distance: checkpoint {args.checkpoint} has no energy calibration "
            "(train it with cached embeddings, or give --stop-energy)"
        )
    return float(per_metre) * args.stop_distance


def load_goal_image(path: str, image_size: int) -> np.ndarray:
    """Read a goal image (PNG/JPG via Pillow, or ``.npy``) and check it is ``[S, S, 3]`` uint8."""
    p = Path(path)
    if not p.is_file():
        raise PlanError(f"--goal-image: file not found: {path}")
    if p.suffix == ".npy":
        img = np.load(p)
    else:
        from PIL import Image

        img = np.asarray(Image.open(p).convert("RGB"))
    if img.dtype != np.uint8 or img.shape != (image_size, image_size, 3):
        raise PlanError(
            f"--goal-image {path}: expected a uint8 {image_size}x{image_size}x3 RGB image (the checkpoint's "
            f"image_size), got dtype {img.dtype} shape {tuple(img.shape)}"
        )
    return img


def run_settings(args: argparse.Namespace, model) -> dict:
    """The settings that decide an episode's outcome (stored in OUT/run_config.json; resuming requires
    equality)."""
    d = TASK_DEFAULTS[args.task]
    k = model.frames_per_step if model is not None else 2
    return {
        "task": args.task,
        "method": method_name(args),
        "planner": None
        if args.baseline == "random"
        else ("cem" if args.baseline == "oracle" else args.planner),
        "baseline": args.baseline,
        "oracle_energy": args.oracle_energy if args.baseline == "oracle" else None,
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
        "training_signals": None if model is None else model.training_signals,
        "frames_per_step": k,
        "seed": args.seed,
        "samples": args.samples,
        "iterations": args.iterations,
        "topk": args.topk,
        "horizon": args.horizon if args.horizon is not None else d["horizon"],
        "maxnorm": args.maxnorm if args.maxnorm is not None else round(d["control_maxnorm"] * k, 6),
        "max_steps": args.max_steps if args.max_steps is not None else d["control_steps"] // k,
        "keep_still": not args.no_keep_still,
        "warm_start": args.warm_start if args.baseline != "random" and args.planner == "cem" else None,
        "action_cost": args.action_cost,
        "stop_energy": args.stop_energy,
        "stop_distance": args.stop_distance,
        "subgoals": args.subgoals,
        "subgoal_pace": args.subgoal_pace if args.subgoals > 1 else None,
        "subgoal_rounding": args.subgoal_rounding if args.subgoals > 1 else None,
        "subgoal_refresh": (args.subgoal_refresh or None) if args.subgoals > 1 else None,
        "push_start": args.push_start if args.task == "push" else None,
        "goal_image": str(Path(args.goal_image).resolve()) if args.goal_image else None,
        "image_size": model.image_size if model is not None else 64,
        "batch_episodes": args.batch_episodes,
        "rollout": args.rollout if args.baseline is None and args.planner == "cem" else None,
    }


def _prepare_out(out: Path, settings: dict, overwrite: bool) -> None:
    """Lock ``out`` for this process (a second ``plan`` on it fails, naming this one), then delete its
    outputs (``--overwrite``, only under the lock) or check it holds a run with the same settings."""
    from vjepa2_ac.rundir import lock_run_dir, remove_outputs

    cfg_path = out / "run_config.json"
    lock_run_dir(out)
    if overwrite:
        outputs = ("episodes", "run_config.json", "summary.json", "summary.csv", "summary.md", "episodes.csv")
        remove_outputs(out, outputs)
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v and k != "episodes"}
        if changed:
            raise PlanError(
                f"--out {out} holds a run with different settings {changed} (old, new); "
                "use another --out or pass --overwrite"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, settings)


def make_policy(args: argparse.Namespace, settings: dict, model, envs, stop_energy):
    """The policy of the run's method (see :mod:`vjepa2_ac.planners.lockstep`)."""
    if args.baseline == "random":
        return RandomPolicy(settings["maxnorm"])
    cem_cfg = CEMConfig.mpc(
        maxnorm=settings["maxnorm"],
        samples=args.samples,
        iterations=args.iterations,
        topk=args.topk,
        keep_still=settings["keep_still"],
    )
    warm = settings["warm_start"] == "previous"
    if args.baseline == "oracle":
        return OracleCEM(model, cem_cfg, settings["horizon"], args.oracle_energy, envs, warm)
    if args.planner == "cem":
        return WorldModelCEM(
            model, cem_cfg, settings["horizon"], stop_energy, settings["action_cost"], warm,
            use_cache=settings["rollout"] == "cached",
        )  # fmt: skip
    return SinglePlanner(
        model,
        args.planner,
        args.samples,
        args.iterations,
        args.topk,
        settings["maxnorm"],
        settings["horizon"],
    )


# ----------------------------------------------------------------------------------------------- episodes
def episode_seed(args: argparse.Namespace, index: int) -> int:
    """Seed of episode ``index``'s planner noise (independent of its batch)."""
    return (args.seed * 1_000_003 + index) * 7919 + 17


def run_batch(policy, envs, indices: list[int], args, settings: dict, model, out: Path, goal_override):
    """Run the episodes ``indices`` in lockstep; write and return their records."""
    from vjepa2_ac.envs.subgoals import expert_subgoals

    task, method, k = settings["task"], settings["method"], settings["frames_per_step"]

    def draw_subgoals(j: int, obs: dict, info: dict, control_steps: int) -> list[SubGoal]:
        """Episode ``j``'s sub-goals from the scene ``(obs, info)`` over ``control_steps``; at the start
        and, with ``subgoal_refresh``, at every redraw."""
        plan = expert_subgoals(
            envs[j], task, obs, info, settings["subgoals"], control_steps, k,
            settings["subgoal_pace"] or 1.0, settings["subgoal_rounding"] or "each",
        )  # fmt: skip
        return [SubGoal(img, steps) for img, steps in plan]

    starts, goals = [], []
    for j, (env, i) in enumerate(zip(envs, indices)):
        obs, info = reset_episode(env, task, args.seed + i, settings["push_start"] or "aligned")
        starts.append((obs, info))
        if goal_override is not None:
            goals.append([SubGoal(goal_override)])
        else:
            goals.append(draw_subgoals(j, obs, info, settings["max_steps"] * k))

    record = [i < args.save_frames for i in indices]
    landscape_for = {j for j, i in enumerate(indices) if i < args.landscapes}

    def on_step(j: int, step: int, action: np.ndarray, tr) -> None:
        if step != 0 or j not in landscape_for or model is None or args.baseline == "random":
            return
        from vjepa2_ac.planners.landscape import first_action_landscape

        land = first_action_landscape(
            model, envs[j], goals[j][0].image, tr.frames(j), tr.first_state[j], tr.now_state[j], action,
            settings["maxnorm"],
        )  # fmt: skip
        title = f"{task} episode {indices[j]}, step 0: energy over the first action (dz = chosen)"
        np.savez(out / f"landscape_ep{indices[j]:04d}.npz", **land, title=title)

    traces = run_lockstep(
        policy,
        envs,
        [episode_seed(args, i) for i in indices],
        starts,
        goals,
        settings["max_steps"],
        k,
        record,
        on_step if landscape_for else None,
        draw_subgoals,
        settings["subgoal_refresh"] or 0,
    )
    done = []
    for j, (i, tr) in enumerate(zip(indices, traces)):
        thr = float(envs[j].unwrapped.success_threshold)
        info0 = starts[j][1]
        rec = {
            "task": task,
            "method": method,
            "episode": i,
            "seed": args.seed + i,
            "success_threshold": thr,
            "success": bool(tr.last_info["success"]),
            "ever_success": bool(min(tr.distance) < thr),
            "initial_distance": tr.distance[0],
            "final_distance": tr.distance[-1],
            "steps": tr.steps,
            "control_steps": len(tr.distance) - 1,
            "planning_time_per_step_s": float(np.mean(tr.planning_s)) if tr.planning_s else 0.0,
            "distance_trace": tr.distance,
            "energy_trace": tr.energy,
            "observed_energy_trace": tr.observed_energy or None,
            "planning_times_s": tr.planning_s,
            "ee_trajectory": tr.ee,
            "block_trajectory": tr.block,
            "goal_ee": [float(v) for v in info0["goal_state"][:3]],
            "goal_block": [float(v) for v in info0["goal_pos"]] if task_kind(task) == "push" else None,
            "actions": tr.actions,
            "subgoal_trace": tr.subgoal if settings["subgoals"] > 1 else None,
        }
        if tr.frames:
            np.savez_compressed(
                out / "episodes" / f"ep_{i:04d}_frames.npz",
                frames=np.stack(tr.frames),
                goal=goals[j][-1].image,
                distance=np.asarray(tr.distance),
                # per control step (frame f >= 1 was reached while executing planned step (f - 1) // k)
                energy=np.repeat(np.asarray(tr.energy), k)[: len(tr.frames) - 1],
                title=f"{task} / {method} / episode {i}: {'success' if rec['success'] else 'failure'}",
            )
        atomic_write_json(episode_path(out, i), rec)
        done.append(rec)
    return done


def plan_episodes(args: argparse.Namespace) -> dict:
    """Validate, load, run every missing episode and write the summary; returns the summary dict."""
    validate_args(args)
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint) if args.checkpoint is not None else None
    camera = "exterior_1"
    if model is not None:
        camera = SIM_CAMERAS.get(model.metadata.get("camera", "left"), "exterior_1")
    stop_energy = resolve_stop_energy(args, model)
    settings = run_settings(args, model)
    goal_override = load_goal_image(args.goal_image, settings["image_size"]) if args.goal_image else None
    if model is not None and args.baseline is None:
        print(f"world model trained on: {', '.join(model.training_signals) or 'unknown signals'}")
        if settings["horizon"] + 1 > model.predictor.max_steps:
            raise PlanError(
                f"--horizon {settings['horizon']}: the checkpoint's predictor handles at most "
                f"{model.predictor.max_steps - 1} planned steps after the current one"
            )
    out = Path(args.out)
    _prepare_out(out, settings, args.overwrite)
    (out / "episodes").mkdir(exist_ok=True)
    todo = [i for i in range(args.episodes) if not episode_path(out, i).exists()]
    n_batch = min(args.batch_episodes, max(1, len(todo)))
    control_steps = settings["max_steps"] * settings["frames_per_step"]
    envs = [
        make_env(args.task, settings["image_size"], camera, max_episode_steps=control_steps)
        for _ in range(n_batch)
    ]
    bar = tqdm(total=len(todo), desc=f"plan {args.task} {settings['method']}", disable=args.no_progress)
    for b in range(0, len(todo), n_batch):
        batch = todo[b : b + n_batch]
        policy = make_policy(args, settings, model, envs[: len(batch)], stop_energy)
        run_batch(policy, envs[: len(batch)], batch, args, settings, model, out, goal_override)
        bar.update(len(batch))
    bar.close()
    for env in envs:
        env.close()
    rows = write_summary(out, extra={"settings": settings}, episodes=args.episodes)
    return {"rows": rows, "settings": settings}


def run(args: argparse.Namespace) -> int:
    if args.task == "droid":
        from vjepa2_ac.experiments.droid_plan import plan_droid

        summary = plan_droid(args)
        print(json.dumps(summary, indent=1))
        return 0
    result = plan_episodes(args)  # a PlanError becomes one line and exit code 2 (experiments/cli.py)
    from vjepa2_ac.experiments.results import markdown_table

    print(markdown_table(result["rows"]), end="")
    print(f"wrote {args.out}/summary.md, summary.csv, summary.json, episodes.csv, episodes/")
    return 0
