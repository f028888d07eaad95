"""Model-predictive control loop: plan, execute the first action(s), observe, replan.

Written against a minimal environment protocol (a gymnasium env): ``reset(seed=...) -> (obs, info)``,
``step(action float32[7]) -> (obs, reward, terminated, truncated, info)`` with ``obs = {"image":
uint8[H, W, 3], "state": float32[7]}`` and optionally ``info["success"]``.

The loop is independent of what the energy is: an *objective* turns the current observation and a goal
into a planner energy function::

    z_goal = objective.encode_goal(goal)          # e.g. a goal image -> embedding
    energy_fn = objective(observation, z_goal)    # actions[S, H, 7] -> energy[S]

(:class:`vjepa2_ac.planners.energy.WorldModelObjective` for the world model,
:class:`vjepa2_ac.planners.baselines.SimulatorObjective` for the simulator oracle.)

Sub-goals (as in the paper's pick-and-place): a list of :class:`SubGoal` ``(goal, steps)``; the loop
plans towards each goal for its number of environment steps, then switches to the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vjepa2_ac.planners.base import Planner, shift_plan


@dataclass
class SubGoal:
    """Plan towards ``goal`` (image, embedding, anything the objective accepts) for ``steps`` env steps."""

    goal: Any
    steps: int

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"SubGoal.steps must be an int >= 1, got {self.steps!r}")


@dataclass
class MPCConfig:
    """MPC settings.

    Attributes:
        horizon: planned steps H per replanning.
        execute: actions of each plan executed before replanning (the first k; 1 = replan every step).
        warm_start: seed each plan with the previous plan shifted by ``execute`` steps.
        stop_on_success: stop once ``info["success"]`` is true while pursuing the *last* sub-goal.
        seed: seed of the planner's generator (one generator for the whole episode).
        progress: show a tqdm bar over environment steps.
    """

    horizon: int = 1
    execute: int = 1
    warm_start: bool = False
    stop_on_success: bool = True
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("horizon", "execute"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MPCConfig.{name} must be an int >= 1, got {value!r}")
        if self.execute > self.horizon:
            raise ValueError(f"MPCConfig.execute ({self.execute}) must be <= horizon ({self.horizon})")


@dataclass
class MPCStep:
    """One executed environment step."""

    t: int
    goal_index: int
    action: list[float]
    state: list[float]
    energy: float  # best planned energy of the plan this action came from
    plan_seconds: float  # time of that planning call (0 for actions 2..k of a plan)
    step_seconds: float
    success: bool
    reward: float
    replanned: bool


@dataclass
class MPCResult:
    """An MPC episode: per-step records plus the planners' energy traces."""

    steps: list[MPCStep] = field(default_factory=list)
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    seconds: float = 0.0
    energy_traces: list[dict[str, list[float]]] = field(default_factory=list)
    plans: list[list[list[float]]] = field(default_factory=list)
    final_info: dict[str, Any] = field(default_factory=dict)

    @property
    def actions(self) -> np.ndarray:
        """Executed actions ``[T, 7]``."""
        return np.array([s.action for s in self.steps], dtype=np.float32).reshape(-1, 7)

    @property
    def energies(self) -> np.ndarray:
        """Planned energy per executed step ``[T]``."""
        return np.array([s.energy for s in self.steps], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (``final_info`` keeps only scalar entries)."""
        info = {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in self.final_info.items()
            if isinstance(v, (bool, int, float, str, np.generic))
        }
        return {
            "success": self.success,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "seconds": self.seconds,
            "steps": [asdict(s) for s in self.steps],
            "energy_traces": self.energy_traces,
            "plans": self.plans,
            "final_info": info,
        }


def _as_subgoals(goals, steps: int | None) -> list[SubGoal]:
    if isinstance(goals, SubGoal):
        return [goals]
    if isinstance(goals, (list, tuple)) and goals and all(isinstance(g, SubGoal) for g in goals):
        return list(goals)
    if (
        isinstance(goals, (list, tuple))
        and goals
        and all(isinstance(g, tuple) and len(g) == 2 for g in goals)
    ):
        return [SubGoal(g, int(n)) for g, n in goals]
    if steps is None:
        raise ValueError("run_mpc: a single goal needs max_steps (or pass a list of SubGoal(goal, steps))")
    return [SubGoal(goals, steps)]


def run_mpc(
    env,
    planner: Planner,
    objective,
    goals,
    config: MPCConfig | None = None,
    max_steps: int | None = None,
    reset_seed: int | None = None,
    reset_options: dict | None = None,
    observation: dict | None = None,
    on_step: Callable[[MPCStep, dict, dict], None] | None = None,
) -> MPCResult:
    """Run one MPC episode.

    Args:
        env: gymnasium env (see the module docstring).
        planner: any planner (CEM, MPPI, gradient, random shooting, random actions).
        objective: ``encode_goal(goal)`` and ``objective(obs, encoded_goal) -> energy_fn``.
        goals: one goal (with ``max_steps``), or a list of :class:`SubGoal` / ``(goal, steps)`` pairs.
            The string ``"env"`` means ``env.unwrapped.goal_image()`` after reset.
        config: :class:`MPCConfig`.
        max_steps: env steps for a single goal.
        reset_seed / reset_options: passed to ``env.reset`` (ignored when ``observation`` is given).
        observation: start from this observation instead of resetting the env.
        on_step: called as ``on_step(step_record, observation, info)`` after every env step (e.g. to keep
            frames for a filmstrip).
    """
    config = config or MPCConfig()
    t_start = time.perf_counter()
    if observation is None:
        observation, _ = env.reset(seed=reset_seed, options=reset_options)
    if isinstance(goals, str) and goals == "env":
        goals = env.unwrapped.goal_image()
    subgoals = _as_subgoals(goals, max_steps)
    gen = torch.Generator().manual_seed(config.seed)
    result = MPCResult()
    t = 0
    info: dict[str, Any] = {}
    bar = tqdm(total=sum(g.steps for g in subgoals), desc="mpc", disable=not config.progress, leave=False)
    done = False
    for gi, sub in enumerate(subgoals):
        encoded = objective.encode_goal(sub.goal)
        previous = None
        remaining = sub.steps
        while remaining > 0 and not done:
            energy_fn = objective(observation, encoded)
            init = (
                shift_plan(previous, config.execute) if (config.warm_start and previous is not None) else None
            )
            t_plan = time.perf_counter()
            plan = planner.plan(energy_fn, config.horizon, init=init, generator=gen)
            plan_seconds = time.perf_counter() - t_plan
            result.energy_traces.append(plan.trace)
            previous = plan.actions.detach().cpu().float()
            result.plans.append(previous.tolist())
            for j in range(min(config.execute, remaining)):
                action = previous[j].numpy().astype(np.float32)
                t_step = time.perf_counter()
                observation, reward, terminated, truncated, info = env.step(action)
                success = bool(info.get("success", False))
                result.steps.append(
                    MPCStep(
                        t=t,
                        goal_index=gi,
                        action=[float(v) for v in action],
                        state=[float(v) for v in np.asarray(observation["state"]).reshape(-1)],
                        energy=float(plan.energy),
                        plan_seconds=plan_seconds if j == 0 else 0.0,
                        step_seconds=time.perf_counter() - t_step,
                        success=success,
                        reward=float(reward),
                        replanned=j == 0,
                    )
                )
                if on_step is not None:
                    on_step(result.steps[-1], observation, info)
                t += 1
                remaining -= 1
                bar.update(1)
                result.terminated, result.truncated = bool(terminated), bool(truncated)
                last_goal = gi == len(subgoals) - 1
                if terminated or truncated or (config.stop_on_success and success and last_goal):
                    done = True
                    break
        if done:
            break
    bar.close()
    result.success = bool(info.get("success", False))
    result.final_info = dict(info)
    result.seconds = time.perf_counter() - t_start
    return result
