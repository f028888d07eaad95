"""Sub-goal images from the scripted expert: the paper's protocol for multi-stage tasks.

A single goal image pulls a greedy planner straight towards the final pose; in a push from the env's own
start distribution that drives the gripper through the block. The paper plans such tasks through a
sequence of sub-goal images, each pursued for a fixed number of steps. Here the env's scripted expert
(no noise) is run from the episode's start in a copy of the simulation until it has solved the task and
stopped; the frames it passes through at evenly spaced times become the sub-goals, and the final goal
image closes the sequence. The simulation is restored afterwards, so the episode itself is unchanged.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["expert_subgoals", "SUBGOAL_ROUNDINGS", "SUBGOAL_SHARE"]

# Largest share of an episode's control steps that paced sub-goals may take (the goal image gets the rest).
SUBGOAL_SHARE = 0.8
# How paced times become whole token steps: "each" rounds every sub-goal's time up (many close sub-goals
# then take longer than pace x the expert's time, possibly past the episode's end, and the goal image
# comes late or never); "cumulative" rounds the switch times (the schedule keeps pace x the expert's time).
SUBGOAL_ROUNDINGS = ("each", "cumulative")


def expert_subgoals(
    env,
    task: str,
    obs: dict,
    info: dict,
    count: int,
    max_control_steps: int,
    frames_per_step: int,
    pace: float = 1.0,
    rounding: str = "each",
) -> list[tuple[np.ndarray, int | None]]:
    """``count`` sub-goals ``(image uint8[H, W, 3], token steps to pursue it)`` for the episode ``env`` was
    just reset to (``obs``, ``info``: its reset observation); the last is the goal image, pursued until
    the episode ends (``None``). Each sub-goal is pursued for ``pace`` times the expert's time between
    it and the previous one (``pace > 1`` for a planner that moves slower than the expert); a pace above
    1 is lowered (not below 1) so that the sub-goals take at most :data:`SUBGOAL_SHARE` of the episode and
    the goal image keeps the rest. ``rounding`` (:data:`SUBGOAL_ROUNDINGS`) says how those times become
    whole token steps; every sub-goal gets at least one."""
    from vjepa2_ac.envs.policies import run_expert
    from vjepa2_ac.planners.lockstep import restore, snapshot

    if count < 1:
        raise ValueError(f"sub-goals: expected a count >= 1, got {count}")
    if not pace > 0:
        raise ValueError(f"sub-goals: expected a pace > 0, got {pace}")
    if rounding not in SUBGOAL_ROUNDINGS:
        raise ValueError(f"sub-goals: rounding must be one of {SUBGOAL_ROUNDINGS}, got {rounding!r}")
    goal = env.unwrapped.goal_image()
    if count == 1:
        return [(goal, None)]
    snap = snapshot(env)
    try:
        seen, _ = run_expert(env.unwrapped, task, obs, info, max_control_steps)
    finally:
        restore(env, snap)
    images = [o["image"] for o in seen]
    length = len(images)
    if length == 0:
        return [(goal, None)]
    if pace > 1:
        pace = max(1.0, min(pace, SUBGOAL_SHARE * max_control_steps / length))
    marks = [round(m * length / count) for m in range(1, count)]
    out, prev, prev_end = [], 0, 0
    for m in marks:
        m = max(m, prev + 1)
        if rounding == "each":
            steps = max(1, math.ceil(pace * (m - prev) / frames_per_step))
        else:  # the token step at which this sub-goal ends, rounded half up
            steps = max(1, math.ceil(pace * m / frames_per_step - 0.5) - prev_end)
        out.append((images[min(m, length) - 1], steps))
        prev, prev_end = m, prev_end + steps
    out.append((goal, None))
    return out
