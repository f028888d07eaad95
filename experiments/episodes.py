"""Episode distributions and data collection for the simulated tasks, shared by ``demo`` and ``plan``.

Reach uses the env's own start/goal distribution. For Push two distributions exist:

* ``env``: the env's default (EE anywhere at 8-25 cm height, >= 10 cm from the block, goal 10-20 cm
  away in a random direction). Greedy goal-image planning cannot solve most of these episodes: the arm
  would first have to go *around* the block, which a one-step energy never asks for.
* ``aligned`` (our default for planning evaluations, documented in ``docs/experiments.md``): the block
  starts as in the env, the goal is 10-20 cm away in a random direction, and the closed gripper starts
  at pushing height 6-10 cm *behind* the block on the push line (+-1 cm sideways). This is the
  "block in front of the gripper" setting of the push experiments in the V-JEPA 2-AC paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Registers the gymnasium ids and sets MUJOCO_GL=egl before anything imports MuJoCo.
import vjepa2_ac.envs  # noqa: F401

TASKS = ("reach", "push")
PUSH_STARTS = ("aligned", "env")
# Sideways range (metres) of the gripper's start off the push line in aligned push episodes (evaluations).
PUSH_SIDE_OFFSET = 0.01


def check_task(task: str) -> str:
    """Return ``task`` or raise a clear error naming the valid tasks."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def make_env(task: str, image_size: int, camera: str = "exterior_1", max_episode_steps: int | None = None):
    """A rendering gymnasium env of ``task`` (``vjepa2_ac/Reach-v0`` / ``vjepa2_ac/Push-v0``)."""
    import gymnasium as gym

    from vjepa2_ac.envs import task_env_id

    kwargs = {"render_mode": "rgb_array", "image_size": image_size, "camera": camera}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(task_env_id(check_task(task)), **kwargs)


def push_aligned_options(rng: np.random.Generator, side_offset: float = PUSH_SIDE_OFFSET) -> dict:
    """Reset options of one "aligned" push episode (see the module docstring): the gripper starts up to
    ``side_offset`` metres sideways of the push line."""
    from vjepa2_ac.envs import PushEnv

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


def reset_episode(
    env, task: str, seed: int, push_start: str = "aligned", side_offset: float = PUSH_SIDE_OFFSET
):
    """Reset ``env`` to the seeded episode ``seed`` of ``task``; returns ``(obs, info)``.

    ``side_offset``: the aligned push start's sideways range (metres; evaluations use the default).
    """
    if push_start not in PUSH_STARTS:
        raise ValueError(f"push_start must be one of {PUSH_STARTS}, got {push_start!r}")
    if task == "push" and push_start == "aligned":
        options = push_aligned_options(np.random.default_rng([seed, 7]), side_offset)
        return env.reset(seed=seed, options=options)
    return env.reset(seed=seed)


def positions(task: str, obs: dict, info: dict) -> np.ndarray:
    """Probe targets ``[6]``: EE xyz and block xyz (NaN for reach, which has no block)."""
    ee = np.asarray(obs["state"][:3], np.float32)
    block = np.asarray(info["block_pos"], np.float32) if task == "push" else np.full(3, np.nan, np.float32)
    return np.concatenate([ee, block])


@dataclass
class CollectConfig:
    """How training episodes are generated.

    Attributes:
        episodes: episodes per task.
        steps: actions per episode (frames = steps + 1).
        directed_fraction: fraction of episodes driven by a noisy goal-directed controller (reach: towards
            the goal; push: along the push line), the rest by uniform random actions.
        noise: std (metres) of the Gaussian noise added to the directed controller.
        max_delta: per-axis action bound (metres) for reach.
        push_max_delta: per-axis action bound for push: slow pushes stay quasi-static (the planner's
            push bound is 2 cm, as the env's scripted expert).
        contact_episodes: extra push episodes for the predictor stage only (the encoder never sees
            them), all driven by the directed controller from starts up to ``contact_side_offset``
            sideways of the push line. Planned pushes fail by sliding off the side of the block; these
            episodes show the predictor off-centre contacts and their corrections. 0 (the default)
            disables them: 300 such episodes raised the predicted one-step block motion from 1.8 to
            2.1 cm (of 2.65 cm moved) but not push success (docs/experiments.md).
        contact_side_offset: sideways start range (metres) of the contact episodes (evaluation: 1 cm).
    """

    episodes: int = 600
    steps: int = 20
    directed_fraction: float = 0.6
    noise: float = 0.015
    max_delta: float = 0.05
    push_max_delta: float = 0.025
    contact_episodes: int = 0
    contact_side_offset: float = 0.03

    def __post_init__(self) -> None:
        if not isinstance(self.contact_episodes, int) or self.contact_episodes < 0:
            raise ValueError(
                f"CollectConfig.contact_episodes must be an int >= 0, got {self.contact_episodes!r}"
            )
        if not 0.0 <= self.contact_side_offset <= 0.05:
            raise ValueError(
                f"CollectConfig.contact_side_offset must be in [0, 0.05] m, got {self.contact_side_offset}"
            )
        if self.episodes < 1 or self.steps < 1:
            raise ValueError(
                f"CollectConfig: episodes and steps must be >= 1, got {self.episodes}, {self.steps}"
            )
        if not 0.0 <= self.directed_fraction <= 1.0:
            raise ValueError(
                f"CollectConfig.directed_fraction must be in [0, 1], got {self.directed_fraction}"
            )


def _directed_target(task: str, env, info: dict) -> np.ndarray:
    if task == "reach":
        return np.asarray(info["goal_pos"], np.float64)
    return np.asarray(env.unwrapped.goal_ee_state()[:3], np.float64)


def collect_task(
    task: str,
    cfg: CollectConfig,
    seed: int,
    image_size: int,
    camera: str = "exterior_1",
    progress: bool = True,
    contact: bool = False,
) -> dict[str, np.ndarray]:
    """Roll out ``cfg.episodes`` training episodes of ``task`` (``contact``: ``cfg.contact_episodes``
    directed push episodes from wider sideways starts instead, see :class:`CollectConfig`).

    Returns ``images uint8[E, T+1, H, W, 3]``, ``states float32[E, T+1, 7]``, ``actions float32[E, T, 7]``
    (the commanded actions), ``positions float32[E, T+1, 6]`` (EE xyz, block xyz / NaN).
    Episode ``i`` uses env seed ``seed + i``; training seeds should differ from evaluation seeds.
    """
    from tqdm import tqdm

    if contact and task != "push":
        raise ValueError(f"contact episodes exist only for push, got task {task!r}")
    env = make_env(task, image_size, camera, max_episode_steps=cfg.steps + 1)
    rng = np.random.default_rng([seed, 11])
    e, t = (cfg.contact_episodes if contact else cfg.episodes), cfg.steps
    side = cfg.contact_side_offset if contact else PUSH_SIDE_OFFSET
    images = np.zeros((e, t + 1, image_size, image_size, 3), np.uint8)
    states = np.zeros((e, t + 1, 7), np.float32)
    actions = np.zeros((e, t, 7), np.float32)
    pos = np.zeros((e, t + 1, 6), np.float32)
    bound = cfg.push_max_delta if task == "push" else cfg.max_delta
    for i in tqdm(range(e), desc=f"collect {task}", disable=not progress, leave=False):
        obs, info = reset_episode(env, task, seed + i, side_offset=side)
        directed = contact or rng.random() < cfg.directed_fraction
        gain = rng.uniform(0.4, 1.0)
        images[i, 0], states[i, 0], pos[i, 0] = obs["image"], obs["state"], positions(task, obs, info)
        for j in range(t):
            a = np.zeros(7)
            if directed:
                tgt = _directed_target(task, env, info)
                noise = rng.normal(0.0, cfg.noise * bound / cfg.max_delta, 3)
                a[:3] = gain * (tgt - obs["state"][:3]) + noise
            else:
                a[:3] = rng.uniform(-bound, bound, 3) * (rng.uniform(0.2, 1.0))
            a[:3] = np.clip(a[:3], -bound, bound)
            obs, _, _, _, info = env.step(a.astype(np.float32))
            actions[i, j] = a
            images[i, j + 1], states[i, j + 1] = obs["image"], obs["state"]
            pos[i, j + 1] = positions(task, obs, info)
    env.close()
    return {"images": images, "states": states, "actions": actions, "positions": pos}
