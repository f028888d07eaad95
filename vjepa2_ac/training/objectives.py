"""Losses of the two training stages as ``nn.Module`` objectives (so one DDP wrapper covers a whole step).

* :class:`ACObjective` (stage 2): teacher-forcing loss over all steps + auto-regressive rollout loss on
  layer-normed frozen-encoder embeddings (official V-JEPA 2-AC recipe), optional residual output.
* :class:`PretrainObjective` (stage 1): V-JEPA masked latent prediction with 3D tube masks, L1 against
  the layer-normed EMA target encoder, and/or the state-geometry terms of :class:`StateGeometryLoss` on
  the per-tubelet embeddings the world model plans with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2_ac.state_probe import StateProbe
from vjepa2_ac.training.config import MaskBlockConfig
from vjepa2_ac.training.masks import sample_tube_masks
from vjepa2_ac.world_model import encode_video, pool_tokens, predict_steps
from vjepa2_ac.world_model import normalize as layer_norm

__all__ = [
    "ACObjective",
    "PretrainObjective",
    "StateGeometryLoss",
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


class StateGeometryLoss(nn.Module):
    """Label-free encoder terms from the recorded robot state (DROID records it for every frame).

    On layer-normed per-tubelet embeddings ``z[B, S, N, D]`` and the states of the steps ``[B, S, 7]``:

    * **probe** (``probe_weight``): every token linearly decodes the standardised state of its step (MSE),
      so the end-effector position is carried by the whole image, not by the few patches that show it;
    * **manifold** (``manifold_weight``): the embedding is pulled (L1) towards ``LN(W s + b)``, a learned
      linear map of the standardised state onto all tokens, so that a large part of the embedding varies
      linearly with the state and the planning energy (mean L1 between embeddings) grows with the distance
      between end-effector poses instead of saturating once the arm has moved by a patch.

    ``labels`` > 0 (an ablation, not label-free): ``forward`` also takes ``labels[B, S, labels]``, simulator
    quantities of each step (e.g. the block position), which a second per-token head decodes and the
    manifold map takes beside the state. Rows with NaN (an episode without that quantity) are left out of
    the label probe and enter the map as the labels' mean.

    Returns ``(loss, probe_loss, manifold_loss)``.
    """

    def __init__(
        self,
        probe: StateProbe,
        tokens: int,
        probe_weight: float = 1.0,
        manifold_weight: float = 0.0,
        labels: int = 0,
    ) -> None:
        super().__init__()
        self.probe, self.tokens = probe, tokens
        self.probe_weight, self.manifold_weight = probe_weight, manifold_weight
        d = probe.head.in_features
        self.label_head = nn.Linear(d, labels) if labels > 0 else None
        if labels > 0:
            self.register_buffer("label_mean", torch.zeros(labels))
            self.register_buffer("label_std", torch.ones(labels))
        width = len(probe.dims) + labels
        self.decoder = nn.Linear(width, tokens * d) if manifold_weight > 0 else None

    @torch.no_grad()
    def set_label_normaliser(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardisation of the labels (from the training data, as the state probe's)."""
        self.label_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.label_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def forward(self, z: torch.Tensor, states: torch.Tensor, labels: torch.Tensor | None = None):
        b, s, n, d = z.shape
        target = self.probe.targets(states)  # [B, S, P]
        zero = torch.zeros((), device=z.device)
        probe_loss = F.mse_loss(self.probe(z.float()), target[:, :, None].expand(-1, -1, n, -1))
        if self.label_head is not None:
            if labels is None:
                raise ValueError("this geometry loss decodes simulator labels: pass labels[B, S, K]")
            lab = (labels.float() - self.label_mean) / self.label_std  # [B, S, K]
            seen = torch.isfinite(lab).all(-1)  # [B, S]
            lab = torch.where(seen[..., None], lab, torch.zeros_like(lab))
            if bool(seen.any()):
                err = (self.label_head(z.float()) - lab[:, :, None]).pow(2).mean((-2, -1))  # [B, S]
                probe_loss = probe_loss + err[seen].mean()
            target = torch.cat([target, lab], -1)
        manifold = zero
        if self.decoder is not None:
            recon = layer_norm(self.decoder(target).view(b, s, n, d))  # [B, S, N, D]
            manifold = (z.float() - recon).abs().mean()
        loss = self.probe_weight * probe_loss + self.manifold_weight * manifold
        return loss, probe_loss.detach(), manifold.detach()


class PretrainObjective(nn.Module):
    """Stage-1 loss: masked latent prediction (``jepa_weight``) + optional :class:`StateGeometryLoss`.

    ``forward(video[B, C, T, H, W], target[B, N, D] | None (layer-normed target-encoder tokens), masks,
    grid, states[B, S, 7] | None, labels[B, S, K] | None) -> (loss, jepa_loss, probe_loss, manifold_loss)``
    with ``masks`` a list of ``(context_idx[B, Kc], target_idx[B, Kt])`` per mask family. The geometry
    terms see each tubelet encoded on its own by the context encoder (``alignment="subsample"``), the
    embeddings a planner uses.
    """

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        geometry: StateGeometryLoss | None = None,
        jepa_weight: float = 1.0,
        loss_exp: float = 1.0,
    ):
        super().__init__()
        self.encoder, self.predictor, self.geometry = encoder, predictor, geometry
        self.jepa_weight, self.loss_exp = jepa_weight, loss_exp
        if jepa_weight == 0:
            predictor.requires_grad_(False)  # unused: no gradient, no DDP bucket

    def forward(self, video, target, masks, grid, states=None, labels=None):
        zero = torch.zeros((), device=video.device)
        jepa, probe, manifold, geo = zero, zero, zero, zero
        if self.jepa_weight > 0:
            for family, (ctx_idx, tgt_idx) in enumerate(masks):
                z = self.encoder(video, masks=ctx_idx)  # [B, Kc, D]
                pred = self.predictor(z, ctx_idx, tgt_idx, grid, family)  # [B, Kt, D]
                tgt = torch.gather(target, 1, tgt_idx[..., None].expand(-1, -1, target.shape[-1]))
                jepa = jepa + (pred.float() - tgt.float()).abs().pow(self.loss_exp).mean() / self.loss_exp
            jepa = jepa / len(masks)
        if self.geometry is not None:
            z = encode_video(self.encoder, video, alignment="subsample")  # [B, S, N, D], normed
            geo, probe, manifold = self.geometry(z, states, labels)
        return self.jepa_weight * jepa + geo, jepa.detach(), probe, manifold


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
