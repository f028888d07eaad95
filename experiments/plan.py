"""``vjepa2-ac plan``: planning experiments over N seeded episodes of a simulated task.

    vjepa2-ac plan --checkpoint CKPT --task reach --episodes 100 --out runs/reach_cem
    vjepa2-ac plan --checkpoint CKPT --task push --baseline oracle --episodes 100 --out runs/push_oracle
    vjepa2-ac plan --task reach --baseline random --episodes 100 --out runs/reach_random

Episode ``i`` is env seed ``--seed + i``. Each finished episode is written atomically to
``OUT/episodes/ep_<i>.json`` (success, final distance, steps, planning time per step, energy and
distance traces, EE/block trajectories); re-running the same command continues an interrupted run
(finished episodes are kept, never recomputed). ``OUT/summary.{md,csv,json}`` hold the aggregate table
with 95 % Wilson intervals; ``episodes.csv`` one row per episode. The first ``--save-frames`` episodes
also store their frames for ``vjepa2-ac plot filmstrip`` and the first ``--landscapes`` an energy
landscape around the chosen first action.

Methods: ``world_model`` (the learned model's energy, any ``--planner``), ``--baseline oracle`` (CEM
on the *true simulator*: every candidate is simulated and rendered and scored with the same encoder
and L1 image energy, i.e. the world model's upper bound; ``--oracle-energy distance`` scores the true
task distance instead), ``--baseline random`` (uniform random actions). World-model CEM and the oracle
run ``--batch-episodes`` episodes in lockstep, so one predictor / encoder call serves all of them;
the reported planning time per step is the batch time divided by the episodes in the batch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vjepa2_ac.experiments.episodes import PUSH_STARTS, TASKS, make_env, reset_episode
from vjepa2_ac.experiments.results import atomic_write_json, episode_path, write_summary
from vjepa2_ac.experiments.sim_model import energy
from vjepa2_ac.planners.cem import CEM, CEMConfig, shift_plans

PLANNERS = ("cem", "mppi", "gd", "random_shooting")
BASELINES = ("random", "oracle")
WARM_STARTS = ("none", "previous")
# Per-task defaults: MPC steps, the per-axis action bound of the planner (push moves slower so the
# block is pushed rather than kicked) and CEM's elites. Push keeps 30 of 100 candidates: a wider elite
# mean carries less sampling noise into the gripper's sideways motion, where the model's energy is
# nearly flat until the first contact (docs/experiments.md, "Session 6").
TASK_DEFAULTS = {
    "reach": {"max_steps": 30, "maxnorm": 0.05, "horizon": 1, "topk": 10},
    "push": {"max_steps": 40, "maxnorm": 0.02, "horizon": 4, "topk": 30},
}
DEFAULT_TOPK = 10  # tasks without a default of their own (droid)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        help="simulated world model checkpoint (from `vjepa2-ac demo`), or `pretrained` for the shipped one",
    )
    parser.add_argument(
        "--task", required=True, help=f"task: {', '.join(TASKS)}, or droid (offline, see --droid)"
    )
    parser.add_argument("--droid", default=None, help="--task droid: .npz clips (observations, states)")
    parser.add_argument("--resize", action="store_true", help="--task droid: resize frames to the model size")
    parser.add_argument("--episodes", type=int, default=100, help="number of seeded episodes")
    parser.add_argument("--planner", default="cem", help=f"planner: {', '.join(PLANNERS)}")
    parser.add_argument("--baseline", default=None, help=f"run a baseline instead: {', '.join(BASELINES)}")
    parser.add_argument("--oracle-energy", default="image", choices=("image", "distance"))
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED + i")
    g = parser.add_argument_group("planner settings")
    g.add_argument("--samples", type=int, default=100)
    g.add_argument("--iterations", type=int, default=3)
    g.add_argument("--topk", type=int, default=None, help="CEM elites per iteration; task default")
    g.add_argument("--horizon", type=int, default=None, help="planning horizon (steps); task default")
    g.add_argument("--maxnorm", type=float, default=None, help="per-axis action bound (m); task default")
    g.add_argument("--max-steps", type=int, default=None, help="MPC steps per episode; task default")
    g.add_argument("--no-keep-still", action="store_true", help="do not always evaluate the zero action")
    g.add_argument(
        "--warm-start",
        choices=WARM_STARTS,
        default="none",
        help="batched CEM's initial mean at each MPC step: none (zero, the default) or previous (the "
        "previous plan shifted by one step, which carries its sampling noise into the next step)",
    )
    g.add_argument(
        "--context-frames",
        type=int,
        default=0,
        help="world model: condition every rollout on the K frames observed before the current one and "
        "the actions executed from them (K + horizon <= the predictor's max_steps)",
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
        help="world model: hold still while the current frame's energy to the goal is below this",
    )
    g.add_argument(
        "--stop-distance",
        type=float,
        default=None,
        help="as --stop-energy, given in metres through the checkpoint's energy-per-metre calibration",
    )
    g.add_argument("--batch-episodes", type=int, default=25, help="episodes planned in lockstep")
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
    if args.task not in TASKS:
        raise PlanError(f"--task: unknown task {args.task!r}; valid tasks: {', '.join(TASKS)}, droid")
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
    for name in ("samples", "iterations", "batch_episodes", "threads"):
        if getattr(args, name) < 1:
            raise PlanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.horizon is not None and args.horizon < 1:
        raise PlanError(f"--horizon must be >= 1, got {args.horizon}")
    if args.max_steps is not None and args.max_steps < 1:
        raise PlanError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.context_frames < 0:
        raise PlanError(f"--context-frames must be >= 0, got {args.context_frames}")
    if args.context_frames and (args.baseline is not None or args.planner != "cem"):
        raise PlanError(
            "--context-frames is used by the world model's batched CEM only (no --baseline, --planner cem)"
        )
    if not 0 <= args.action_cost < float("inf"):
        raise PlanError(f"--action-cost must be a finite number >= 0, got {args.action_cost}")
    if args.action_cost and (args.baseline is not None or args.planner != "cem"):
        raise PlanError(
            "--action-cost is used by the world model's batched CEM only (no --baseline, --planner cem)"
        )
    if args.maxnorm is not None and not 0 < args.maxnorm <= 0.2:
        raise PlanError(f"--maxnorm must be in (0, 0.2] metres, got {args.maxnorm}")
    if args.topk is None:
        args.topk = TASK_DEFAULTS.get(args.task, {}).get("topk", DEFAULT_TOPK)
    if not 2 <= args.topk <= args.samples:
        raise PlanError(f"--topk must be in [2, --samples={args.samples}], got {args.topk}")
    if args.stop_energy is not None and args.stop_distance is not None:
        raise PlanError("--stop-energy and --stop-distance are alternatives; give one")
    if args.stop_energy is not None and not 0 < args.stop_energy < float("inf"):  # NaN fails too
        raise PlanError(f"--stop-energy must be a finite number > 0, got {args.stop_energy}")
    if args.stop_distance is not None and not 0 < args.stop_distance <= 0.2:
        raise PlanError(f"--stop-distance must be in (0, 0.2] metres, got {args.stop_distance}")
    for name in ("save_frames", "landscapes"):
        if getattr(args, name) < 0:
            raise PlanError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")


def resolve_stop_energy(args: argparse.Namespace, config: dict | None) -> float | None:
    """The hold-still threshold in energy units: ``--stop-energy``, or ``--stop-distance`` times the
    checkpoint's calibrated energy per metre of the task."""
    if args.stop_distance is None:
        return args.stop_energy
    per_metre = (config or {}).get("energy_per_metre", {}).get(args.task)
    if per_metre is None:
        raise PlanError(
            f"--stop-distance: checkpoint {args.checkpoint} has no energy calibration for task {args.task!r} "
            "(retrain it with this version, or give --stop-energy)"
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


def run_settings(args: argparse.Namespace, image_size: int) -> dict:
    """The settings that define a run (stored in OUT/run_config.json; resuming requires equality)."""
    d = TASK_DEFAULTS[args.task]
    return {
        "task": args.task,
        "method": method_name(args),
        "planner": None
        if args.baseline == "random"
        else ("cem" if args.baseline == "oracle" else args.planner),
        "baseline": args.baseline,
        "oracle_energy": args.oracle_energy if args.baseline == "oracle" else None,
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
        "seed": args.seed,
        "samples": args.samples,
        "iterations": args.iterations,
        "topk": args.topk,
        "horizon": args.horizon if args.horizon is not None else d["horizon"],
        "maxnorm": args.maxnorm if args.maxnorm is not None else d["maxnorm"],
        "max_steps": args.max_steps if args.max_steps is not None else d["max_steps"],
        "keep_still": not args.no_keep_still,
        "warm_start": args.warm_start if args.baseline != "random" and args.planner == "cem" else None,
        "context_frames": args.context_frames,
        "action_cost": args.action_cost,
        "stop_energy": args.stop_energy,
        "stop_distance": args.stop_distance,
        "push_start": args.push_start if args.task == "push" else None,
        "goal_image": str(Path(args.goal_image).resolve()) if args.goal_image else None,
        "image_size": image_size,
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


# ----------------------------------------------------------------------------------------------- policies
def _state_tensor(obs_list) -> torch.Tensor:
    return torch.from_numpy(np.stack([o["state"] for o in obs_list])).float()


def _image_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images))


class PreviousFrames:
    """Encodes each episode's current frame together with the frame it saw before (``consecutive``
    tubelets carry the scene's motion; ``duplicate`` ones ignore it). An episode's first frame has no
    predecessor and is encoded as a still scene."""

    def __init__(self, model, n: int) -> None:
        self.model = model
        self.frames: list[np.ndarray | None] = [None] * n

    def encode(self, active: list[int], images: list[np.ndarray]) -> torch.Tensor:
        """``z[A, N, D]`` of the active episodes' ``images``; remembers them as the next step's past."""
        prev = None
        if self.model.cfg.tubelet == "consecutive":  # duplicate tubelets never look at the past
            prev = _image_tensor(
                [im if self.frames[i] is None else self.frames[i] for i, im in zip(active, images)]
            )
        with torch.no_grad():
            z = self.model.encode_images(_image_tensor(images), prev)
        for i, im in zip(active, images):
            self.frames[i] = im
        return z


def _episode_generators(seed: int, n: int) -> list[torch.Generator]:
    """One CPU generator per episode of a batch, so an episode's plans do not depend on which other
    episodes are still running (``CEM.plan_batch`` draws each problem's noise from its own)."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(n)]


class LockstepCEM:
    """Batched CEM over the active episodes of a batch, shared by the world model's and the oracle's
    policies: each episode draws from its own generator and, with ``warm_start``, starts its search
    from its previous plan shifted by one step (otherwise from the zero mean)."""

    def __init__(self, cfg: CEMConfig, horizon: int, seed: int, warm_start: bool) -> None:
        self.cem, self.horizon, self.seed, self.warm_start = CEM(cfg), horizon, seed, warm_start

    def reset(self, n: int) -> None:
        """Start a batch of ``n`` episodes."""
        self.gens = _episode_generators(self.seed, n)
        self.prev: torch.Tensor | None = None  # [n, H, 7], the last plans (warm start only)
        self.n = n

    def plan(self, fn, active: list[int]) -> tuple[torch.Tensor, np.ndarray]:
        """Plans ``[A, H, 7]`` of the active episodes under ``fn`` (``[A, S, H, 7] -> [A, S]``) and the
        energy of each plan itself ``[A]``."""
        idx = torch.tensor(active)
        init = None if self.prev is None else shift_plans(self.prev[idx])
        gens = [self.gens[i] for i in active]
        results = self.cem.plan_batch(fn, len(active), self.horizon, init, gens, score_plan=True)
        plans = torch.stack([r.actions for r in results])
        if self.warm_start:
            if self.prev is None:
                self.prev = torch.zeros(self.n, self.horizon, 7)
            self.prev[idx] = plans
        return plans, np.array([r.plan_energy for r in results], dtype=np.float32)


class WorldModelCEM:
    """Batched CEM on the learned world model's energy (all active episodes in one predictor call).

    ``context_frames`` K > 0: every rollout is conditioned on the K frames observed before the current
    one (with their states and executed actions), so the predictor sees the scene's recent motion (a
    block still sliding after a push). Before an episode has K frames, its first frame fills the gap
    with zero actions (the arm at rest before the episode).

    ``action_cost`` > 0 adds ``action_cost * sum |a_xyz|`` (metres over the horizon) to every
    candidate's energy: a control cost that makes CEM drop action components the energy does not ask
    for, instead of keeping their sampling noise.

    ``warm_start`` starts each step's search from the previous plan shifted by one step instead of
    zero. Where the energy is flat (push: the gripper's sideways motion before contact) the elite mean
    of the previous step is then kept as the next step's centre, so its noise becomes a persistent
    drift (docs/experiments.md, "Session 6").
    """

    def __init__(
        self,
        model,
        cfg: CEMConfig,
        horizon: int,
        seed: int,
        stop_energy: float | None = None,
        context_frames: int = 0,
        action_cost: float = 0.0,
        warm_start: bool = False,
    ) -> None:
        self.model, self.stop_energy, self.k = model, stop_energy, context_frames
        self.action_cost = action_cost
        self.search = LockstepCEM(cfg, horizon, seed, warm_start)
        self.observed_energy: np.ndarray | None = None

    def reset(self, goals: list[np.ndarray]) -> None:
        with torch.no_grad():
            self.z_goal = self.model.encode_images(_image_tensor(goals))  # [E, N, D]
        self.search.reset(len(goals))
        self.past = PreviousFrames(self.model, len(goals))
        self.hist: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # [E, K, ...] each

    def _history(self, idx: torch.Tensor, z_cur: torch.Tensor, s_cur: torch.Tensor):
        """The active episodes' last K frames ``(z[A, K, N, D], s[A, K, 7], a[A, K, 7])`` or None."""
        if self.k == 0:
            return None
        if self.hist is None:  # first step of the batch: the first frame, at rest, fills the past
            e = self.z_goal.shape[0]
            z = torch.zeros(e, self.k, *z_cur.shape[1:])
            s = torch.zeros(e, self.k, 7)
            z[idx], s[idx] = z_cur[:, None].expand_as(z[idx]), s_cur[:, None].expand_as(s[idx])
            self.hist = (z, s, torch.zeros(e, self.k, 7))
        return tuple(h[idx] for h in self.hist)

    def _push_history(self, idx: torch.Tensor, z_cur, s_cur, actions: np.ndarray) -> None:
        if self.k == 0:
            return
        z, s, a = self.hist
        new = (z_cur, s_cur, torch.from_numpy(np.asarray(actions, np.float32)))
        for h, x in zip((z, s, a), new):
            h[idx] = torch.cat([h[idx][:, 1:], x[:, None]], dim=1)

    def energy_fn(self, z_cur: torch.Tensor, s_cur: torch.Tensor, z_goal: torch.Tensor, history=None):
        def fn(actions: torch.Tensor) -> torch.Tensor:  # [E, S, H, 7] -> [E, S]
            e, s, h = actions.shape[:3]
            n, d = z_cur.shape[-2:]
            z0 = z_cur[:, None].expand(e, s, n, d).reshape(e * s, n, d)
            s0 = s_cur[:, None].expand(e, s, 7).reshape(e * s, 7)
            hist = None
            if history is not None:
                hist = tuple(x[:, None].expand(e, s, *x.shape[1:]).flatten(0, 1) for x in history)
            with torch.no_grad():
                z = self.model.rollout(z0, s0, actions.reshape(e * s, h, 7), history=hist)[:, -1]
            out = energy(z.view(e, s, n, d), z_goal[:, None]).float()
            if self.action_cost:
                out = out + self.action_cost * actions[..., :3].abs().sum(dim=(-2, -1))
            return out

        return fn

    def act(self, active: list[int], obs_list) -> tuple[np.ndarray, np.ndarray]:
        z_cur = self.past.encode(active, [o["image"] for o in obs_list])
        s_cur = _state_tensor(obs_list)
        idx = torch.tensor(active)
        fn = self.energy_fn(z_cur, s_cur, self.z_goal[idx], self._history(idx, z_cur, s_cur))
        plans, plan_energy = self.search.plan(fn, active)
        actions = plans[:, 0].numpy().copy()
        # Energy of the current observation itself (encoder only, no prediction): a success detector in
        # embedding space. Below the threshold the arm holds still instead of jittering out of the basin.
        self.observed_energy = energy(z_cur, self.z_goal[idx]).numpy()
        if self.stop_energy is not None:
            actions[self.observed_energy < self.stop_energy] = 0.0
        self._push_history(idx, z_cur, s_cur, actions)
        return actions, plan_energy


class OracleCEM:
    """Batched CEM whose candidates are scored by the true simulator.

    ``image`` energy: each candidate is simulated from a snapshot of the episode's MuJoCo state, its
    outcome rendered and encoded with the world model's encoder, and scored with the same L1 energy to
    the goal image (the world model's upper bound). ``distance``: the true task distance instead.
    """

    def __init__(
        self, model, cfg: CEMConfig, horizon: int, seed: int, kind: str, envs, warm_start: bool = False
    ) -> None:
        self.model, self.kind, self.envs = model, kind, envs
        self.search = LockstepCEM(cfg, horizon, seed, warm_start)

    def reset(self, goals: list[np.ndarray]) -> None:
        if self.kind == "image":
            with torch.no_grad():
                self.z_goal = self.model.encode_images(_image_tensor(goals))
        self.search.reset(len(goals))

    def _simulate(
        self, env, actions: np.ndarray, current: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
        """Outcomes of ``actions[S, H, 7]`` from the env's current state (whose image is ``current``):
        each sequence's last frame, the frame before it and the final distance. The env is restored
        after."""
        u = env.unwrapped
        snap = snapshot(env)
        render = u.config.render_images
        # Only the frames the encoder sees are rendered: the last, and the one before it for
        # consecutive tubelets.
        rendered = 2 if self.model.cfg.tubelet == "consecutive" else 1
        images, previous, dists = [], [], []
        try:
            for seq in actions:
                restore(env, snap)
                frames = [current]
                for j, a in enumerate(seq):
                    u.config.render_images = self.kind == "image" and j >= len(seq) - rendered
                    obs, _, _, _, info = u.step(a.astype(np.float32))
                    frames.append(obs["image"])
                images.append(frames[-1])
                previous.append(frames[-2])
                dists.append(float(info["distance"]))
        finally:
            restore(env, snap)
            u.config.render_images = render
        return images, previous, dists

    def act(self, active: list[int], obs_list) -> tuple[np.ndarray, np.ndarray]:
        envs = [self.envs[i] for i in active]
        idx = torch.tensor(active)

        def fn(actions: torch.Tensor) -> torch.Tensor:
            e, s = actions.shape[:2]
            imgs, prev, dists = [], [], []
            for k, env in enumerate(envs):
                im, pr, di = self._simulate(env, actions[k].numpy(), obs_list[k]["image"])
                imgs += im
                prev += pr
                dists += di
            if self.kind == "distance":
                return torch.tensor(dists).view(e, s)
            with torch.no_grad():
                z = self.model.encode_images(_image_tensor(imgs), _image_tensor(prev))
                z = z.view(e, s, *self.z_goal.shape[1:])
            return energy(z, self.z_goal[idx][:, None]).float()

        plans, plan_energy = self.search.plan(fn, active)
        return plans[:, 0].numpy(), plan_energy


class RandomPolicy:
    """Uniform random xyz actions within ``±maxnorm`` (rotation and gripper unchanged)."""

    def __init__(self, maxnorm: float, seed: int) -> None:
        self.maxnorm = maxnorm
        self.rng = np.random.default_rng(seed)

    def reset(self, goals) -> None:
        pass

    def act(self, active, obs_list) -> tuple[np.ndarray, np.ndarray]:
        a = np.zeros((len(active), 7), np.float32)
        a[:, :3] = self.rng.uniform(-self.maxnorm, self.maxnorm, (len(active), 3))
        return a, np.full(len(active), np.nan)


class SinglePlanner:
    """One of the ``vjepa2_ac.planners`` planners (MPPI, gradient, random shooting, CEM) per episode."""

    def __init__(self, model, name: str, settings: dict, seed: int) -> None:
        from vjepa2_ac.planners.base import ActionSpace

        self.model = model
        space = ActionSpace(maxnorm=settings["maxnorm"], fixed={6: 0.0})
        s, it, k = settings["samples"], settings["iterations"], settings["topk"]
        if name == "cem":
            self.planner = CEM(CEMConfig(samples=s, iterations=it, topk=k, space=space, seed=seed))
        elif name == "mppi":
            from vjepa2_ac.planners.mppi import MPPI, MPPIConfig

            self.planner = MPPI(MPPIConfig(samples=s, iterations=it, space=space, seed=seed))
        elif name == "gd":
            from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner

            self.planner = GradientPlanner(GradientConfig(steps=max(it, 10), space=space, seed=seed))
        else:
            from vjepa2_ac.planners.random_shooting import RandomShooting, RandomShootingConfig

            self.planner = RandomShooting(RandomShootingConfig(samples=s * it, space=space, seed=seed))
        self.horizon = settings["horizon"]
        self.gen = torch.Generator().manual_seed(seed)
        self.name = name

    def reset(self, goals) -> None:
        with torch.no_grad():
            self.z_goal = self.model.encode_images(_image_tensor(goals))
        self.past = PreviousFrames(self.model, len(goals))

    def act(self, active, obs_list) -> tuple[np.ndarray, np.ndarray]:
        z_cur = self.past.encode(active, [o["image"] for o in obs_list])
        s_cur = _state_tensor(obs_list)
        acts, energies = [], []
        for k, ep in enumerate(active):
            z0, s0, zg = z_cur[k : k + 1], s_cur[k : k + 1], self.z_goal[ep]

            def fn(actions: torch.Tensor, z0=z0, s0=s0, zg=zg) -> torch.Tensor:  # [S, H, 7] -> [S]
                n = actions.shape[0]
                z = self.model.rollout(z0.expand(n, -1, -1), s0.expand(n, -1), actions)[:, -1]
                return energy(z, zg)

            with torch.set_grad_enabled(self.name == "gd"):
                res = self.planner.plan(fn, self.horizon, generator=self.gen)
            acts.append(res.actions[0].detach().float().numpy())
            energies.append(float(res.energy))
        return np.stack(acts).astype(np.float32), np.asarray(energies)


# ----------------------------------------------------------------------------------------------- episodes
def snapshot(env):
    """Full simulation snapshot of the env (its ``get_sim_state`` when it has one, else the ``MjData``)."""
    import mujoco

    u = env.unwrapped
    if hasattr(u, "get_sim_state"):
        return u.get_sim_state()
    snap = mujoco.MjData(u.model)
    mujoco.mj_copyData(snap, u.model, u.data)
    return snap


def restore(env, snap) -> None:
    """Restore a :func:`snapshot` so that the next steps are identical to stepping from the snapshot.

    Uses the env's ``set_sim_state`` (physics and controller state); otherwise copies the ``MjData`` back,
    recomputes derived quantities and drops the env's cached EE state.
    """
    import mujoco

    u = env.unwrapped
    if hasattr(u, "set_sim_state") and isinstance(snap, dict):
        u.set_sim_state(snap)
        return
    mujoco.mj_copyData(u.data, u.model, snap)
    mujoco.mj_forward(u.model, u.data)
    if hasattr(u, "_state_cache"):
        u._state_cache = None


def _landscape(model, env, obs, goal_img, chosen: np.ndarray, maxnorm: float, path: Path, title: str) -> None:
    """Energy over a (dx, dy) grid around the current state: world model, rendered truth, distance."""
    n = 11
    grid = np.linspace(-maxnorm, maxnorm, n)
    acts = np.zeros((n, n, 7), np.float32)
    acts[..., 0] = grid[None, :]
    acts[..., 1] = grid[:, None]
    acts[..., 2] = chosen[2]
    with torch.no_grad():
        z_goal = model.encode_images(_image_tensor([goal_img]))
        z0 = model.encode_images(_image_tensor([obs["image"]]))
        s0 = _state_tensor([obs])
        a = torch.from_numpy(acts.reshape(-1, 1, 7))
        z = model.rollout(z0.expand(n * n, -1, -1), s0.expand(n * n, -1), a)[:, -1]
        e_model = energy(z, z_goal).view(n, n).numpy()
    u = env.unwrapped
    snap = snapshot(env)
    imgs, dists = [], []
    try:
        for act in acts.reshape(-1, 7):
            restore(env, snap)
            o, _, _, _, info = u.step(act)
            imgs.append(o["image"])
            dists.append(info["distance"])
    finally:
        restore(env, snap)
    with torch.no_grad():
        # Each outcome's tubelet holds the frame it was reached from (consecutive tubelets).
        before = _image_tensor([obs["image"]] * len(imgs))
        e_true = energy(model.encode_images(_image_tensor(imgs), before), z_goal).view(n, n).numpy()
    dist = np.asarray(dists).reshape(n, n)
    iy, ix = np.unravel_index(np.argmin(dist), dist.shape)
    np.savez(
        path,
        grid_x=grid,
        grid_y=grid,
        energy=e_model,
        true_energy=e_true,
        distance=dist,
        chosen=chosen[:2],
        optimal=np.array([grid[ix], grid[iy]]),
        title=title,
    )


def _block(info) -> list[float] | None:
    return [float(v) for v in info["block_pos"]] if "block_pos" in info else None


def run_batch(
    policy, envs, indices: list[int], args, settings: dict, model, out: Path, goal_override
) -> list[dict]:
    """Run the episodes ``indices`` in lockstep; write and return their records."""
    task, method = settings["task"], settings["method"]
    obs_list, infos, goals = [], [], []
    for env, i in zip(envs, indices):
        obs, info = reset_episode(env, task, args.seed + i, settings["push_start"] or "aligned")
        obs_list.append(obs)
        infos.append(info)
        goals.append(goal_override if goal_override is not None else env.unwrapped.goal_image())
    policy.reset(goals)
    n = len(indices)
    recs = []
    for k, i in enumerate(indices):
        inf = infos[k]
        recs.append(
            {
                "task": task,
                "method": method,
                "episode": i,
                "seed": args.seed + i,
                "success_threshold": float(envs[k].unwrapped.success_threshold),
                "distance_trace": [float(inf["distance"])],
                "energy_trace": [],
                "planning_times_s": [],
                "ee_trajectory": [[float(v) for v in obs_list[k]["state"][:3]]],
                "block_trajectory": [_block(inf)] if _block(inf) else None,
                "goal_ee": [float(v) for v in inf["goal_state"][:3]],
                "goal_block": [float(v) for v in inf["goal_pos"]] if task == "push" else None,
                "actions": [],
            }
        )
    frames = {k: [obs_list[k]["image"]] for k in range(n) if indices[k] < args.save_frames}
    active = list(range(n))
    for step in range(settings["max_steps"]):
        if not active:
            break
        t0 = time.perf_counter()
        actions, energies = policy.act(active, [obs_list[k] for k in active])
        per_episode = (time.perf_counter() - t0) / len(active)
        for j, k in enumerate(list(active)):
            if step == 0 and indices[k] < args.landscapes and model is not None and args.baseline != "random":
                _landscape(
                    model,
                    envs[k],
                    obs_list[k],
                    goals[k],
                    actions[j],
                    settings["maxnorm"],
                    out / f"landscape_ep{indices[k]:04d}.npz",
                    f"{task} episode {indices[k]}, step 0: energy over the first action (dz = chosen)",
                )
            obs, _, terminated, truncated, info = envs[k].step(actions[j])
            obs_list[k] = obs
            r = recs[k]
            r["distance_trace"].append(float(info["distance"]))
            if np.isfinite(energies[j]):
                r["energy_trace"].append(float(energies[j]))
            r["planning_times_s"].append(per_episode)
            obs_e = getattr(policy, "observed_energy", None)
            if obs_e is not None:
                r.setdefault("observed_energy_trace", []).append(float(obs_e[j]))
            r["ee_trajectory"].append([float(v) for v in obs["state"][:3]])
            if r["block_trajectory"] is not None:
                r["block_trajectory"].append(_block(info))
            r["actions"].append([float(v) for v in actions[j][:3]])
            r["_last_info"] = info
            if k in frames:
                frames[k].append(obs["image"])
            if terminated or truncated:
                active.remove(k)
    done = []
    for k, r in enumerate(recs):
        thr = r["success_threshold"]
        last = r.pop("_last_info", infos[k])
        r["success"] = bool(last["success"])
        r["ever_success"] = bool(min(r["distance_trace"]) < thr)
        r["initial_distance"] = r["distance_trace"][0]
        r["final_distance"] = r["distance_trace"][-1]
        r["steps"] = len(r["distance_trace"]) - 1
        r["planning_time_per_step_s"] = (
            float(np.mean(r["planning_times_s"])) if r["planning_times_s"] else 0.0
        )
        if k in frames:
            np.savez_compressed(
                out / "episodes" / f"ep_{indices[k]:04d}_frames.npz",
                frames=np.stack(frames[k]),
                goal=goals[k],
                distance=np.asarray(r["distance_trace"]),
                energy=np.asarray(r["energy_trace"]),
                title=f"{task} / {method} / episode {indices[k]}: {'success' if r['success'] else 'failure'}",
            )
        atomic_write_json(episode_path(out, indices[k]), r)
        done.append(r)
    return done


def plan_episodes(args: argparse.Namespace) -> dict:
    """Validate, load, run every missing episode and write the summary; returns the summary dict."""
    validate_args(args)
    torch.set_num_threads(args.threads)
    model = None
    image_size = 64
    if args.checkpoint is not None:
        from vjepa2_ac.checkpoint import CheckpointError
        from vjepa2_ac.experiments.recipe import load_sim_checkpoint

        try:
            model, config = load_sim_checkpoint(args.checkpoint)
            model.requires_grad_(False)
        except CheckpointError as e:
            raise PlanError(f"--checkpoint: {e}") from None
        image_size = model.cfg.image_size
        camera = config["recipe"]["camera"]
    else:
        config = None
        camera = "exterior_1"
    stop_energy = resolve_stop_energy(args, config)
    goal_override = load_goal_image(args.goal_image, image_size) if args.goal_image else None
    settings = run_settings(args, image_size)
    steps_needed = settings["horizon"] + settings["context_frames"]
    if model is not None and args.baseline is None and steps_needed > model.cfg.max_steps:
        raise PlanError(
            f"--horizon {settings['horizon']} + --context-frames {settings['context_frames']}: the "
            f"checkpoint's predictor handles at most {model.cfg.max_steps} steps "
            f"(max_steps={model.cfg.max_steps})"
        )
    out = Path(args.out)
    _prepare_out(out, settings, args.overwrite)
    (out / "episodes").mkdir(exist_ok=True)
    todo = [i for i in range(args.episodes) if not episode_path(out, i).exists()]
    n_batch = min(args.batch_episodes, max(1, len(todo)))
    envs = [
        make_env(args.task, image_size, camera, max_episode_steps=settings["max_steps"])
        for _ in range(n_batch)
    ]
    cem_cfg = CEMConfig.mpc(
        maxnorm=settings["maxnorm"],
        samples=args.samples,
        iterations=args.iterations,
        topk=args.topk,
        keep_still=settings["keep_still"],
    )
    bar = tqdm(total=len(todo), desc=f"plan {args.task} {settings['method']}", disable=args.no_progress)
    for b in range(0, len(todo), n_batch):
        batch = todo[b : b + n_batch]
        seed = args.seed * 7919 + batch[0]
        if args.baseline == "random":
            policy = RandomPolicy(settings["maxnorm"], seed)
        elif args.baseline == "oracle":
            policy = OracleCEM(
                model,
                cem_cfg,
                settings["horizon"],
                seed,
                args.oracle_energy,
                envs[: len(batch)],
                settings["warm_start"] == "previous",
            )
        elif args.planner == "cem":
            policy = WorldModelCEM(
                model,
                cem_cfg,
                settings["horizon"],
                seed,
                stop_energy,
                settings["context_frames"],
                settings["action_cost"],
                settings["warm_start"] == "previous",
            )
        else:
            policy = SinglePlanner(model, args.planner, settings, seed)
        run_batch(policy, envs[: len(batch)], batch, args, settings, model, out, goal_override)
        bar.update(len(batch))
    bar.close()
    for env in envs:
        env.close()
    rows = write_summary(out, extra={"settings": settings})
    return {"rows": rows, "settings": settings}


def run(args: argparse.Namespace) -> int:
    if args.task == "droid":
        from vjepa2_ac.experiments.droid_plan import DroidPlanError, plan_droid

        try:
            summary = plan_droid(args)
        except DroidPlanError as e:
            raise SystemExit(f"vjepa2-ac plan: {e}") from None
        print(json.dumps(summary, indent=1))
        return 0
    try:
        result = plan_episodes(args)
    except PlanError as e:
        raise SystemExit(f"vjepa2-ac plan: {e}") from None
    from vjepa2_ac.experiments.results import markdown_table

    print(markdown_table(result["rows"]), end="")
    print(f"wrote {args.out}/summary.md, summary.csv, summary.json, episodes.csv, episodes/")
    return 0
