"""``vjepa2-ac collect``: simulated episodes written in the raw DROID layout.

Each episode ``i`` goes to ``OUT/episode_<i:06d>/`` through :func:`vjepa2_ac.datasets.write_raw_episode`
(``metadata_*.json``, ``trajectory.h5``, ``recordings/MP4/<camera>.mp4``; the camera name is the serial)
plus ``sim.npz`` with simulator ground truth (see :data:`SIM_FILE`). Successes and failures are both kept;
``metadata["success"]`` labels them. An episode is generated into a hidden temporary directory and renamed
into place, so a directory that exists is complete; rerunning the same command skips those (resume).
Episode ``i`` is a pure function of ``(task, policy, seed, i)`` and the options, whatever ``--workers``.

Example::

    vjepa2-ac collect --task push --episodes 1000 --out data/push --policy mixed --image-size 64 --workers 2
    vjepa2-ac collect --env FetchReach-v4 --episodes 300 --out data/fetch_reach
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vjepa2_ac.datasets.sim_labels import SIM_FILE  # noqa: F401  (written beside every episode)

# Camera -> DROID metadata role. Cameras without a role are still written (as extra exterior cameras).
CAMERA_ROLES = {"exterior_1": "left", "exterior_2": "right", "wrist": "wrist"}
TASK_DESCRIPTIONS = {
    "reach": "move the gripper to the goal position",
    "push": "push the green block to the goal position",
    "FetchReach-v4": "move the gripper to the red target",
    "FetchPush-v4": "push the black block to the red target",
}


@dataclass(frozen=True)
class CollectConfig:
    """Options of one collection run (validated; stored in ``OUT/collect_config.json``)."""

    task: str
    policy: str = "mixed"
    image_size: int = 64
    cameras: tuple[str, ...] = ("exterior_1",)
    max_steps: int | None = None
    seed: int = 0
    noise: float = 0.005
    push_start: str = "env"
    # Near-lossless H.264 (yuv444p, crf 0): planning sees raw renders, so training frames should match them.
    lossless_video: bool = True

    def __post_init__(self) -> None:
        from vjepa2_ac.envs.fetch import CAMERA_NAME, FETCH_ENVS
        from vjepa2_ac.envs.policies import POLICY_NAMES
        from vjepa2_ac.envs.scene import CAMERA_NAMES
        from vjepa2_ac.envs.starts import ALL_TASKS, require_available

        if self.task not in ALL_TASKS:
            raise ValueError(f"--task/--env: unknown task {self.task!r}; valid: {', '.join(ALL_TASKS)}")
        require_available(self.task)
        cameras = (CAMERA_NAME,) if self.task in FETCH_ENVS else CAMERA_NAMES
        if self.policy not in POLICY_NAMES:
            raise ValueError(
                f"--policy: unknown policy {self.policy!r}; valid policies: {', '.join(POLICY_NAMES)}"
            )
        if not self.cameras:
            raise ValueError("--cameras: expected at least one camera")
        for cam in self.cameras:
            if cam not in cameras:
                raise ValueError(
                    f"--cameras: unknown camera {cam!r} for {self.task}; valid cameras: {', '.join(cameras)}"
                )
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"--cameras: duplicate camera in {list(self.cameras)}")
        if not (16 <= self.image_size <= 512) or self.image_size % 2:
            raise ValueError(f"--image-size: expected an even size in 16..512 pixels, got {self.image_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps: expected >= 1, got {self.max_steps}")
        if self.noise < 0:
            raise ValueError(f"--noise: expected >= 0 metres, got {self.noise}")
        from vjepa2_ac.envs.starts import PUSH_STARTS

        if self.push_start not in PUSH_STARTS:
            raise ValueError(
                f"--push-start: expected one of {', '.join(PUSH_STARTS)}, got {self.push_start!r}"
            )

    @property
    def steps(self) -> int:
        from vjepa2_ac.envs.starts import episode_steps

        return self.max_steps if self.max_steps is not None else episode_steps(self.task)


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(env seed, policy seed) of episode ``index`` of a run with base ``seed`` (independent streams)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return int(state[0]), int(state[1])


def episode_dir(out: Path, index: int) -> Path:
    return out / f"episode_{index:06d}"


def is_complete(path: Path, cameras: tuple[str, ...]) -> bool:
    """True when ``path`` holds every file an episode of this run writes."""
    return (
        path.is_dir()
        and (path / "trajectory.h5").is_file()
        and (path / SIM_FILE).is_file()
        and any(path.glob("metadata_*.json"))
        and all((path / "recordings" / "MP4" / f"{cam}.mp4").is_file() for cam in cameras)
    )


_ENV_CACHE: dict = {}


def _get_env(cfg: CollectConfig):
    key = (cfg.task, cfg.image_size, cfg.cameras[0])
    if key not in _ENV_CACHE:
        import vjepa2_ac.envs  # noqa: F401  (sets MUJOCO_GL before MuJoCo loads)
        from vjepa2_ac.envs.starts import build_env

        _ENV_CACHE[key] = build_env(cfg.task, cfg.image_size, cfg.cameras[0])
    return _ENV_CACHE[key]


def rollout_episode(cfg: CollectConfig, index: int) -> dict:
    """Run episode ``index``; returns frames per camera and per-step arrays (no file I/O)."""
    from vjepa2_ac.envs.policies import make_policy
    from vjepa2_ac.envs.starts import reset_episode

    env = _get_env(cfg)
    env_seed, policy_seed = episode_seeds(cfg.seed, index)
    policy = make_policy(cfg.task, cfg.policy, noise=cfg.noise)
    policy.reset(policy_seed)
    obs, info = reset_episode(env, cfg.task, env_seed, cfg.push_start)
    extra_cams = cfg.cameras[1:]

    frames = {cam: [] for cam in cfg.cameras}
    extrinsics = {cam: [] for cam in cfg.cameras}
    rec = {"states": [], "commanded": [], "applied_actions": [], "distance": [], "success": []}
    blocks = []

    def record(obs, info):
        frames[cfg.cameras[0]].append(obs["image"])
        for cam in extra_cams:
            frames[cam].append(env.render_camera(cam))
        for cam in cfg.cameras:
            extrinsics[cam].append(env.camera_extrinsics(cam))
        rec["states"].append(obs["state"])
        rec["distance"].append(info["distance"])
        rec["success"].append(info["success"])
        if env.block_pose() is not None:
            blocks.append(env.block_pose())

    record(obs, info)
    for _ in range(cfg.steps):
        action = policy.act(obs, info)
        obs, _, terminated, truncated, info = env.step(action)
        rec["commanded"].append(info["commanded_state"])
        rec["applied_actions"].append(info["applied_action"])
        record(obs, info)
        if terminated:
            break
    sim = {k: np.asarray(v, np.float32) for k, v in rec.items() if k != "success"}
    sim["success"] = np.asarray(rec["success"], bool)
    sim["goal_state"] = env.goal_state().astype(np.float32)
    sim["goal_pos"] = np.asarray(info["goal_pos"], np.float32)
    for cam in cfg.cameras:
        sim[f"goal_image_{cam}"] = env.render_camera(cam, goal=True)
    if blocks:
        b = np.asarray(blocks, np.float32)
        sim["block_pos"], sim["block_quat"] = b[:, :3], b[:, 3:]
    return {
        "frames": {cam: np.stack(v) for cam, v in frames.items()},
        "extrinsics": {cam: np.stack(v) for cam, v in extrinsics.items()},
        "sim": sim,
        "success": bool(info["success"]),
        "final_distance": float(info["distance"]),
        "policy": getattr(getattr(policy, "current", policy), "name", cfg.policy),
        "env_seed": env_seed,
        "fps": int(round(1.0 / env.dt)),
    }


def write_episode(cfg: CollectConfig, out: Path, index: int) -> dict:
    """Collect episode ``index`` into ``OUT/episode_<index>`` atomically; returns a summary row."""
    from vjepa2_ac.datasets.writer import write_raw_episode

    final = episode_dir(out, index)
    ep = rollout_episode(cfg, index)
    states = ep["sim"]["states"].astype(np.float64)
    tmp = out / f".{final.name}.collect-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    metadata = {
        "success": ep["success"],
        "current_task": TASK_DESCRIPTIONS[cfg.task],
        "uuid": final.name,
        "sim_task": cfg.task,
        "sim_policy": ep["policy"],
        "sim_collect_policy": cfg.policy,
        "sim_seed": cfg.seed,
        "sim_episode_index": index,
        "sim_env_seed": ep["env_seed"],
        "sim_final_distance": ep["final_distance"],
        "sim_goal_pos": ep["sim"]["goal_pos"].tolist(),
        "sim_goal_state": ep["sim"]["goal_state"].tolist(),
        "sim_image_size": cfg.image_size,
        "sim_cameras": list(cfg.cameras),
    }
    try:
        write_raw_episode(
            tmp,
            ep["frames"],
            states[:, :6],
            states[:, 6],
            camera_roles={CAMERA_ROLES[c]: c for c in cfg.cameras if c in CAMERA_ROLES},
            extrinsics=ep["extrinsics"],
            metadata=metadata,
            lossless_video=cfg.lossless_video,
            fps=ep["fps"],
        )
        np.savez_compressed(tmp / SIM_FILE, **ep["sim"])
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "index": index,
        "success": ep["success"],
        "final_distance": ep["final_distance"],
        "policy": ep["policy"],
        "frames": int(len(states)),
    }


def _worker(job: tuple[CollectConfig, str, int]) -> dict:
    cfg, out, index = job
    return write_episode(cfg, Path(out), index)


def collect(
    cfg: CollectConfig, out: str | os.PathLike, episodes: int, workers: int = 1, mp_context: str = "spawn"
) -> dict:
    """Collect ``episodes`` episodes into ``out`` (resuming) with ``workers`` processes; returns a summary."""
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"--episodes: expected >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"--workers: expected >= 1, got {workers}")
    if mp_context not in ("spawn", "forkserver"):
        raise ValueError(
            f"--mp-context: expected spawn or forkserver (fork hangs after rendering), got {mp_context!r}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "collect_config.json"
    config = asdict(cfg)
    config["cameras"] = list(cfg.cameras)
    if config_path.exists():
        previous = json.loads(config_path.read_text(encoding="utf-8"))
        if previous != config:
            raise ValueError(
                f"{config_path}: this directory was collected with different options {previous}; "
                f"got {config}. Use another --out or the same options to resume."
            )
    else:
        _write_json(config_path, config)

    todo = []
    skipped = 0
    for i in range(episodes):
        path = episode_dir(out, i)
        if is_complete(path, cfg.cameras):
            skipped += 1
        else:
            if path.exists():
                print(f"collect: {path} is incomplete; collecting it again", file=sys.stderr)
            todo.append(i)
    rows: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"collect {cfg.task}/{cfg.policy}", unit="ep", disable=not todo)
    jobs = [(cfg, str(out), i) for i in todo]
    if workers == 1 or len(todo) <= 1:
        it = map(_worker, jobs)
        pool = None
    else:
        pool = mp.get_context(mp_context).Pool(processes=min(workers, len(todo)))
        it = pool.imap_unordered(_worker, jobs)
    try:
        for row in it:
            rows.append(row)
            bar.update(1)
            bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.2f}")
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    elapsed = time.perf_counter() - t0
    summary = {
        "task": cfg.task,
        "policy": cfg.policy,
        "episodes": episodes,
        "collected": len(rows),
        "skipped_existing": skipped,
        "successes_collected": int(sum(r["success"] for r in rows)),
        "frames_collected": int(sum(r["frames"] for r in rows)),
        "seconds": round(elapsed, 2),
        "frames_per_second": round(sum(r["frames"] for r in rows) / elapsed, 1) if rows else 0.0,
    }
    _write_json(out / "collect_summary.json", summary)
    return summary


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vjepa2_ac.envs.starts import add_task_arguments

    add_task_arguments(parser, "reach or push (the package's own MuJoCo tasks)")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes (indices 0..N-1)")
    parser.add_argument("--out", required=True, help="output directory (raw DROID layout or LeRobot dataset)")
    parser.add_argument("--policy", default="mixed", help="random, expert or mixed (default: mixed)")
    parser.add_argument("--image-size", type=int, default=64, help="square image side in pixels (default 64)")
    parser.add_argument(
        "--cameras", default="exterior_1", help="comma-separated cameras; the first is the observation camera"
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="steps per episode (default: the task limit)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="base seed; episode i uses seeds derived from (seed, i)"
    )
    parser.add_argument(
        "--noise", type=float, default=0.005, help="expert xyz noise std in metres (default 0.005)"
    )
    parser.add_argument(
        "--push-start",
        default="env",
        help="push start distribution: env (gripper anywhere) or aligned (behind the block on the push line)",
    )
    parser.add_argument(
        "--lossy-video",
        action="store_true",
        help="encode videos as DROID does (H.264 yuv420p, crf 18) instead of near-lossless yuv444p",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--format", default="raw", choices=("raw", "lerobot"), help="raw DROID layout or a LeRobot v3 dataset"
    )
    parser.add_argument(
        "--mp-context", default="spawn", help="spawn or forkserver (never fork: it hangs after GL)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        cfg = CollectConfig(
            task=args.task,
            policy=args.policy,
            image_size=args.image_size,
            cameras=tuple(c.strip() for c in args.cameras.split(",") if c.strip()),
            max_steps=args.max_steps,
            seed=args.seed,
            noise=args.noise,
            push_start=args.push_start,
            lossless_video=not args.lossy_video,
        )
        if args.format == "lerobot":
            from vjepa2_ac.envs.collect_lerobot import collect_lerobot

            summary = collect_lerobot(
                cfg, args.out, args.episodes, workers=args.workers, mp_context=args.mp_context
            )
        else:
            summary = collect(cfg, args.out, args.episodes, workers=args.workers, mp_context=args.mp_context)
    except ValueError as exc:
        print(f"vjepa2-ac collect: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0
