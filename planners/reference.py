"""A deliberately naive, official-style planning path: the baseline of ``vjepa2-ac bench planning``.

It reproduces how the official V-JEPA 2-AC planning code spends its time, on the weights of one of our
:class:`~vjepa2_ac.predictor.ACPredictor` modules (official state-dict names), in float32:

* every rollout step re-runs the predictor over the whole growing sequence (context frame + all
  predicted frames so far), with no key/value cache;
* the RoPE sin/cos tables are recomputed inside every attention call, and the action/state tokens get
  their own ``qkv`` projection per condition slot, as in the official attention;
* the context and goal are materialised once per sample (``repeat``);
* the next pose is computed per sample in a Python loop in numpy (the official code calls scipy's
  ``Rotation`` per sample; scipy is not a dependency here, so the same per-sample euler → matrix →
  euler round trip is written in numpy).

It is an independent implementation of the official forward (checked against the official parity
fixture in the tests), so it also cross-checks :mod:`vjepa2_ac.predictor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class NaiveShapes:
    """Geometry the naive forward needs besides the weights."""

    grid_height: int
    grid_width: int
    num_heads: int
    depth: int
    cond_tokens: int = 2
    norm_eps: float = 1e-6

    @classmethod
    def from_predictor(cls, predictor) -> NaiveShapes:
        """Read the shapes from an :class:`~vjepa2_ac.predictor.ACPredictor`."""
        return cls(
            grid_height=predictor.grid_height,
            grid_width=predictor.grid_width,
            num_heads=predictor.num_heads,
            depth=len(predictor.predictor_blocks),
            cond_tokens=predictor.cond_tokens,
            norm_eps=predictor.predictor_norm.eps,
        )


def _rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Official-layout RoPE on one chunk: ``x[..., N, Dc]``, ``pos[N]`` float.

    Frequencies ``10000^(-i/(Dc/2))``; the cos/sin tables are tiled (``[θ_0..θ_{Dc/2-1}, θ_0..]``) and
    the partner of element ``2j`` is ``-x_{2j+1}``, of ``2j+1`` is ``x_{2j}`` (the official quirk).
    Recomputed on every call, like the official code.
    """
    dc = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(dc // 2, dtype=x.dtype, device=x.device) / (dc / 2.0))
    freq = pos.to(x.dtype)[:, None] * omega[None, :]  # [N, Dc/2]
    cos = torch.cos(freq).repeat(1, 2)  # [N, Dc]
    sin = torch.sin(freq).repeat(1, 2)
    partner = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    return x * cos + partner * sin


def _rope_patches(q: torch.Tensor, frame, row, col, dd: int) -> torch.Tensor:
    """Rotate ``q[B, h, N, hd]``: time | height | width chunks of size ``dd``, rest unrotated."""
    parts = [
        _rotate(q[..., :dd], frame),
        _rotate(q[..., dd : 2 * dd], row),
        _rotate(q[..., 2 * dd : 3 * dd], col),
    ]
    if q.shape[-1] > 3 * dd:
        parts.append(q[..., 3 * dd :])
    return torch.cat(parts, dim=-1)


def _attention(
    p: dict, pre: str, x: torch.Tensor, t: int, sh: NaiveShapes, mask: torch.Tensor
) -> torch.Tensor:
    b, n, d = x.shape
    heads, hd = sh.num_heads, d // sh.num_heads
    hw, k = sh.grid_height * sh.grid_width, sh.cond_tokens
    dd = 2 * ((hd // 3) // 2)
    w, bias = p[pre + "qkv.weight"], p[pre + "qkv.bias"]
    x = x.view(b, t, k + hw, d)
    # Patch tokens: 3-D positions (frame, row, col) of arange(T*H*W).
    patches = x[:, :, k:].reshape(b, t * hw, d)
    q, kk, v = F.linear(patches, w, bias).unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)
    ids = torch.arange(t * hw, device=x.device)
    frame = ids // hw
    row = (ids - frame * hw) // sh.grid_width
    col = ids - frame * hw - row * sh.grid_width
    frame, row, col = frame.float(), row.float(), col.float()
    q, kk = _rope_patches(q, frame, row, col, dd), _rope_patches(kk, frame, row, col, dd)
    # Condition tokens: one qkv call per slot, time rotation only on the first dd dims.
    steps = torch.arange(t, device=x.device).float()
    cq, ck, cv = [], [], []
    for s in range(k):
        qs, ks, vs = F.linear(x[:, :, s], w, bias).unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)
        qs = torch.cat([_rotate(qs[..., :dd], steps), qs[..., dd:]], dim=-1)
        ks = torch.cat([_rotate(ks[..., :dd], steps), ks[..., dd:]], dim=-1)
        cq.append(qs)
        ck.append(ks)
        cv.append(vs)

    def merge(cond, pt):  # cond: K x [B, h, T, hd]; pt: [B, h, T*HW, hd] -> [B, h, T*(K+HW), hd]
        c = torch.stack(cond, dim=3)  # [B, h, T, K, hd]
        return torch.cat([c, pt.view(b, heads, t, hw, hd)], dim=3).flatten(2, 3)

    out = F.scaled_dot_product_attention(merge(cq, q), merge(ck, kk), merge(cv, v), attn_mask=mask)
    out = out.transpose(1, 2).reshape(b, n, d)
    return F.linear(out, p[pre + "proj.weight"], p[pre + "proj.bias"])


def naive_predictor_forward(
    params: dict[str, torch.Tensor],
    shapes: NaiveShapes,
    x: torch.Tensor,
    actions: torch.Tensor,
    states: torch.Tensor,
) -> torch.Tensor:
    """Official-style AC predictor forward (no cache): ``x[B, T*HW, D]`` -> ``[B, T*HW, D]``.

    ``params`` are the predictor's parameters by official name (``dict(predictor.named_parameters())``).
    Extrinsics are not supported (the official DROID model does not use them).
    """
    if shapes.cond_tokens != 2:
        raise ValueError(
            "naive_predictor_forward supports predictors without extrinsics (2 condition tokens)"
        )
    p, sh = params, shapes
    hw = sh.grid_height * sh.grid_width
    b, t = x.shape[0], x.shape[1] // hw
    z = F.linear(x, p["predictor_embed.weight"], p["predictor_embed.bias"]).view(b, t, hw, -1)
    a = F.linear(actions, p["action_encoder.weight"], p["action_encoder.bias"])[:, :, None]
    s = F.linear(states, p["state_encoder.weight"], p["state_encoder.bias"])[:, :, None]
    seq = torch.cat([a, s, z], dim=2).flatten(1, 2)  # [B, T*(2+HW), Dp]
    dp = seq.shape[-1]
    n = sh.cond_tokens + hw
    step = torch.arange(t, device=x.device).repeat_interleave(n)
    mask = step[:, None] >= step[None, :]  # True = may attend (block-causal)
    for i in range(sh.depth):
        pre = f"predictor_blocks.{i}."
        y = F.layer_norm(seq, (dp,), p[pre + "norm1.weight"], p[pre + "norm1.bias"], sh.norm_eps)
        seq = seq + _attention(p, pre + "attn.", y, t, sh, mask)
        y = F.layer_norm(seq, (dp,), p[pre + "norm2.weight"], p[pre + "norm2.bias"], sh.norm_eps)
        y = F.gelu(F.linear(y, p[pre + "mlp.fc1.weight"], p[pre + "mlp.fc1.bias"]))
        seq = seq + F.linear(y, p[pre + "mlp.fc2.weight"], p[pre + "mlp.fc2.bias"])
    seq = seq.view(b, t, n, dp)[:, :, sh.cond_tokens :].flatten(1, 2)
    seq = F.layer_norm(seq, (dp,), p["predictor_norm.weight"], p["predictor_norm.bias"], sh.norm_eps)
    return F.linear(seq, p["predictor_proj.weight"], p["predictor_proj.bias"])


# -- per-sample numpy pose update (the official code uses scipy Rotation per sample) --------------------
def _euler_to_matrix_np(a: np.ndarray) -> np.ndarray:
    roll, pitch, yaw = (float(v) for v in a)
    cx, sx, cy, sy, cz, sz = (
        math.cos(roll),
        math.sin(roll),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(yaw),
        math.sin(yaw),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _matrix_to_euler_np(r: np.ndarray) -> np.ndarray:
    pitch = math.asin(max(-1.0, min(1.0, -float(r[2, 0]))))
    if abs(abs(pitch) - math.pi / 2) < 1e-7:  # gimbal lock: yaw := 0 (as scipy), roll takes the rest
        return np.array([math.atan2(-float(r[1, 2]), float(r[1, 1])), pitch, 0.0])
    roll = math.atan2(float(r[2, 1]), float(r[2, 2]))
    yaw = math.atan2(float(r[1, 0]), float(r[0, 0]))
    return np.array([roll, pitch, yaw])


def naive_compute_new_pose(pose: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Per-sample python loop: ``pose[S, 1, 7]``, ``action[S, 1, 7]`` -> ``[S, 1, 7]`` (float32).

    ``xyz + dxyz``, ``R(dθ)·R(θ)``, ``clip(g + dg, 0, 1)`` — computed sample by sample in numpy.
    """
    pose_np = pose.detach().cpu().numpy()
    act_np = action.detach().cpu().numpy()
    out = np.empty_like(pose_np)
    for i in range(pose_np.shape[0]):
        p, a = pose_np[i, 0].astype(np.float64), act_np[i, 0].astype(np.float64)
        rot = _euler_to_matrix_np(a[3:6]) @ _euler_to_matrix_np(p[3:6])
        out[i, 0, :3] = p[:3] + a[:3]
        out[i, 0, 3:6] = _matrix_to_euler_np(rot)
        out[i, 0, 6] = min(1.0, max(0.0, p[6] + a[6]))
    return torch.from_numpy(out).to(pose.device)


class NaiveWorldModel:
    """Official-style planning rollouts on the weights of an ``ACPredictor`` (float32, no cache)."""

    def __init__(self, predictor) -> None:
        self.params = {k: v.detach().float() for k, v in predictor.named_parameters()}
        self.shapes = NaiveShapes.from_predictor(predictor)
        self.hw = self.shapes.grid_height * self.shapes.grid_width

    @torch.no_grad()
    def rollout(
        self, z_ctx: torch.Tensor, states_ctx: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_ctx[S, T0, HW, D]``, ``states_ctx[S, T0, 7]``, ``actions[S, H, 7]`` ->
        ``(z_pred[S, H, HW, D], poses[S, T0+H, 7])``.

        Step ``h`` runs the predictor on all ``T0 + h`` frames with actions ``actions[:, :h+1]`` (the
        official planning call, which needs ``T0 == 1``: one action per frame in the sequence).
        """
        if z_ctx.shape[1] != 1:
            raise ValueError(f"the official planning rollout uses one context frame, got {z_ctx.shape[1]}")
        reps, poses = z_ctx.float(), states_ctx.float()
        for h in range(actions.shape[1]):
            out = naive_predictor_forward(
                self.params, self.shapes, reps.flatten(1, 2), actions[:, : h + 1], poses
            )
            nxt = F.layer_norm(out[:, -self.hw :], (out.shape[-1],))  # [S, HW, D]
            new_pose = naive_compute_new_pose(poses[:, -1:], actions[:, h : h + 1])
            reps = torch.cat([reps, nxt[:, None]], dim=1)
            poses = torch.cat([poses, new_pose], dim=1)
        return reps[:, 1:], poses

    @torch.no_grad()
    def cem(
        self,
        z_ctx: torch.Tensor,
        state: torch.Tensor,
        z_goal: torch.Tensor,
        horizon: int,
        samples: int,
        iterations: int,
        topk: int = 10,
        maxnorm: float = 0.05,
        momentum_mean: float = 0.15,
        momentum_std: float = 0.15,
        momentum_mean_gripper: float = 0.15,
        momentum_std_gripper: float = 0.15,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Official-style CEM from ``z_ctx[1, 1, HW, D]``, ``state[1, 1, 7]``, ``z_goal[1, 1, HW, D]``.

        Context, state and goal are repeated to ``samples`` rows; the distribution covers xyz + gripper
        with rotation 0; energy = mean L1 of the last predicted frame to the goal.
        """
        gen = generator or torch.Generator().manual_seed(0)
        ctx = z_ctx.float().repeat(samples, 1, 1, 1)
        st = state.float().repeat(samples, 1, 1)
        goal = z_goal.float().repeat(samples, 1, 1, 1)
        mean = torch.zeros(horizon, 4)
        std = torch.tensor([maxnorm] * 3 + [1.0]).repeat(horizon, 1)
        m_mean = torch.tensor([momentum_mean] * 3 + [momentum_mean_gripper])
        m_std = torch.tensor([momentum_std] * 3 + [momentum_std_gripper])
        for _ in range(iterations):
            a = torch.randn(samples, horizon, 4, generator=gen) * std + mean
            a[..., :3] = a[..., :3].clamp(-maxnorm, maxnorm)
            a[..., 3] = a[..., 3].clamp(-0.75, 0.75)
            actions = torch.cat([a[..., :3], torch.zeros(samples, horizon, 3), a[..., 3:]], dim=-1)
            z_pred, _ = self.rollout(ctx, st, actions)
            energy = (z_pred[:, -1] - goal[:, 0]).abs().mean(dim=(-1, -2))  # [S]
            elite = a[torch.topk(energy, topk, largest=False).indices]
            mean = m_mean * mean + (1 - m_mean) * elite.mean(0)
            std = m_std * std + (1 - m_std) * elite.std(0)
        g = torch.where(mean[:, 3].abs() < 0.25, torch.zeros_like(mean[:, 3]), mean[:, 3])
        return torch.cat([mean[:, :3], torch.zeros(horizon, 3), g[:, None]], dim=-1)
