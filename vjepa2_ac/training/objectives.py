"""Losses of the two training stages as ``nn.Module`` objectives (so one DDP wrapper covers a whole step).

* :class:`ACObjective` (stage 2): teacher-forcing loss over all steps + auto-regressive rollout loss on
  layer-normed frozen-encoder embeddings (official V-JEPA 2-AC recipe), optional residual output.
* :class:`PretrainObjective` (stage 1): V-JEPA masked latent prediction with 3D tube masks, L1 against
  the layer-normed EMA target encoder, optional auxiliary per-token state probe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2_ac.training.config import MaskBlockConfig
from vjepa2_ac.training.masks import sample_tube_masks
from vjepa2_ac.world_model import encode_video, pool_tokens, predict_steps
from vjepa2_ac.world_model import normalize as layer_norm

__all__ = [
    "ACObjective",
    "PretrainObjective",
    "encode_clips",
    "layer_norm",
    "pool_tokens",
    "sample_masks",
]


@torch.no_grad()
def encode_clips(
    encoder: nn.Module, video: torch.Tensor, *, tubelet: int, alignment: str, pool: int = 1
) -> torch.Tensor:
    """Frozen-encoder targets ``[B, S, N, D]`` (layer-normed, float32) of ``video[B, C, T, H, W]``.

    The same computation as ``WorldModel.encode`` (:func:`vjepa2_ac.world_model.encode_video`), so the
    planner sees the embeddings the predictor was trained on. ``subsample``: one token step per tubelet
    of the clip (S = T // tubelet). ``duplicate`` (official): every frame is repeated into its own tubelet
    and encoded alone (S = T). ``pool``: k x k average pooling of patch tokens before the layer norm.
    """
    if encoder.is_video and tubelet != encoder.tubelet_size:
        raise ValueError(
            f"tubelet={tubelet} does not match the encoder's tubelet_size={encoder.tubelet_size}"
        )
    return encode_video(encoder, video, alignment=alignment, token_pool=pool).float()


class ACObjective(nn.Module):
    """Stage-2 loss around an AC predictor.

    ``forward(z[B, S, N, D], actions[B, >=S-1, 7], states[B, S, 7]) -> (loss, tf_loss, ar_loss, pred_std)``.
    ``z`` are layer-normed targets; ``actions[:, s]`` moves step ``s`` to ``s + 1``.
    """

    def __init__(
        self,
        predictor: nn.Module,
        auto_steps: int = 2,
        loss_exp: float = 1.0,
        rollout_weight: float = 1.0,
        residual: bool = False,
    ):
        super().__init__()
        self.predictor = predictor
        self.auto_steps, self.loss_exp, self.rollout_weight = auto_steps, loss_exp, rollout_weight
        self.residual = residual

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred.float() - target.float()).abs().pow(self.loss_exp).mean() / self.loss_exp

    def step(self, ctx: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Layer-normed predictions ``[B, T, N, D]`` of steps 1..T from ``ctx[B, T, N, D]`` (block-causal).

        ``WorldModel.predict``'s computation (:func:`vjepa2_ac.world_model.predict_steps`); with
        ``residual`` the output is ``LN(ctx + P(ctx))`` (the zero-initialised head starts at "copy").
        """
        return predict_steps(self.predictor, ctx, actions, states, residual=self.residual)

    def forward(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor):
        s = z.shape[1]
        actions, states = actions[:, : s - 1], states[:, : s - 1]
        z_tf = self.step(z[:, :-1], actions, states)  # [B, S-1, N, D]: predictions of steps 1..S-1
        tf_loss = self._loss(z_tf, z[:, 1:])
        ar_loss = torch.zeros((), device=z.device)
        if self.auto_steps > 0:
            seq = [z[:, :1], z_tf[:, :1]]  # ground-truth step 0, predicted step 1
            for k in range(1, self.auto_steps):
                ctx = torch.cat(seq, 1)  # [B, k+1, N, D]
                seq.append(self.step(ctx, actions[:, : k + 1], states[:, : k + 1])[:, -1:])
            z_ar = torch.cat(seq[1:], 1)  # predictions of steps 1..auto_steps
            ar_loss = self._loss(z_ar, z[:, 1 : 1 + z_ar.shape[1]])
        loss = tf_loss + self.rollout_weight * ar_loss
        pred_std = z_tf.detach().float().reshape(-1, z.shape[-1]).std(0).mean()
        return loss, tf_loss.detach(), ar_loss.detach(), pred_std


class PretrainObjective(nn.Module):
    """Stage-1 loss: context encoder + mask-token predictor (+ optional state probe head).

    ``forward(video[B, C, T, H, W], target[B, N, D] (layer-normed target-encoder tokens), masks,
    probe_target[B, S, P] | None) -> (loss, jepa_loss, aux_loss)`` with ``masks`` a list of
    ``(context_idx[B, Kc], target_idx[B, Kt])`` per mask family.
    """

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        probe_dims: int = 0,
        aux_weight: float = 0.0,
        loss_exp: float = 1.0,
    ):
        super().__init__()
        self.encoder, self.predictor = encoder, predictor
        self.probe = nn.Linear(encoder.embed_dim, probe_dims) if aux_weight > 0 else None
        self.aux_weight, self.loss_exp = aux_weight, loss_exp

    def forward(self, video, target, masks, grid, probe_target=None):
        jepa = torch.zeros((), device=video.device)
        aux = torch.zeros((), device=video.device)
        hw = grid[1] * grid[2]
        for family, (ctx_idx, tgt_idx) in enumerate(masks):
            z = self.encoder(video, masks=ctx_idx)  # [B, Kc, D]
            pred = self.predictor(z, ctx_idx, tgt_idx, grid, family)  # [B, Kt, D]
            tgt = torch.gather(target, 1, tgt_idx[..., None].expand(-1, -1, target.shape[-1]))
            jepa = jepa + (pred.float() - tgt.float()).abs().pow(self.loss_exp).mean() / self.loss_exp
            if self.probe is not None:
                step = torch.div(ctx_idx, hw, rounding_mode="floor")  # token -> its time step
                y = torch.gather(probe_target, 1, step[..., None].expand(-1, -1, probe_target.shape[-1]))
                aux = aux + F.mse_loss(self.probe(z).float(), y.float())
        jepa, aux = jepa / len(masks), aux / len(masks)
        return jepa + self.aux_weight * aux, jepa.detach(), aux.detach()


def sample_masks(
    batch: int,
    grid: tuple[int, int, int],
    families: list[MaskBlockConfig],
    seed: int,
    step: int,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Masks of every family for one step, drawn from a generator seeded by ``(seed, step)`` (resumable)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    out = []
    for fam in families:
        ctx, tgt = sample_tube_masks(batch, grid, fam, g)
        out.append((ctx.to(device), tgt.to(device)))
    return out
