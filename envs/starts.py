"""Start distributions of the simulated tasks, shared by ``collect`` and ``plan``.

Reach and the Fetch tasks use the env's own start/goal distribution. Push has two:

* ``env``: the env's default (EE anywhere at 8-25 cm height, >= 10 cm from the block, goal 10-20 cm away
  in a random direction). A single goal image cannot solve most of these episodes: the arm would first
  have to go *around* the block, which an energy to the final image never asks for; sub-goal images can.
* ``aligned``: the block starts as in the env, the goal is 10-20 cm away in a random direction, and the
  closed gripper starts at pushing height 6-10 cm *behind* the block on the push line (up to
  ``PUSH_SIDE_OFFSET`` sideways), a block face turned towards it. This is the "block in front of the
  gripper" setting of the push experiments in the V-JEPA 2-AC paper.

Episode ``seed`` of a start distribution is a pure function of the seed.
"""

from __future__ import annotations

import math

import numpy as np

from vjepa2_ac.envs.fetch import EPISODE_STEPS as FETCH_EPISODE_STEPS
from vjepa2_ac.envs.fetch import FETCH_ENVS

TASKS = ("reach", "push")
# Everything `collect` and `plan` run: the package's own tasks and the Gymnasium-Robotics Fetch envs.
ALL_TASKS = TASKS + tuple(FETCH_ENVS)
PUSH_STARTS = ("aligned", "env")
# Sideways range (metres) of the gripper's start off the push line in aligned push episodes.
PUSH_SIDE_OFFSET = 0.01


def check_task(task: str) -> str:
    """Return ``task`` or raise a clear error naming the valid tasks."""
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(ALL_TASKS)}")
    return task


def add_task_arguments(parser, task_help: str) -> None:
    """``--task`` (the package's own tasks) or ``--env`` (a Gymnasium-Robotics id), one required; both
    land in ``args.task``."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help=task_help)
    which.add_argument(
        "--env",
        dest="task",
        metavar="ENV_ID",
        help=f"a Gymnasium-Robotics task: {' or '.join(FETCH_ENVS)} (the fetch extra)",
    )


def require_available(task: str) -> None:
    """A ValueError naming ``--env`` and the install command when ``task`` is a Fetch env that cannot run
    here."""
    if check_task(task) in FETCH_ENVS:
        from vjepa2_ac.envs.fetch import fetch_available

        ok, why = fetch_available()
        if not ok:
            raise ValueError(f"--env {task}: {why}")


def task_kind(task: str) -> str:
    """``reach`` or ``push``: which expert, defaults and metrics a task uses."""
    return FETCH_ENVS.get(check_task(task), task)


def episode_steps(task: str) -> int:
    """The task's own episode length in control steps."""
    from vjepa2_ac.envs.tasks import MAX_EPISODE_STEPS

    return FETCH_EPISODE_STEPS if check_task(task) in FETCH_ENVS else MAX_EPISODE_STEPS[task]


def env_id(task: str) -> str:
    """The gymnasium id this package registers for ``task``."""
    from vjepa2_ac.envs import FETCH_ENV_IDS, task_env_id

    return FETCH_ENV_IDS[task] if check_task(task) in FETCH_ENVS else task_env_id(task)


def build_env(task: str, image_size: int, camera: str = "exterior_1"):
    """The bare (unwrapped, no time limit) rendering env of ``task``."""
    if check_task(task) in FETCH_ENVS:
        from vjepa2_ac.envs.fetch import FetchAdapter

        return FetchAdapter(task, image_size=image_size, camera=camera)
    from vjepa2_ac.envs.tasks import TASKS as ENV_CLASSES

    return ENV_CLASSES[task](image_size=image_size, camera=camera)


def make_env(task: str, image_size: int, camera: str = "exterior_1", max_episode_steps: int | None = None):
    """A rendering gymnasium env of ``task`` (``vjepa2_ac/Reach-v0``, ``vjepa2_ac/Push-v0``,
    ``vjepa2_ac/FetchReach-v4``, ``vjepa2_ac/FetchPush-v4``)."""
    import gymnasium as gym

    kwargs = {"render_mode": "rgb_array", "image_size": image_size, "camera": camera}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id(task), **kwargs)


def push_aligned_options(rng: np.random.Generator, side_offset: float = PUSH_SIDE_OFFSET) -> dict:
    """Reset options of one ``aligned`` push episode: the gripper starts up to ``side_offset`` metres
    sideways of the push line."""
    from vjepa2_ac.envs.tasks import PushEnv

    while True:
        block = PushEnv.BLOCK_LOW + (PushEnv.BLOCK_HIGH - PushEnv.BLOCK_LOW) * rng.random(2)
        angle = rng.uniform(-math.pi, math.pi)
        u = np.array([math.cos(angle), math.sin(angle)])
        goal = block + rng.uniform(0.10, 0.20) * u
        back = rng.uniform(0.06, 0.10)
        side = rng.uniform(-side_offset, side_offset)
        ee_xy = block - back * u + side * np.array([-u[1], u[0]])
        ok_goal = np.all(goal >= PushEnv.GOAL_LOW) and np.all(goal <= PushEnv.GOAL_HIGH)
        ok_ee = 0.27 <= ee_xy[0] <= 0.78 and abs(ee_xy[1]) <= 0.33
        if ok_goal and ok_ee:
            break
    # A block face is turned towards the gripper (+-10 degrees): pushing a cube on an edge makes it spin
    # away sideways, which no single straight push corrects.
    yaw = (angle + math.pi / 4) % (math.pi / 2) - math.pi / 4 + rng.uniform(-0.17, 0.17)
    z = PushEnv.PUSH_HEIGHT + rng.uniform(0.0, 0.01)
    return {
        "ee_start": [float(ee_xy[0]), float(ee_xy[1]), float(z)],
        "block_start": [float(block[0]), float(block[1]), float(yaw)],
        "goal": [float(goal[0]), float(goal[1])],
    }


def reset_episode(env, task: str, seed: int, push_start: str = "aligned"):
    """Reset ``env`` to the seeded episode ``seed`` of ``task``; returns ``(obs, info)``."""
    if push_start not in PUSH_STARTS:
        raise ValueError(f"push_start must be one of {PUSH_STARTS}, got {push_start!r}")
    if check_task(task) == "push" and push_start == "aligned":
        options = push_aligned_options(np.random.default_rng([seed, 7]))
        return env.reset(seed=seed, options=options)
    return env.reset(seed=seed)
