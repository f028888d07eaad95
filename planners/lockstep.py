"""Closed-loop planning of many episodes in lockstep: the MPC loop behind ``vjepa2-ac plan`` and ``demo``.

Each MPC step, one policy call plans the next token-step action of every still-running episode (one
predictor or encoder call serves them all), and every action is executed as the control steps of its
token step (:mod:`vjepa2_ac.planners.execution`). Policies:

* :class:`WorldModelCEM`: batched CEM on a :class:`~vjepa2_ac.WorldModel`'s energy, the mean L1 between
  the predicted embedding after ``H`` steps and the goal image's embedding;
* :class:`OracleCEM`: the same CEM and image energy, but every candidate is simulated by the true
  simulator from a snapshot, rendered and encoded (the world model's upper bound), or scored by the true
  task distance (``kind="distance"``);
* :class:`RandomPolicy`: uniform random xyz actions;
* :class:`SinglePlanner`: any planner of this package (CEM, MPPI, gradient, random shooting), one
  episode at a time.

Goals are sequences of sub-goal images, each pursued for a number of token steps (the last until the
episode ends), the paper's protocol for multi-stage tasks. An episode's plans depend only on its own
seeded generator, never on which other episodes share its batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from vjepa2_ac.planners.base import ActionSpace
from vjepa2_ac.planners.cem import CEM, CEMConfig, shift_plans
from vjepa2_ac.planners.execution import TokenTracker, control_actions

__all__ = [
    "SubGoal",
    "EpisodeTrace",
    "LockstepCEM",
    "WorldModelCEM",
    "OracleCEM",
    "RandomPolicy",
    "SinglePlanner",
    "run_lockstep",
    "snapshot",
    "restore",
]


@dataclass
class SubGoal:
    """Pursue the goal image ``image`` (uint8 ``[H, W, 3]``) for ``steps`` token steps (None: to the end)."""

    image: np.ndarray
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"SubGoal.steps must be None or an int >= 1, got {self.steps!r}")


@dataclass
class EpisodeTrace:
    """What happened in one episode (control-step traces start with the reset observation)."""

    distance: list[float] = field(default_factory=list)  # per control step
    ee: list[list[float]] = field(default_factory=list)  # per control step
    block: list[list[float]] | None = None  # per control step (push)
    frames: list[np.ndarray] = field(default_factory=list)  # per control step, when recorded
    actions: list[list[float]] = field(default_factory=list)  # per token step (xyz)
    energy: list[float] = field(default_factory=list)  # per token step: energy of the chosen plan
    observed_energy: list[float] = field(default_factory=list)  # per token step (world model only)
    planning_s: list[float] = field(default_factory=list)  # per token step
    subgoal: list[int] = field(default_factory=list)  # per token step: index of the pursued sub-goal
    last_info: dict | None = None
    steps: int = 0  # token steps executed


# ----------------------------------------------------------------------------------------- simulation
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
    """Restore a :func:`snapshot`: the next steps are identical to stepping from the snapshot."""
    import mujoco

    u = env.unwrapped
    if hasattr(u, "set_sim_state") and isinstance(snap, dict):
        u.set_sim_state(snap)
        return
    mujoco.mj_copyData(u.data, u.model, snap)
    mujoco.mj_forward(u.model, u.data)
    if hasattr(u, "_state_cache"):
        u._state_cache = None


def simulate_tokens(
    env, sequences: np.ndarray, frames: np.ndarray, s_first: np.ndarray, s_now: np.ndarray, render: bool
) -> tuple[list[np.ndarray], list[float]]:
    """Outcomes of token-action ``sequences[S, H, 7]`` from the env's current state (restored after).

    Returns each sequence's last ``k`` frames (``uint8[k, H, W, 3]``, what the model would encode; only
    rendered when ``render``) and its final task distance. ``frames``: the current ``k`` frames.
    """
    u = env.unwrapped
    k = len(frames)
    snap = snapshot(env)
    keep_render = u.config.render_images
    outs, dists = [], []
    try:
        for seq in sequences:
            restore(env, snap)
            first, now, recent = s_first, s_now, list(frames)
            for h, a in enumerate(seq):
                for j, c in enumerate(control_actions(a, first, now, k)):
                    last = h == len(seq) - 1
                    u.config.render_images = render and last
                    obs, _, _, _, info = u.step(c)
                    now = np.asarray(obs["state"], np.float32)
                    if j == 0:
                        first = now
                    if render and last:
                        recent = (recent + [obs["image"]])[-k:]
            outs.append(np.stack(recent))
            dists.append(float(info["distance"]))
    finally:
        restore(env, snap)
        u.config.render_images = keep_render
    return outs, dists


# ----------------------------------------------------------------------------------------- policies
def _generators(seeds: list[int]) -> list[torch.Generator]:
    """One generator per episode, from the episode's own seed (its plans never depend on its batch)."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


class LockstepCEM:
    """Batched CEM over the active episodes: each episode draws from its own generator and, with
    ``warm_start``, starts from its previous plan shifted by one step (otherwise from the zero mean).
    Where an energy is flat (push before contact), a warm start turns the elite mean's noise into a
    persistent drift, so the default is off."""

    def __init__(self, cfg: CEMConfig, horizon: int, warm_start: bool) -> None:
        self.cem, self.horizon, self.warm_start = CEM(cfg), horizon, warm_start

    def reset(self, seeds: list[int]) -> None:
        self.gens = _generators(seeds)
        self.prev: torch.Tensor | None = None  # [n, H, 7], the last plans (warm start only)
        self.n = len(seeds)

    def plan(self, fn, active: list[int]) -> tuple[torch.Tensor, np.ndarray]:
        """Plans ``[A, H, 7]`` of the active episodes under ``fn`` (``[A, S, H, 7] -> [A, S]``) and the
        energy of each returned plan ``[A]``."""
        idx = torch.tensor(active)
        init = None if self.prev is None else shift_plans(self.prev[idx])
        results = self.cem.plan_batch(
            fn, len(active), self.horizon, init, [self.gens[i] for i in active], score_plan=True
        )
        plans = torch.stack([r.actions for r in results])
        if self.warm_start:
            if self.prev is None:
                self.prev = torch.zeros(self.n, self.horizon, 7)
            self.prev[idx] = plans
        return plans, np.array([r.plan_energy for r in results], dtype=np.float32)


class _GoalEncoder:
    """Goal embeddings ``[E, N, D]`` of each episode's current sub-goal image (a still scene)."""

    def __init__(self, model) -> None:
        self.model = model

    def reset(self, n: int) -> None:
        self.z: list[torch.Tensor | None] = [None] * n

    @torch.no_grad()
    def set(self, episodes: list[int], images: list[np.ndarray]) -> None:
        z = self.model.encode_observation(torch.from_numpy(np.stack(images))[:, None])
        for i, zi in zip(episodes, z):
            self.z[i] = zi

    def get(self, active: list[int]) -> torch.Tensor:
        return torch.stack([self.z[i] for i in active])


class WorldModelCEM:
    """Batched CEM on a world model's energy (all active episodes in one predictor call).

    ``action_cost`` > 0 adds ``action_cost * sum |a_xyz|`` (metres over the horizon) to each candidate's
    energy. ``stop_energy``: hold still while the observed frame's energy to the goal is below it.
    ``use_cache=False`` re-runs the predictor over the whole growing sequence at every rollout step (the
    official planner's scheme; same energies, for speed comparisons).
    """

    def __init__(
        self,
        model,
        cfg: CEMConfig,
        horizon: int,
        stop_energy: float | None = None,
        action_cost: float = 0.0,
        warm_start: bool = False,
        use_cache: bool = True,
    ) -> None:
        self.model, self.stop_energy, self.action_cost = model, stop_energy, action_cost
        self.use_cache = use_cache
        self.search = LockstepCEM(cfg, horizon, warm_start)
        self.goals = _GoalEncoder(model)

    def reset(self, seeds: list[int]) -> None:
        self.search.reset(seeds)
        self.goals.reset(len(seeds))

    def energy_fn(self, z_cur: torch.Tensor, s_first: torch.Tensor, z_goal: torch.Tensor):
        """``actions[A, S, H, 7] -> energy[A, S]`` from ``z_cur[A, N, D]``, ``s_first[A, 7]``."""

        def fn(actions: torch.Tensor) -> torch.Tensor:
            a, s, h = actions.shape[:3]
            n, d = z_cur.shape[-2:]
            z0 = z_cur[:, None, None].expand(a, s, 1, n, d).reshape(a * s, 1, n, d)
            s0 = s_first[:, None, None].expand(a, s, 1, 7).reshape(a * s, 1, 7)
            with torch.no_grad():
                z, _ = self.model.rollout(z0, s0, actions.reshape(a * s, h, 7), use_cache=self.use_cache)
            out = self.model.energy(z[:, -1].view(a, s, n, d), z_goal[:, None]).float()
            if self.action_cost:
                out = out + self.action_cost * actions[..., :3].abs().sum(dim=(-2, -1))
            return out

        return fn

    def act(self, active: list[int], tracker: TokenTracker):
        frames = torch.from_numpy(np.stack([tracker.frames(i) for i in active]))
        with torch.no_grad():
            z_cur = self.model.encode_observation(frames)  # [A, N, D]
        s_first = torch.from_numpy(np.stack([tracker.first_state[i] for i in active])).float()
        z_goal = self.goals.get(active)
        plans, plan_energy = self.search.plan(self.energy_fn(z_cur, s_first, z_goal), active)
        actions = plans[:, 0].numpy().copy()
        observed = self.model.energy(z_cur, z_goal).float().numpy()
        if self.stop_energy is not None:
            actions[observed < self.stop_energy] = 0.0
        return actions, plan_energy, observed


class OracleCEM:
    """Batched CEM whose candidates are simulated by the true simulator (see the module docstring)."""

    def __init__(self, model, cfg: CEMConfig, horizon: int, kind: str, envs, warm_start: bool = False):
        if kind not in ("image", "distance"):
            raise ValueError(f"OracleCEM: kind must be 'image' or 'distance', got {kind!r}")
        self.model, self.kind, self.envs = model, kind, envs
        self.search = LockstepCEM(cfg, horizon, warm_start)
        # The distance oracle needs no goal image (and no model).
        self.goals = _GoalEncoder(model) if kind == "image" else None

    def reset(self, seeds: list[int]) -> None:
        self.search.reset(seeds)
        if self.goals is not None:
            self.goals.reset(len(seeds))

    def act(self, active: list[int], tracker: TokenTracker):
        z_goal = self.goals.get(active) if self.goals is not None else None

        def fn(actions: torch.Tensor) -> torch.Tensor:  # [A, S, H, 7] -> [A, S]
            a, s = actions.shape[:2]
            outs, dists = [], []
            for j, i in enumerate(active):
                o, d = simulate_tokens(
                    self.envs[i],
                    actions[j].numpy(),
                    tracker.frames(i),
                    tracker.first_state[i],
                    tracker.now_state[i],
                    render=self.kind == "image",
                )
                outs += o
                dists += d
            if self.kind == "distance":
                return torch.tensor(dists).view(a, s)
            with torch.no_grad():
                z = self.model.encode_observation(torch.from_numpy(np.stack(outs)))
            return self.model.energy(z.view(a, s, *z.shape[1:]), z_goal[:, None]).float()

        plans, plan_energy = self.search.plan(fn, active)
        return plans[:, 0].numpy(), plan_energy, None


class RandomPolicy:
    """Uniform random xyz actions within ``±maxnorm`` (rotation and gripper unchanged)."""

    def __init__(self, maxnorm: float) -> None:
        self.maxnorm = maxnorm
        self.goals = None

    def reset(self, seeds: list[int]) -> None:
        self.rngs = [np.random.default_rng(int(s)) for s in seeds]

    def act(self, active: list[int], tracker: TokenTracker):
        a = np.zeros((len(active), 7), np.float32)
        for j, i in enumerate(active):
            a[j, :3] = self.rngs[i].uniform(-self.maxnorm, self.maxnorm, 3)
        return a, np.full(len(active), np.nan), None


class SinglePlanner:
    """One of this package's planners (``cem``, ``mppi``, ``gd``, ``random_shooting``) per episode."""

    def __init__(
        self, model, name: str, samples: int, iterations: int, topk: int, maxnorm: float, horizon: int
    ) -> None:
        space = ActionSpace(maxnorm=maxnorm, fixed={6: 0.0})
        if name == "cem":
            self.planner = CEM(CEMConfig(samples=samples, iterations=iterations, topk=topk, space=space))
        elif name == "mppi":
            from vjepa2_ac.planners.mppi import MPPI, MPPIConfig

            self.planner = MPPI(MPPIConfig(samples=samples, iterations=iterations, space=space))
        elif name == "gd":
            from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner

            self.planner = GradientPlanner(GradientConfig(steps=max(iterations, 10), space=space))
        elif name == "random_shooting":
            from vjepa2_ac.planners.random_shooting import RandomShooting, RandomShootingConfig

            self.planner = RandomShooting(RandomShootingConfig(samples=samples * iterations, space=space))
        else:
            raise ValueError(f"SinglePlanner: unknown planner {name!r}")
        self.model, self.name, self.horizon = model, name, horizon
        self.goals = _GoalEncoder(model)

    def reset(self, seeds: list[int]) -> None:
        self.gens = _generators(seeds)
        self.goals.reset(len(seeds))

    def act(self, active: list[int], tracker: TokenTracker):
        frames = torch.from_numpy(np.stack([tracker.frames(i) for i in active]))
        with torch.no_grad():
            z_cur = self.model.encode_observation(frames)
        acts, energies = [], []
        for j, i in enumerate(active):
            z0, zg = z_cur[j : j + 1, None], self.goals.z[i]
            s0 = torch.from_numpy(tracker.first_state[i]).float()[None, None]

            def fn(actions: torch.Tensor, z0=z0, s0=s0, zg=zg) -> torch.Tensor:  # [S, H, 7] -> [S]
                z, _ = self.model.rollout(z0, s0, actions)
                return self.model.energy(z[:, -1], zg)

            with torch.set_grad_enabled(self.name == "gd"):
                res = self.planner.plan(fn, self.horizon, generator=self.gens[i])
            acts.append(res.actions[0].detach().float().numpy())
            energies.append(float(res.energy))
        return np.stack(acts).astype(np.float32), np.asarray(energies), None


# ----------------------------------------------------------------------------------------- the loop
def run_lockstep(
    policy,
    envs: list,
    seeds: list[int],
    starts: list[tuple[dict, dict]],
    goals: list[list[SubGoal]],
    max_steps: int,
    frames_per_step: int,
    record_frames: list[bool] | None = None,
    on_step: Callable[[int, int, np.ndarray, TokenTracker], None] | None = None,
    redraw: Callable[[int, dict, dict, int], list[SubGoal]] | None = None,
    redraw_every: int = 0,
) -> list[EpisodeTrace]:
    """Run ``len(envs)`` episodes (already reset: ``starts[i] = (obs, info)``) in lockstep.

    Args:
        policy: one of this module's policies (``reset(seeds)``, ``act(active, tracker)``; a ``goals``
            attribute with ``set(episodes, images)`` if it uses goal images).
        seeds: per episode, the seed of its planner's random numbers.
        goals: per episode, its sub-goals in order.
        max_steps: token steps per episode (each executes ``frames_per_step`` control steps).
        record_frames: per episode, whether to keep every frame in the trace.
        on_step: called as ``on_step(episode, step, action, tracker)`` before each action is executed
            (the environment is still in the state the action was planned from; used for landscapes).
        redraw: with ``redraw_every > 0``, called as ``redraw(episode, obs, info, control_steps_left)``
            after every ``redraw_every``-th token step of an episode that has not ended; its sub-goals
            replace the episode's, and the first of them is pursued at once (closed-loop sub-goals).
    """
    n = len(envs)
    if not (len(starts) == len(goals) == len(seeds) == n):
        raise ValueError(
            f"run_lockstep: {n} envs, {len(seeds)} seeds, {len(starts)} starts and {len(goals)} goal lists"
        )
    record_frames = record_frames or [False] * n
    if redraw_every < 0 or (redraw_every > 0 and redraw is None):
        raise ValueError(
            f"run_lockstep: redraw_every must be 0, or > 0 with a redraw callback, got {redraw_every}"
        )
    goals = list(goals)  # redraws replace entries; the caller's list stays as given
    tracker = TokenTracker(n, frames_per_step)
    traces = [EpisodeTrace() for _ in range(n)]
    policy.reset(seeds)
    current = [0] * n  # index of each episode's current sub-goal
    left = [g[0].steps for g in goals]  # token steps left on the current sub-goal (None: unlimited)
    for i, (obs, info) in enumerate(starts):
        tracker.observe_reset(i, obs)
        _record(traces[i], obs, info, record_frames[i])
    if getattr(policy, "goals", None) is not None:
        policy.goals.set(list(range(n)), [g[0].image for g in goals])
    active = list(range(n))
    for step in range(max_steps):
        if not active:
            break
        t0 = time.perf_counter()
        actions, plan_energy, observed = policy.act(active, tracker)
        per_episode = (time.perf_counter() - t0) / len(active)
        switched: list[int] = []
        for j, i in enumerate(list(active)):
            tr = traces[i]
            if on_step is not None:
                on_step(i, step, actions[j], tracker)
            done = False
            for c, delta in enumerate(tracker.control_actions(i, actions[j])):
                obs, _, terminated, truncated, info = envs[i].step(delta)
                tracker.observe_step(i, obs, c)
                _record(tr, obs, info, record_frames[i])
                if terminated or truncated:
                    done = True
                    break
            tr.steps += 1
            tr.actions.append([float(v) for v in actions[j][:3]])
            if np.isfinite(plan_energy[j]):
                tr.energy.append(float(plan_energy[j]))
            if observed is not None:
                tr.observed_energy.append(float(observed[j]))
            tr.planning_s.append(per_episode)
            tr.subgoal.append(current[i])
            if done:
                active.remove(i)
                continue
            if redraw_every and (step + 1) % redraw_every == 0:
                goals[i] = redraw(i, obs, info, (max_steps - step - 1) * frames_per_step)
                current[i], left[i] = 0, goals[i][0].steps
                switched.append(i)
            elif left[i] is not None:
                left[i] -= 1
                if left[i] == 0 and current[i] + 1 < len(goals[i]):
                    current[i] += 1
                    left[i] = goals[i][current[i]].steps
                    switched.append(i)
        if switched and getattr(policy, "goals", None) is not None:
            policy.goals.set(switched, [goals[i][current[i]].image for i in switched])
    return traces


def _record(tr: EpisodeTrace, obs: dict, info: dict, frames: bool) -> None:
    tr.distance.append(float(info["distance"]))
    tr.ee.append([float(v) for v in obs["state"][:3]])
    if "block_pos" in info:
        if tr.block is None:
            tr.block = []
        tr.block.append([float(v) for v in info["block_pos"]])
    if frames:
        tr.frames.append(obs["image"])
    tr.last_info = info
