"""Simulated MuJoCo tabletop tasks (reach, push) with a gymnasium API, scripted experts and collection.

Importing this package registers ``vjepa2_ac/Reach-v0`` and ``vjepa2_ac/Push-v0``, and the
Gymnasium-Robotics adapters ``vjepa2_ac/FetchReach-v4`` and ``vjepa2_ac/FetchPush-v4``
(:mod:`vjepa2_ac.envs.fetch`, which need the ``fetch`` extra)::

    import gymnasium as gym
    import vjepa2_ac.envs  # noqa: F401  (registers the ids)

    env = gym.make("vjepa2_ac/Reach-v0", render_mode="rgb_array", image_size=64)

Headless rendering: ``MUJOCO_GL`` defaults to ``egl`` (Mesa llvmpipe works without a GPU); it must be
set before MuJoCo is first imported, which is why it is set here before any other import.
"""

import os

_GL = os.environ.setdefault("MUJOCO_GL", "egl")
if _GL in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", _GL)

from gymnasium.envs.registration import register, registry  # noqa: E402

from vjepa2_ac.envs.fetch import EPISODE_STEPS as FETCH_EPISODE_STEPS  # noqa: E402
from vjepa2_ac.envs.fetch import FETCH_ENVS  # noqa: E402
from vjepa2_ac.envs.tasks import (  # noqa: E402
    ENV_IDS,
    MAX_EPISODE_STEPS,
    TASKS,
    ArmEnv,
    ArmEnvConfig,
    PushEnv,
    ReachEnv,
    task_env_id,
)

# Gymnasium-Robotics Fetch tasks behind the same interface (need the `fetch` extra at make time).
FETCH_ENV_IDS = {fetch_id: f"vjepa2_ac/{fetch_id}" for fetch_id in FETCH_ENVS}
for _fetch_id, _env_id in FETCH_ENV_IDS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="vjepa2_ac.envs.fetch:FetchAdapter",
            kwargs={"env_id": _fetch_id},
            max_episode_steps=FETCH_EPISODE_STEPS,
        )

for _task, _env_id in ENV_IDS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point=f"vjepa2_ac.envs.tasks:{TASKS[_task].__name__}",
            max_episode_steps=MAX_EPISODE_STEPS[_task],
        )

__all__ = [
    "ArmEnv",
    "ArmEnvConfig",
    "ReachEnv",
    "PushEnv",
    "TASKS",
    "ENV_IDS",
    "MAX_EPISODE_STEPS",
    "task_env_id",
    "FETCH_ENV_IDS",
]
