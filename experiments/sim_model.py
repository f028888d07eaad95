"""The small simulated-robot world model used by ``demo`` and ``plan``: V-JEPA 2-AC structure, CPU-sized.

Structure (kept from V-JEPA 2-AC): a ViT encoder (``vjepa2_ac.build_encoder``; each image duplicated
into a 2-frame tubelet) -> per-token layer norm without affine -> ``z[B, N, D]``; the official-API AC
predictor (``vjepa2_ac.build_predictor``) conditioned on actions and states, block-causal over time
steps; planning energy = mean L1 between the predicted and the goal-image embeddings.

Two additions found necessary on a CPU budget (see ``docs/experiments.md``):

* a linear **probe head** on every layer-normed token that decodes the end-effector and block positions;
  it is trained together with the encoder (then frozen) so that every token carries those positions
  globally and the L1 energy grows with distance instead of saturating after one patch;
* a **residual predictor** output, ``z_{t+1} = LN(z_t + P(...)_t)`` with a zero-initialised
  ``predictor_proj``, so that the predictor starts at the "copy the last frame" solution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2_ac.pose import apply_action

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TUBELETS = ("duplicate", "consecutive")


@dataclass
class SimModelConfig:
    """Sizes of the simulated-robot world model.

    Attributes:
        image_size: square input resolution (the env's ``image_size``).
        patch_size: ViT patch size; ``(image_size / patch_size)**2`` tokens per frame.
        embed_dim / depth / num_heads: encoder ViT.
        pred_embed_dim / pred_depth / pred_heads: AC predictor.
        max_steps: predictor time-step capacity (``num_frames = 2 * max_steps``): the longest rollout
            (history + horizon) it accepts. Only the size of its RoPE tables depends on it, not the
            weights, so training is the same for any value >= the training clips' length.
        probe_dims: positions decoded by the probe head (EE xyz + block xyz = 6).
        residual: predictor predicts a residual on the last embedding.
        tubelet: what fills the encoder's 2-frame tubelet. ``duplicate``: the current frame twice (a
            still image, as the official release encodes single frames). ``consecutive``: the previous
            frame and the current one, so that one embedding also carries the scene's motion (a block
            still sliding after a push); the probe then also decodes each position's change since the
            previous frame (``2 * probe_dims`` outputs). A frame without a predecessor (an episode's
            first, a goal image) is encoded as a still scene.
    """

    image_size: int = 64
    patch_size: int = 16
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    pred_embed_dim: int = 64
    pred_depth: int = 2
    pred_heads: int = 4
    max_steps: int = 6
    probe_dims: int = 6
    residual: bool = True
    tubelet: str = "duplicate"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(v, int) or v < 1):
                raise ValueError(f"SimModelConfig.{f.name} must be an int >= 1, got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"SimModelConfig: image_size={self.image_size} must be a multiple of "
                f"patch_size={self.patch_size}"
            )
        if self.tubelet not in TUBELETS:
            raise ValueError(f"SimModelConfig.tubelet must be one of {TUBELETS}, got {self.tubelet!r}")
        if self.embed_dim % self.num_heads or self.pred_embed_dim % self.pred_heads:
            raise ValueError("SimModelConfig: embed dims must be divisible by their head counts")

    @classmethod
    def from_dict(cls, d: dict) -> SimModelConfig:
        """Build from a checkpoint's config dict; unknown keys are an error (a different model family)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SimModelConfig: unknown keys {unknown} in checkpoint config")
        return cls(**d)

    @property
    def probe_outputs(self) -> int:
        """Outputs of the probe head: the positions, and with ``consecutive`` tubelets their motion."""
        return self.probe_dims * (2 if self.tubelet == "consecutive" else 1)


def encoder_kwargs(cfg: SimModelConfig) -> dict:
    """Official-style encoder kwargs for ``vjepa2_ac.build_encoder``."""
    return dict(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_frames=2,
        tubelet_size=2,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        use_rope=True,
    )


def predictor_kwargs(cfg: SimModelConfig) -> dict:
    """Official-style AC-predictor kwargs for ``vjepa2_ac.build_predictor``."""
    return dict(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_frames=2 * cfg.max_steps,
        tubelet_size=2,
        embed_dim=cfg.embed_dim,
        predictor_embed_dim=cfg.pred_embed_dim,
        depth=cfg.pred_depth,
        num_heads=cfg.pred_heads,
        use_rope=True,
        action_embed_dim=7,
        use_extrinsics=False,
    )


def _build_encoder(**kw):
    from vjepa2_ac.encoder import build_encoder

    return build_encoder(**kw)


def _build_predictor(**kw):
    from vjepa2_ac.predictor import build_predictor

    return build_predictor(**kw)


def layer_norm_tokens(x: torch.Tensor) -> torch.Tensor:
    """Per-token layer norm without affine (eps 1e-5), as V-JEPA 2-AC applies to targets and predictions."""
    return F.layer_norm(x, (x.shape[-1],))


class SimWorldModel(nn.Module):
    """Encoder + probe head + AC predictor for the simulated tasks.

    ``encode_images(uint8[B, H, W, 3]) -> z[B, N, D]``; ``predict`` (teacher forcing) and ``rollout``
    (autoregressive) produce layer-normed embeddings; ``energy`` is the planning cost.
    """

    def __init__(self, cfg: SimModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _build_encoder(**encoder_kwargs(cfg))
        self.predictor = _build_predictor(**predictor_kwargs(cfg))
        self.probe = nn.Linear(cfg.embed_dim, cfg.probe_outputs)
        if cfg.residual:
            # Start exactly at "copy the last embedding": the predictor then only has to learn the change.
            nn.init.zeros_(self.predictor.predictor_proj.weight)
            nn.init.zeros_(self.predictor.predictor_proj.bias)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        # Standardisation of the probe targets (set from the training data).
        self.register_buffer("probe_mean", torch.zeros(cfg.probe_outputs))
        self.register_buffer("probe_std", torch.ones(cfg.probe_outputs))

    @property
    def tokens_per_frame(self) -> int:
        return (self.cfg.image_size // self.cfg.patch_size) ** 2

    # -- encoder ---------------------------------------------------------------------------------------
    def check_images(self, images: torch.Tensor, what: str = "images") -> None:
        """Raise a clear error unless ``images`` is ``uint8/float [B, S, S, 3]`` with S = image_size."""
        s = self.cfg.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (s, s, 3):
            raise ValueError(
                f"{what}: expected [B, {s}, {s}, 3] RGB images (this checkpoint's image_size={s}), "
                f"got shape {tuple(images.shape)}"
            )

    def encoder_tokens(self, images: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """Raw encoder tokens ``[B, N, D]`` of uint8 images ``[B, H, W, 3]``.

        ``previous``: the frames before ``images`` (same shape), used by ``consecutive`` tubelets and
        ignored by ``duplicate`` ones; None encodes still scenes.
        """
        self.check_images(images)
        x = self._normalise(images)  # [B, 3, H, W]
        if self.cfg.tubelet == "consecutive" and previous is not None:
            self.check_images(previous, "previous frames")
            if previous.shape != images.shape:
                raise ValueError(
                    f"previous frames: shape {tuple(previous.shape)} differs from the images' "
                    f"{tuple(images.shape)}"
                )
            video = torch.stack([self._normalise(previous), x], dim=2)  # [B, 3, 2, H, W]
        else:
            video = x[:, :, None].expand(-1, -1, 2, -1, -1)  # [B, 3, 2, H, W]: a still tubelet
        return self.encoder(video)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div(255.0)
        return (x - self.pixel_mean) / self.pixel_std

    def encode_images(self, images: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-normed embeddings ``z[B, N, D]`` of uint8 images ``[B, H, W, 3]`` (see ``encoder_tokens``
        for ``previous``)."""
        return layer_norm_tokens(self.encoder_tokens(images, previous))

    def encode_episodes(self, frames: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Embeddings ``z[E, T, N, D]`` of every frame of episodes ``uint8[E, T, H, W, 3]``; each frame's
        tubelet holds its predecessor (the first frame's: itself) when the tubelets are consecutive."""
        e, t = frames.shape[:2]
        flat = frames.reshape(e * t, *frames.shape[2:])
        prev = None
        if self.cfg.tubelet == "consecutive":
            prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1).reshape(e * t, *frames.shape[2:])
        zs = [
            self.encode_images(flat[i : i + batch], None if prev is None else prev[i : i + batch]).float()
            for i in range(0, len(flat), batch)
        ]
        z = torch.cat(zs)
        return z.view(e, t, *z.shape[1:])

    def probe_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Per-token probe predictions in standardised units: ``z[..., N, D] -> [..., N, P]``."""
        return self.probe(z)

    def probe_positions(self, z: torch.Tensor) -> torch.Tensor:
        """Token-averaged probe read-out of the positions in metres: ``z[..., N, D] -> [..., P]``."""
        return self.probe_all(z)[..., : self.cfg.probe_dims]

    def probe_all(self, z: torch.Tensor) -> torch.Tensor:
        """Every probe output in metres (positions, then their motion for consecutive tubelets)."""
        return self.probe(z).mean(dim=-2) * self.probe_std + self.probe_mean

    # -- predictor -------------------------------------------------------------------------------------
    def predict(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``z[B, T, N, D]``, actions/states ``[B, T, 7]`` -> ``[B, T, N, D]``.

        Output step t is the prediction of step t + 1.
        """
        b, t, n, d = z.shape
        out = self.predictor(z.reshape(b, t * n, d), actions, states).view(b, t, n, d)
        if self.cfg.residual:
            out = z + out
        return layer_norm_tokens(out)

    def rollout(
        self,
        z0: torch.Tensor,
        state0: torch.Tensor,
        actions: torch.Tensor,
        history: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Autoregressive prediction from the current frame (and optionally the frames before it).

        ``z0[B, N, D]``, ``state0[B, 7]``, ``actions[B, H, 7]`` -> ``z[B, H, N, D]`` (the embeddings after
        each action). States follow ``apply_action``. Uses the predictor's key/value cache: each new step
        is one pass over its own tokens.

        ``history = (z[B, K, N, D], states[B, K, 7], actions[B, K, 7])``: the K observed frames before
        ``z0``, oldest first, with the actions executed from them. They are passed as block-causal context
        (as in teacher forcing), so the prediction can use the scene's recent motion; K + H must not
        exceed ``max_steps``.
        """
        b, h = actions.shape[:2]
        n, d = z0.shape[-2:]
        cache = None
        z_cur, s_cur = z0, state0
        outs = []
        for i in range(h):
            a = actions[:, i : i + 1]
            z_in, s_in = z_cur.reshape(b, 1, n, d), s_cur[:, None]
            if i == 0 and history is not None:
                zh, sh, ah = history
                z_in = torch.cat([zh.expand(b, -1, -1, -1), z_in], dim=1)
                s_in = torch.cat([sh.expand(b, -1, -1), s_in], dim=1)
                a = torch.cat([ah.expand(b, -1, -1), a], dim=1)
            k = z_in.shape[1]
            out, cache = self.predictor.forward_steps(
                z_in.reshape(b, k * n, d), a, s_in, cache=cache, return_cache=i + 1 < h
            )
            out = out.view(b, k, n, d)[:, -1]
            z_next = layer_norm_tokens(z_cur + out if self.cfg.residual else out)
            outs.append(z_next)
            s_cur = apply_action(s_cur, actions[:, i])
            z_cur = z_next
        return torch.stack(outs, dim=1)


def energy(z_pred: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
    """Planning energy: mean absolute difference over tokens and channels, ``[..., N, D] -> [...]``."""
    return (z_pred - z_goal).abs().mean(dim=(-2, -1))


def config_dict(cfg: SimModelConfig) -> dict:
    """The config as a plain dict (stored in checkpoints)."""
    return asdict(cfg)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))
