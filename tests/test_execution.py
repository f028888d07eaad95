"""How a planned token step becomes control steps (planners/execution.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa2_ac.planners.execution import TokenTracker, control_actions
from vjepa2_ac.pose import apply_action


def test_control_actions_land_on_the_next_tubelets_first_state():
    """Step 1 goes from the current state to s_first + a; the others continue at a / k."""
    s_first = np.array([0.5, 0.0, 0.2, 0.0, 0.0, 0.1, 1.0])
    s_now = np.array([0.51, 0.005, 0.2, 0.0, 0.0, 0.1, 1.0])  # already moved inside the tubelet
    a = np.array([0.04, -0.02, 0.01, 0.0, 0.0, 0.0, 0.0])
    steps = control_actions(a, s_first, s_now, 2)
    assert len(steps) == 2 and all(s.dtype == np.float32 for s in steps)
    import torch

    reached = apply_action(torch.tensor(s_now)[None], torch.tensor(steps[0], dtype=torch.float64)[None])[0]
    target = apply_action(torch.tensor(s_first)[None], torch.tensor(a)[None])[0]
    np.testing.assert_allclose(reached.numpy(), target.numpy(), atol=1e-6)
    np.testing.assert_allclose(steps[1], a / 2, atol=1e-7)
    # One frame per step (duplicate alignment): the plain "one action, one control step".
    (only,) = control_actions(a, s_now, s_now, 1)
    np.testing.assert_allclose(only, a, atol=1e-6)


def test_token_tracker_keeps_the_last_tubelet_and_its_first_state():
    frames = [np.full((4, 4, 3), v, np.uint8) for v in range(5)]
    states = [np.full(7, v, np.float32) for v in range(5)]
    tr = TokenTracker(1, 2)
    tr.observe_reset(0, {"image": frames[0], "state": states[0]})
    assert [int(f[0, 0, 0]) for f in tr.frames(0)] == [0, 0]  # at rest: the first frame twice
    assert tr.first_state[0][0] == 0 and tr.now_state[0][0] == 0
    tr.observe_step(0, {"image": frames[1], "state": states[1]}, 0)
    tr.observe_step(0, {"image": frames[2], "state": states[2]}, 1)
    assert [int(f[0, 0, 0]) for f in tr.frames(0)] == [1, 2]
    assert tr.first_state[0][0] == 1 and tr.now_state[0][0] == 2
    with pytest.raises(ValueError, match="frames per step"):
        TokenTracker(1, 0)
