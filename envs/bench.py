"""``vjepa2-ac bench envs``: simulator speed and scripted-policy success rates.

Prints one table of speeds (raw MuJoCo steps/s, env physics steps/s without rendering, rendered frames/s
and env step+render steps/s at each image size) and, with ``--episodes N``, a table of success rates of
the clean expert, the noisy expert used for collection and random motion on each task over N seeded
episodes (seeds 0..N-1, full episode length), plus how closely the reached state follows the action:
mean ``|state_{t+1} - apply_action(state_t, a_t)|`` over the random-policy steps.

Example::

    vjepa2-ac bench envs --sizes 64 128 256 --episodes 100 --json results/envs_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _timed(fn, n: int) -> tuple[float, float]:
    """Calls per second of ``fn`` over ``n`` calls (after one warm-up call): wall clock and per CPU second.

    The CPU-time rate (this process, all threads) is the robust number on a shared machine: wall-clock
    rates drop when other processes compete for the cores.
    """
    fn()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, n / max(cpu, 1e-9)


def speed_table(sizes: list[int], steps: int, task: str = "push") -> list[dict]:
    """Speed rows for ``task``: raw physics, env physics, render-only and step+render at each size."""
    import mujoco

    from vjepa2_ac.envs.tasks import TASKS

    rows = []
    env = TASKS[task](render_images=False)
    env.reset(seed=0)
    m, d = env.model, env.data
    n_raw = steps * env.config.physics_substeps
    t0, c0 = time.perf_counter(), time.process_time()
    mujoco.mj_step(m, d, nstep=n_raw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows.append(
        {"what": "mj_step (raw physics)", "size": "-", "per_s": n_raw / wall, "per_cpu_s": n_raw / cpu}
    )
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.02, 0.02, (steps + 1, 7)).astype(np.float32)
    actions[:, 3:] = 0.0
    it = iter(range(10**9))
    rate = _timed(lambda: env.step(actions[next(it) % len(actions)]), steps)
    what = f"env.step physics only ({env.config.physics_substeps} substeps)"
    rows.append({"what": what, "size": "-", "per_s": rate[0], "per_cpu_s": rate[1]})
    env.close()
    for size in sizes:
        env = TASKS[task](image_size=size)
        env.reset(seed=0)
        rate = _timed(lambda e=env: e.render_camera(e.config.camera), steps)
        rows.append({"what": "render frame", "size": size, "per_s": rate[0], "per_cpu_s": rate[1]})
        counter = iter(range(10**9))
        rate = _timed(lambda e=env, c=counter: e.step(actions[next(c) % len(actions)]), steps)
        rows.append({"what": "env.step + render", "size": size, "per_s": rate[0], "per_cpu_s": rate[1]})
        env.close()
    return rows


def success_table(episodes: int, noise: float = 0.005) -> tuple[list[dict], dict]:
    """Success rates of scripted policies over ``episodes`` seeded episodes per task, and tracking error."""
    import gymnasium as gym

    from vjepa2_ac.envs.policies import make_policy
    from vjepa2_ac.envs.tasks import apply_action_np, task_env_id

    rows, tracking = [], {}
    for task in ("reach", "push"):
        env = gym.make(task_env_id(task), render_images=False)
        for label, name, pol_noise in (
            ("expert (clean)", "expert", 0.0),
            (f"expert (noise {noise * 100:g} cm)", "expert", noise),
            ("random", "random", 0.0),
        ):
            policy = make_policy(task, name, noise=pol_noise)
            succ, dist, steps_to, errs = [], [], [], []
            for seed in range(episodes):
                obs, info = env.reset(seed=seed)
                policy.reset(seed)
                done, t, first = False, 0, None
                while not done:
                    state = obs["state"].astype(np.float64)
                    obs, _, term, trunc, info = env.step(policy.act(obs, info))
                    t += 1
                    if name == "random" and not info["workspace_clipped"]:
                        errs.append(np.abs(obs["state"] - apply_action_np(state, info["applied_action"])))
                    if info["success"] and first is None:
                        first = t
                    done = term or trunc
                succ.append(info["success"])
                dist.append(info["distance"])
                if first is not None:
                    steps_to.append(first)
            rows.append(
                {
                    "task": task,
                    "policy": label,
                    "episodes": episodes,
                    "success_rate": float(np.mean(succ)),
                    "median_final_distance_cm": 100 * float(np.median(dist)),
                    "median_steps_to_first_success": float(np.median(steps_to)) if steps_to else None,
                }
            )
            if errs:
                e = np.mean(errs, axis=0)
                tracking[task] = {
                    "xyz_mm": (1000 * e[:3]).round(3).tolist(),
                    "rot_mrad": (1000 * e[3:6]).round(3).tolist(),
                    "gripper": round(float(e[6]), 4),
                    "steps": len(errs),
                }
        env.close()
    return rows, tracking


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="image sizes (pixels)")
    parser.add_argument("--steps", type=int, default=300, help="timed calls per measurement")
    parser.add_argument("--task", default="push", help="scene for the speed table: reach or push")
    parser.add_argument(
        "--episodes",
        type=int,
        default=0,
        help="seeded episodes per task and policy for success rates (0: skip)",
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    import vjepa2_ac.envs  # noqa: F401  (MUJOCO_GL before MuJoCo loads)

    if args.task not in ("reach", "push"):
        raise SystemExit(f"--task: unknown task {args.task!r}; valid tasks: reach, push")
    if any(s < 16 or s > 512 for s in args.sizes) or args.steps < 1 or args.episodes < 0:
        raise SystemExit("--sizes must be 16..512, --steps >= 1 and --episodes >= 0")
    result: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
        }
    }
    speed = speed_table(args.sizes, args.steps, args.task)
    result["speed"] = speed
    print(
        f"\nSimulator speed ({args.task} scene, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
        f"{os.cpu_count()} CPUs)"
    )
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    result["machine"]["load_average_1min"] = load
    print(f"(1-min load average {load:.1f}; 'per CPU second' is robust to other processes sharing the cores)")
    print(f"{'measurement':<40} {'size':>6} {'per wall second':>16} {'per CPU second':>15}")
    for r in speed:
        print(f"{r['what']:<40} {str(r['size']):>6} {r['per_s']:>16.1f} {r['per_cpu_s']:>15.1f}")
    if args.episodes:
        rows, tracking = success_table(args.episodes)
        result["success"], result["tracking"] = rows, tracking
        print(f"\nScripted policies over {args.episodes} seeded episodes (seeds 0..{args.episodes - 1})")
        print(
            f"{'task':<6} {'policy':<22} {'success':>8} {'median final dist (cm)':>23} {'median steps':>13}"
        )
        for r in rows:
            st = r["median_steps_to_first_success"]
            print(
                f"{r['task']:<6} {r['policy']:<22} {100 * r['success_rate']:>7.0f}% "
                f"{r['median_final_distance_cm']:>23.2f} {('-' if st is None else f'{st:.0f}'):>13}"
            )
        print("\nState tracking, mean |state_{t+1} - apply_action(state_t, a_t)| (random actions):")
        for task, t in tracking.items():
            print(
                f"  {task}: xyz {t['xyz_mm']} mm, rot {t['rot_mrad']} mrad, "
                f"gripper {t['gripper']} ({t['steps']} steps)"
            )
    if args.json:
        tmp = f"{args.json}.tmp-{os.getpid()}"
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa2_ac.envs.bench [options]`` (same options as ``vjepa2-ac bench envs``)."""
    parser = argparse.ArgumentParser(prog="vjepa2-ac bench envs", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
