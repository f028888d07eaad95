"""Planning baselines: a simulator oracle (upper bound) and random actions (lower bound).

**Oracle.** :class:`SimulatorEnergy` scores candidate action sequences with the *true* simulator: it
snapshots the MuJoCo state of the environment (``mujoco.mj_copyData`` into a scratch ``MjData``), then
for every candidate restores the snapshot, steps the env with the candidate's actions (image rendering
switched off) and reads the task distance of the simulated outcome (``info["distance"]``, metres).
The env is restored to the snapshot afterwards, so planning leaves the episode untouched. Plug it into
any planner (CEM gives the usual "CEM with a perfect model" upper bound) through
:class:`SimulatorObjective` in the MPC loop.

Requirements on the env (``env.unwrapped``): either ``get_sim_state()`` / ``set_sim_state(state)``
methods, or MuJoCo ``model`` and ``data`` attributes holding the simulation state (then ``data`` is copied
with ``mj_copyData`` and the env's Python attributes are restored shallowly, which resets caches such as
a memoised end-effector state); a ``step(action)`` returning ``info["distance"]`` (or pass ``cost_fn``);
optionally ``config.render_images`` (switched off while simulating so no frames are rendered).
``vjepa2_ac/Reach-v0`` and ``vjepa2_ac/Push-v0`` satisfy this.

**Random actions.** :class:`RandomActions` is a planner that ignores the energy and returns uniformly
random actions inside the action space.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
import torch

from vjepa2_ac.planners.base import (
    ActionSpace,
    EnergyFn,
    PlanResult,
    Timer,
    check_horizon_and_init,
    default_generator,
)
from vjepa2_ac.planners.random_shooting import sample_uniform

COSTS = ("final", "sum", "min")


def _is_mujoco(value: Any) -> bool:
    """MuJoCo objects (renderers, MjData scratch buffers) are left alone by the snapshot."""
    return type(value).__module__.startswith("mujoco")


def _distance_cost(info: dict) -> float:
    if "distance" not in info:
        raise KeyError(f"SimulatorEnergy: env info has no 'distance' (keys: {sorted(info)}); pass cost_fn=")
    return float(info["distance"])


class SimulatorEnergy:
    """Oracle energy ``actions[S, H, 7] -> [S]`` by simulating every candidate in the env.

    Args:
        env: the (possibly wrapped) environment; its current state is the start of every candidate.
        cost_fn: ``info -> float`` after each simulated step (default: ``info["distance"]``).
        aggregate: ``"final"`` (cost after the last step), ``"sum"`` or ``"min"`` over the H steps.
    """

    def __init__(self, env, cost_fn: Callable[[dict], float] | None = None, aggregate: str = "final") -> None:
        if aggregate not in COSTS:
            raise ValueError(f"SimulatorEnergy: aggregate must be one of {COSTS}, got {aggregate!r}")
        self.base = env.unwrapped
        for attr in ("model", "data"):
            if not hasattr(self.base, attr):
                raise TypeError(
                    f"SimulatorEnergy needs a MuJoCo env with .unwrapped.{attr}; "
                    f"{type(self.base).__name__} has none"
                )
        self.cost_fn = cost_fn or _distance_cost
        self.aggregate = aggregate
        self.simulated_steps = 0

    @contextlib.contextmanager
    def _no_render(self):
        cfg = getattr(self.base, "config", None)
        if cfg is None or not hasattr(cfg, "render_images"):
            yield
            return
        old = cfg.render_images
        cfg.render_images = False
        try:
            yield
        finally:
            cfg.render_images = old

    def _snapshot(self):
        """Full simulation state: the env's own ``get_sim_state()`` if it has one, else an ``MjData`` copy
        plus a shallow copy of the env's Python attributes (caches such as a memoised EE state)."""
        if hasattr(self.base, "get_sim_state") and hasattr(self.base, "set_sim_state"):
            return ("env", self.base.get_sim_state())
        model, data = self.base.model, self.base.data
        mj = mujoco.MjData(model)
        mujoco.mj_copyData(mj, model, data)
        attrs = {k: v for k, v in vars(self.base).items() if k not in ("model", "data") and not _is_mujoco(v)}
        return ("copy", (mj, attrs))

    def _restore(self, snapshot) -> None:
        kind, value = snapshot
        if kind == "env":
            self.base.set_sim_state(value)
            return
        mj, attrs = value
        mujoco.mj_copyData(self.base.data, self.base.model, mj)
        current = vars(self.base)
        for key in [
            k for k in current if k not in attrs and k not in ("model", "data") and not _is_mujoco(current[k])
        ]:
            del current[key]
        current.update(attrs)

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """Simulate ``actions[S, H, 7]`` from the current state; returns costs ``[S]`` (float32)."""
        if actions.ndim != 3 or actions.shape[-1] != 7:
            raise ValueError(f"SimulatorEnergy: actions must be [S, H, 7], got {tuple(actions.shape)}")
        snapshot = self._snapshot()
        acts = actions.detach().cpu().double().numpy()
        costs = np.empty(acts.shape[0])
        try:
            with self._no_render():
                for s in range(acts.shape[0]):
                    self._restore(snapshot)
                    per_step = []
                    for h in range(acts.shape[1]):
                        _, _, _, _, info = self.base.step(acts[s, h].astype(np.float32))
                        per_step.append(self.cost_fn(info))
                    self.simulated_steps += acts.shape[1]
                    costs[s] = {"final": per_step[-1], "sum": sum(per_step), "min": min(per_step)}[
                        self.aggregate
                    ]
        finally:
            self._restore(snapshot)
        return torch.from_numpy(costs).float()


class SimulatorObjective:
    """MPC objective for the oracle: ignores images, simulates candidates from the env's current state.

    ``encode_goal`` passes the goal through (the env knows its own task goal, used by ``cost_fn``).
    """

    def __init__(self, env, cost_fn: Callable[[dict], float] | None = None, aggregate: str = "final") -> None:
        self.env = env
        self.cost_fn = cost_fn
        self.aggregate = aggregate

    def encode_goal(self, goal: Any) -> Any:
        """The oracle scores the env's own task distance; the goal is only passed along."""
        return goal

    def __call__(self, observation: dict, goal: Any) -> SimulatorEnergy:
        """Energy simulating from the env's *current* state (``observation`` is not needed)."""
        return SimulatorEnergy(self.env, self.cost_fn, self.aggregate)


class RandomActions:
    """Lower-bound planner: uniformly random actions in the action space; never calls the energy."""

    def __init__(self, space: ActionSpace | None = None, seed: int = 0) -> None:
        self.space = space or ActionSpace()
        self.seed = seed

    def plan(
        self,
        energy_fn: EnergyFn,
        horizon: int,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """A random ``[H, 7]`` plan (``energy`` is NaN: nothing was evaluated)."""
        check_horizon_and_init(horizon, init, "RandomActions")
        gen = default_generator(generator, self.seed)
        with Timer() as timer:
            actions = sample_uniform(self.space, 1, horizon, gen, device)[0]
        return PlanResult(
            actions=actions,
            energy=float("nan"),
            trace={"best": [], "elite_mean": [], "mean": []},
            best_actions=actions,
            evaluations=0,
            seconds=timer.seconds,
        )
