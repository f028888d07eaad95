"""How one planned token-step action becomes environment control steps (and what the model then sees).

A world model's token step spans ``k = WorldModel.frames_per_step`` video frames: the tubelet of ``k``
consecutive frames for ``alignment="subsample"`` (Strategy A, ``k = 2``), one frame for ``"duplicate"``.
Training defines, for token step ``j`` covering frames ``j*k .. j*k+k-1``:

* its **state** is the state at the tubelet's first frame, ``s_{jk}``;
* its **action** is the pose change to the next tubelet's first frame, ``a_j = s_{(j+1)k} ⊖ s_{jk}``.

A planner observes the last ``k`` frames (the current tubelet, first-frame state ``s_first``) and the
current state ``s_now`` (the tubelet's last frame). A planned action ``a`` therefore names the pose of
the *next* tubelet's first frame, ``s_first ⊕ a``, and is executed as ``k`` control steps:

1. the first control step moves from ``s_now`` to ``s_first ⊕ a`` (its delta is ``(s_first ⊕ a) ⊖ s_now``);
2. each further control step continues at the action's rate, ``a / k`` (the motion inside the next
   tubelet, which the data shows as the start of the next action).

The new observation is the last ``k`` frames, its state the state after control step 1: so the state the
predictor assumed for the next step is the one the robot reached (up to the controller's tracking). For
``k = 1`` (``duplicate``) this is the plain "one action, one control step" of the official planner.
An episode starts at rest: its first tubelet repeats the first frame, with ``s_first = s_now``.
"""

from __future__ import annotations

import numpy as np
import torch

from vjepa2_ac.pose import apply_action, pose_difference

__all__ = ["control_actions", "TokenTracker"]


def control_actions(action: np.ndarray, s_first: np.ndarray, s_now: np.ndarray, k: int) -> list[np.ndarray]:
    """The ``k`` float32 ``[7]`` control-step deltas that execute the token action ``action[7]``."""
    a = torch.as_tensor(np.asarray(action, np.float64))
    first = torch.as_tensor(np.asarray(s_first, np.float64))
    now = torch.as_tensor(np.asarray(s_now, np.float64))
    target = apply_action(first[None], a[None])[0]
    steps = [pose_difference(now[None], target[None])[0].numpy()]
    steps += [(a / k).numpy()] * (k - 1)
    return [s.astype(np.float32) for s in steps]


class TokenTracker:
    """Per-episode frame and state history that defines the current token step.

    ``observe_reset(i, obs)`` at an episode's start; ``observe_step(i, obs, j)`` after control step ``j``
    (0-based) of a planned action; :meth:`frames` gives ``uint8[k, H, W, 3]`` (oldest first) and
    :attr:`first_state` the state at the current tubelet's first frame.
    """

    def __init__(self, n: int, k: int) -> None:
        if k < 1:
            raise ValueError(f"TokenTracker: frames per step must be >= 1, got {k}")
        self.k = k
        self._frames: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.first_state: list[np.ndarray | None] = [None] * n
        self.now_state: list[np.ndarray | None] = [None] * n

    def observe_reset(self, i: int, obs: dict) -> None:
        self._frames[i] = [obs["image"]] * self.k
        self.first_state[i] = np.asarray(obs["state"], np.float32).copy()
        self.now_state[i] = self.first_state[i]

    def observe_step(self, i: int, obs: dict, j: int) -> None:
        self._frames[i] = (self._frames[i] + [obs["image"]])[-self.k :]
        state = np.asarray(obs["state"], np.float32).copy()
        self.now_state[i] = state
        if j == 0:  # the first frame of the next tubelet
            self.first_state[i] = state

    def frames(self, i: int) -> np.ndarray:
        return np.stack(self._frames[i])

    def control_actions(self, i: int, action: np.ndarray) -> list[np.ndarray]:
        return control_actions(action, self.first_state[i], self.now_state[i], self.k)
