"""How a clip's frames, states and actions meet the world model's token steps.

A clip has ``T`` frames ``f0 .. f(T-1)`` sampled at the clip fps, plus the state ``s_T`` one frame period
after the last frame (so that the last step has a real action). ``a(i→j) = pose_difference(s_i, s_j)``;
across a span it equals the composition of the per-frame actions (nothing is dropped).

``subsample`` (default; tubelet ``k`` = 2 shown, T = 8 → S = T / k = 4 steps)::

    frames   f0 f1 | f2 f3 | f4 f5 | f6 f7 |        one tubelet of k frames = one token step
    step        0  |   1   |   2   |   3   |
    state      s0  |  s2   |  s4   |  s6   |        state of step j = state at frame j·k
    action   a(0→2)|a(2→4) |a(4→6) |a(6→8) |        action of step j = pose change frame j·k → (j+1)·k

``duplicate`` (official V-JEPA 2-AC checkpoints; the model duplicates each frame into a tubelet)::

    frames   f0 f0 | f1 f1 | f2 f2 | ... | f7 f7 |  S = T = 8 steps
    state      s0  |  s1   |  s2   | ... |  s7   |
    action   a(0→1)|a(1→2) |a(2→3) | ... |a(7→8) |

``subsample`` with ``tubelet_size=1`` (one frame, one token step)::

    frames     f0  |  f1   |  f2   | ... |  f7   |  S = T = 8 steps
    state      s0  |  s1   |  s2   | ... |  s7   |
    action   a(0→1)|a(1→2) |a(2→3) | ... |a(7→8) |

In every case step ``s`` of the predictor output predicts step ``s + 1``; the action of the last step
leads out of the clip and is only needed when predicting beyond it.
"""

from __future__ import annotations

import numpy as np
import torch

from vjepa2_ac.pose import pose_difference

__all__ = ["ALIGNMENTS", "align_to_tokens", "num_token_steps"]

ALIGNMENTS = ("subsample", "duplicate")


def num_token_steps(num_frames: int, alignment: str, tubelet_size: int) -> int:
    """Number of token steps ``S`` of a clip of ``num_frames`` frames."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment: expected one of {ALIGNMENTS}, got {alignment!r}")
    if tubelet_size < 1:
        raise ValueError(f"tubelet_size: expected >= 1, got {tubelet_size}")
    if alignment == "duplicate":
        return num_frames
    if num_frames % tubelet_size:
        raise ValueError(
            f"frames_per_clip ({num_frames}) must be a multiple of tubelet_size ({tubelet_size}) "
            "for alignment='subsample'"
        )
    return num_frames // tubelet_size


def align_to_tokens(
    clip_states: np.ndarray | torch.Tensor, alignment: str = "subsample", tubelet_size: int = 2
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """States and actions per token step.

    Args:
        clip_states: ``[T + 1, 7]`` states at the clip's ``T`` frames plus the state one frame period
            after the last frame.
        alignment: ``"subsample"`` or ``"duplicate"`` (see the module docstring).
        tubelet_size: frames per token step for ``"subsample"``.

    Returns:
        ``(states [S, 7], actions [S, 7], frame_of_step [S + 1])``: ``frame_of_step[j]`` is the clip
        frame whose state step ``j`` uses (the last entry is ``T``, the boundary the last action reaches).
    """
    st = torch.as_tensor(
        np.asarray(clip_states) if not isinstance(clip_states, torch.Tensor) else clip_states
    )
    if st.ndim != 2 or st.shape[1] != 7 or st.shape[0] < 2:
        raise ValueError(f"clip_states: expected shape [T + 1, 7] with T >= 1, got {tuple(st.shape)}")
    t = st.shape[0] - 1
    s = num_token_steps(t, alignment, tubelet_size)
    k = 1 if alignment == "duplicate" else tubelet_size
    frame_of_step = np.arange(s + 1, dtype=np.int64) * k
    bounds = st[torch.from_numpy(frame_of_step)]  # [S + 1, 7]
    actions = pose_difference(bounds[:-1], bounds[1:])
    return bounds[:-1], actions, frame_of_step
