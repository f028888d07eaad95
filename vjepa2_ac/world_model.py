"""The V-JEPA 2-AC world model: encode observations, predict the next latent step, roll out a plan.

Shapes: ``z[B, S, N, D]`` are layer-normed (no affine, eps 1e-5) token embeddings of ``S`` time steps with
``N`` patch tokens each; ``states[B, S, 7]`` and ``actions[B, S, 7]`` follow ``vjepa2_ac.pose``.

Alignment of video frames to predictor time steps:

* ``"subsample"`` (project default, "Strategy A"): one step per tubelet of ``k = tubelet_size`` consecutive
  real frames; ``S = T // k`` (``T`` must be a multiple of ``k``). Each tubelet is encoded on its own, so a
  step's embedding depends only on its own frames: the same whether it comes from a training clip or is
  the current observation of a planner (the last ``k`` frames).
* ``"duplicate"`` (how the official checkpoints were trained): every frame is duplicated into its own
  tubelet and encoded separately, so ``S = T``.

A single image is always encoded by duplicating it into a tubelet (:meth:`WorldModel.encode_image`): a
still scene. Planners hand over raw ``uint8`` frames (:meth:`WorldModel.encode_frames`).

Two options of our training recipe (``vjepa2-ac train``, ``model.token_pool`` / ``model.residual``; both off
for the official checkpoints):

* ``token_pool = k``: the encoder's ``H x W`` patch grid is average-pooled ``k x k`` before the layer norm,
  so ``N = (H/k) * (W/k)``; the predictor is built for the pooled grid.
* ``residual``: the predictor head outputs a change, ``z_next = LN(z_in + P(...))``, where ``z_in`` is the
  step being fed (teacher forcing: the input step; rollout: the last context step, then the previous
  prediction). :func:`zero_residual_head` starts such a model at "copy the last step".

The module-level :func:`encode_video`, :func:`predict_steps` and :func:`pool_tokens` are the single
implementation shared by :class:`WorldModel` and the training objectives.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2_ac.encoder import VisionTransformer, build_encoder
from vjepa2_ac.predictor import ACPredictor, KVCache, build_predictor
from vjepa2_ac.state_probe import StateProbe

__all__ = [
    "WorldModel",
    "ALIGNMENTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "encode_video",
    "energy",
    "frames_to_video",
    "normalize",
    "pool_tokens",
    "predict_steps",
    "zero_residual_head",
]

ALIGNMENTS = ("subsample", "duplicate")
# The pixel normalisation of every V-JEPA 2 encoder (and of the DROID loader's VideoTransform).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check(name: str, x: torch.Tensor, ndim: int, last: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim or (last is not None and x.shape[-1] != last):
        want = f"{ndim}-D" + (f" with last dim {last}" if last is not None else "")
        raise ValueError(f"{name}: expected a {want} tensor, got shape {tuple(x.shape)}")


def _next_state(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``apply_action`` in float32 with autocast off: pose maths in bf16 would drift by millimetres."""
    from vjepa2_ac.pose import apply_action

    dtype = torch.promote_types(state.dtype, torch.float32)  # float64 stays float64
    with torch.autocast(state.device.type, enabled=False):
        return apply_action(state.to(dtype), action.to(dtype))


def frames_to_video(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames ``[B, T, H, W, 3]`` -> ImageNet-normalised float video ``[B, 3, T, H, W]``.

    The same values as the DROID loader's ``VideoTransform`` gives for frames already at the model size.
    """
    if not isinstance(frames, torch.Tensor):
        frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)  # [B, 3, T, H, W]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1, 1)
    return (x - mean) / std


def energy(z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
    """Planning energy: mean absolute difference over tokens and channels, ``[..., N, D] -> [...]``."""
    return (z - z_goal).abs().mean(dim=(-2, -1))


def normalize(z: torch.Tensor) -> torch.Tensor:
    """Per-token layer norm without affine parameters (eps 1e-5), as V-JEPA 2-AC normalises reps."""
    return F.layer_norm(z, (z.shape[-1],))


def pool_tokens(z: torch.Tensor, grid_hw: tuple[int, int], k: int) -> torch.Tensor:
    """Average-pools ``k x k`` neighbouring patch tokens: ``[B, S, H*W, D] -> [B, S, (H/k)*(W/k), D]``."""
    if k == 1:
        return z
    b, s, n, d = z.shape
    h, w = grid_hw
    if h * w != n:
        raise ValueError(f"token_pool: {n} tokens per step do not form the {h}x{w} patch grid")
    if h % k or w % k:
        raise ValueError(f"token_pool={k} must divide the {h}x{w} patch grid")
    x = z.reshape(b * s, h, w, d).permute(0, 3, 1, 2)  # [B*S, D, H, W]
    x = F.avg_pool2d(x, k)  # [B*S, D, H/k, W/k]
    return x.permute(0, 2, 3, 1).reshape(b, s, -1, d)


def _encode_clips(encoder: VisionTransformer, clips: torch.Tensor, token_pool: int) -> torch.Tensor:
    """``clips[B, C, T, H, W]`` (T a multiple of the tubelet) -> normed ``[B, T//k, N, D]``."""
    b, _, t, h, w = clips.shape
    d = encoder.embed_dim
    if encoder.is_video:
        tokens = encoder(clips)  # [B, (T/k)*N, D]
        steps = t // encoder.tubelet_size
    else:  # image encoder: every frame on its own
        frames = clips.permute(0, 2, 1, 3, 4).flatten(0, 1)  # [B*T, C, H, W]
        tokens = encoder(frames)
        steps = t
    tokens = tokens.reshape(b, steps, -1, d)
    if token_pool > 1:
        # Pool in float32 (bf16 sums of k*k tokens lose precision), as the training targets are built.
        p = encoder.patch_size
        tokens = pool_tokens(tokens.float(), (h // p, w // p), token_pool)
    return normalize(tokens)


def encode_video(
    encoder: VisionTransformer, video: torch.Tensor, alignment: str = "subsample", token_pool: int = 1
) -> torch.Tensor:
    """Layer-normed (optionally pooled) embeddings ``z[B, S, N, D]`` of ``video[B, C, T, H, W]``.

    ``alignment`` as in the module docstring: ``S = T // tubelet`` ("subsample": each tubelet of ``k``
    consecutive frames encoded on its own) or ``S = T`` ("duplicate": each frame repeated into its own
    tubelet and encoded alone).
    """
    _check("video", video, 5)
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    b, c, t, h, w = video.shape
    k = encoder.tubelet_size if encoder.is_video else 1
    if alignment == "subsample":
        if t % k:
            raise ValueError(
                f"video has T={t} frames, not a multiple of the tubelet size {k} (alignment 'subsample')"
            )
        s = t // k
        # [B, C, S*k, H, W] -> [B*S, C, k, H, W]: every tubelet its own clip
        tubelets = video.reshape(b, c, s, k, h, w).permute(0, 2, 1, 3, 4, 5).reshape(b * s, c, k, h, w)
        z = _encode_clips(encoder, tubelets, token_pool)  # [B*S, 1, N, D]
        return z.view(b, s, *z.shape[2:])
    # duplicate: [B, C, T, H, W] -> [B*T, C, k, H, W], each frame its own tubelet at time index 0
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, 1, h, w).expand(-1, -1, k, -1, -1)
    z = _encode_clips(encoder, frames, token_pool)  # [B*T, 1, N, D]
    return z.view(b, t, *z.shape[2:])


def predict_steps(
    predictor: ACPredictor,
    z: torch.Tensor,
    actions: torch.Tensor,
    states: torch.Tensor,
    extrinsics: torch.Tensor | None = None,
    residual: bool = False,
) -> torch.Tensor:
    """Block-causal teacher forcing ``z[B, S, N, D] -> LN(P(z) [+ z])[B, S, N, D]`` (output s predicts s+1).

    With ``residual`` the predictor output is a change added to its own input step before the layer norm.
    """
    b, s, n, d = z.shape
    out = predictor(z.reshape(b, s * n, d), actions, states, extrinsics)  # [B', S*N, D]
    out = out.view(out.shape[0], s, n, d)
    if residual:
        out = out + z
    return normalize(out)


@torch.no_grad()
def zero_residual_head(predictor: ACPredictor) -> None:
    """Zeroes the predictor's output projection: a residual model then starts at "copy the last step"."""
    nn.init.zeros_(predictor.predictor_proj.weight)
    nn.init.zeros_(predictor.predictor_proj.bias)


def _check_metadata(metadata: dict) -> dict:
    signals = metadata.get("training_signals", [])
    if not isinstance(signals, list) or not all(isinstance(x, str) for x in signals):
        raise ValueError(f"metadata 'training_signals': expected a list of names, got {signals!r}")
    return metadata


class WorldModel(nn.Module):
    """Frozen-encoder latent world model ``z_{t+1} = P(z_{<=t}, a_{<=t}, s_{<=t})``.

    Args:
        encoder: the V-JEPA 2 video encoder (:func:`vjepa2_ac.build_encoder`).
        predictor: the AC predictor (:func:`vjepa2_ac.build_predictor`); its grid must match the encoder's
            patch grid and its ``embed_dim`` the encoder width.
        alignment: ``"subsample"`` or ``"duplicate"`` (see the module docstring).
        token_pool: ``k >= 1``; average-pool ``k x k`` patch tokens before the layer norm (the predictor's
            grid must then be the encoder grid divided by ``k``).
        residual: the predictor outputs the change of the fed step (``z_next = LN(z_in + P(...))``).
        probe: an optional :class:`~vjepa2_ac.state_probe.StateProbe` that reads the robot state out of
            embeddings (trained with the encoder; used by diagnostics, never by the planning energy).
        metadata: plain data describing how the model was made, kept in its checkpoint:
            ``training_signals`` (the recorded quantities training used, e.g. ``["frames", "ee_state",
            "actions"]``), ``energy_per_metre`` (energy of a 1 m end-effector displacement, for
            distance-valued thresholds), ``camera``.
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        predictor: ACPredictor,
        alignment: str = "subsample",
        token_pool: int = 1,
        residual: bool = False,
        probe: StateProbe | None = None,
        metadata: dict | None = None,
    ) -> None:
        super().__init__()
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if isinstance(token_pool, bool) or not isinstance(token_pool, int) or token_pool < 1:
            raise ValueError(f"token_pool must be an int >= 1, got {token_pool!r}")
        if not isinstance(residual, bool):
            raise ValueError(f"residual must be a bool, got {residual!r}")
        grid = tuple(encoder.grid_size)
        if any(g % token_pool for g in grid):
            raise ValueError(
                f"token_pool={token_pool} must divide the encoder patch grid {grid[0]}x{grid[1]}"
            )
        pooled = (grid[0] // token_pool, grid[1] // token_pool)
        if pooled != (predictor.grid_height, predictor.grid_width):
            raise ValueError(
                f"predictor grid {predictor.grid_height}x{predictor.grid_width} != encoder patch grid "
                f"{grid[0]}x{grid[1]} pooled by token_pool={token_pool} ({pooled[0]}x{pooled[1]}); build the "
                f"predictor with img_size = encoder img_size // token_pool"
            )
        if encoder.embed_dim != predictor.embed_dim:
            raise ValueError(
                f"encoder width {encoder.embed_dim} != predictor embed_dim {predictor.embed_dim}"
            )
        if encoder.patch_size != predictor.patch_size:
            raise ValueError(f"encoder patch_size {encoder.patch_size} != predictor {predictor.patch_size}")
        self.encoder = encoder
        self.predictor = predictor
        self.alignment = alignment
        self.token_pool = token_pool
        self.residual = residual
        if probe is not None and probe.head.in_features != encoder.embed_dim:
            raise ValueError(f"probe width {probe.head.in_features} != encoder width {encoder.embed_dim}")
        self.probe = probe
        self.metadata = _check_metadata(dict(metadata or {}))

    # -- properties --------------------------------------------------------------------------------
    @property
    def tubelet_size(self) -> int:
        """Frames per encoder tubelet (1 for image encoders)."""
        return self.encoder.tubelet_size if self.encoder.is_video else 1

    @property
    def embed_dim(self) -> int:
        """Width ``D`` of the latent tokens."""
        return self.encoder.embed_dim

    @property
    def image_size(self) -> int:
        """Square input resolution of the encoder."""
        return int(
            self.encoder.img_size[0] if isinstance(self.encoder.img_size, tuple) else self.encoder.img_size
        )

    @property
    def frames_per_step(self) -> int:
        """Video frames (and control steps) one token step spans: the tubelet for ``subsample``, 1 for
        ``duplicate``."""
        return self.tubelet_size if self.alignment == "subsample" else 1

    @property
    def training_signals(self) -> list[str]:
        """The recorded quantities the model was trained on (``[]`` when unknown, e.g. official weights)."""
        return list(self.metadata.get("training_signals", []))

    @property
    def config(self) -> dict:
        """Constructor kwargs of both modules plus our options: enough to rebuild the model."""
        return {
            "encoder": dict(self.encoder.config),
            "predictor": dict(self.predictor.config),
            "alignment": self.alignment,
            "token_pool": self.token_pool,
            "residual": self.residual,
            "probe": None if self.probe is None else self.probe.config,
            "metadata": dict(self.metadata),
        }

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Per-token layer norm without affine parameters (eps 1e-5), as V-JEPA 2-AC normalises reps."""
        return normalize(z)

    def _next_z(self, out: torch.Tensor, z_in: torch.Tensor) -> torch.Tensor:
        """Normed next step from the predictor output ``out[B, N, D]``, fed step ``z_in[B|1, N, D]``."""
        return normalize(out + z_in if self.residual else out)

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Encodes a clip ``video[B, C, T, H, W]`` into ``z[B, S, N, D]`` (``S`` by the alignment)."""
        return encode_video(self.encoder, video, self.alignment, self.token_pool)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Encodes one frame ``image[B, C, H, W]`` (duplicated into a tubelet) into ``z[B, 1, N, D]``."""
        _check("image", image, 4)
        clip = image.unsqueeze(2).expand(-1, -1, self.tubelet_size, -1, -1)
        return _encode_clips(self.encoder, clip, self.token_pool)

    def _check_frames(self, frames: torch.Tensor, what: str) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        s = self.image_size
        if frames.dtype != torch.uint8 or frames.ndim != 5 or tuple(frames.shape[2:]) != (s, s, 3):
            raise ValueError(
                f"{what}: expected uint8 [B, T, {s}, {s}, 3] RGB frames (the model's image size is {s}), "
                f"got {frames.dtype} {tuple(frames.shape)}"
            )
        return frames

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Encodes raw ``uint8`` frames ``[B, T, H, W, 3]`` into ``z[B, S, N, D]`` (as :meth:`encode`)."""
        video = frames_to_video(self._check_frames(frames, "frames"))
        return self.encode(video.to(next(self.encoder.parameters()).device))

    def encode_observation(self, frames: torch.Tensor) -> torch.Tensor:
        """The current observation's embedding ``z[B, N, D]`` from the last ``K >= 1`` frames
        ``uint8[B, K, H, W, 3]`` (oldest first).

        ``subsample``: the tubelet of the last ``k`` frames (with fewer, the oldest frame is repeated, a
        scene at rest); ``duplicate``: the last frame duplicated into a tubelet.
        """
        frames = self._check_frames(frames, "observation frames")
        k = self.frames_per_step
        if frames.shape[1] < k:
            pad = frames[:, :1].expand(-1, k - frames.shape[1], -1, -1, -1)
            frames = torch.cat([pad, frames], dim=1)
        return self.encode_frames(frames[:, -k:])[:, 0]

    def energy(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """Planning energy (mean L1 over tokens and channels): ``[..., N, D] x [..., N, D] -> [...]``."""
        return energy(z, z_goal)

    # -- prediction --------------------------------------------------------------------------------
    def predict(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced prediction ``z[B, S, N, D]`` -> ``z_next[B, S, N, D]`` (output s predicts s+1).

        ``actions[B, S, 7]`` (action taken at each step), ``states[B, S, 7]``, optional ``extrinsics[B,S,6]``.
        """
        _check("z", z, 4, self.embed_dim)
        _check("actions", actions, 3, 7)
        _check("states", states, 3, 7)
        return predict_steps(self.predictor, z, actions, states, extrinsics, residual=self.residual)

    def context_cache(
        self,
        z_ctx: torch.Tensor,
        states_ctx: torch.Tensor,
        past_actions: torch.Tensor | None,
        extrinsics_ctx: torch.Tensor | None = None,
    ) -> KVCache | None:
        """Key/value cache of context steps ``0 .. S0-2`` (their actions are known); ``None`` if ``S0 == 1``.

        Independent of the planned actions, so a planner computes it once (batch 1) for all samples and
        iterations and passes it to :meth:`rollout` as ``cache``.
        """
        s0 = z_ctx.shape[1]
        if s0 == 1:
            return None
        b, _, n, d = z_ctx.shape
        ext = extrinsics_ctx[:, : s0 - 1] if extrinsics_ctx is not None else None
        _, cache = self.predictor.forward_steps(
            z_ctx[:, : s0 - 1].reshape(b, (s0 - 1) * n, d), past_actions, states_ctx[:, : s0 - 1], ext
        )
        return cache

    def rollout(
        self,
        z_ctx: torch.Tensor,
        states_ctx: torch.Tensor,
        actions: torch.Tensor,
        past_actions: torch.Tensor | None = None,
        use_cache: bool = True,
        extrinsics_ctx: torch.Tensor | None = None,
        cache: KVCache | None = None,
        static_kv: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive rollout of ``H`` planned actions from a context.

        Args:
            z_ctx: ``[B|1, S0, N, D]`` normed context embeddings.
            states_ctx: ``[B|1, S0, 7]`` context states.
            actions: ``[B, H, 7]``; ``actions[:, h]`` is taken at token step ``S0 - 1 + h``.
            past_actions: ``[B|1, S0-1, 7]`` actions between the context steps (``None`` if ``S0 == 1``).
            use_cache: ``True``: one predictor pass per new step over a per-layer key/value cache.
                ``False``: re-run the full growing sequence every step (the official planner's semantics).
            extrinsics_ctx: ``[B|1, S0, 6]`` for predictors with ``use_extrinsics``; the camera is assumed
                static during the rollout (the last context extrinsics are repeated).
            cache: optional precomputed :meth:`context_cache` (only with ``use_cache``).
            static_kv: with ``use_cache`` and gradients off, keep keys/values in one preallocated
                :class:`~vjepa2_ac.predictor.KVBuffer` filled in place (``False``: concatenate a growing
                :class:`~vjepa2_ac.predictor.KVCache` per layer and step; same results).

        Returns:
            ``z_pred[B, H, N, D]`` (normed predictions of steps ``S0 .. S0+H-1``) and ``states[B, H+1, 7]``
            where ``states[:, 0]`` is the last context state and ``states[:, h+1] = apply_action(states[:, h],
            actions[:, h])``.
        """
        _check("z_ctx", z_ctx, 4, self.embed_dim)
        _check("states_ctx", states_ctx, 3, 7)
        _check("actions", actions, 3, 7)
        s0, horizon = z_ctx.shape[1], actions.shape[1]
        if states_ctx.shape[1] != s0:
            raise ValueError(f"states_ctx has {states_ctx.shape[1]} steps, z_ctx {s0}")
        if s0 > 1:
            if past_actions is None:
                raise ValueError(f"past_actions [B|1, {s0 - 1}, 7] are required for a context of {s0} steps")
            _check("past_actions", past_actions, 3, 7)
            if past_actions.shape[1] != s0 - 1:
                raise ValueError(f"past_actions must have S0-1={s0 - 1} steps, got {past_actions.shape[1]}")
        if horizon < 1:
            raise ValueError("actions must contain at least one step (H >= 1)")
        if self.predictor.use_extrinsics:
            if extrinsics_ctx is None:
                raise ValueError("the predictor uses extrinsics: pass extrinsics_ctx [B|1, S0, 6]")
            _check("extrinsics_ctx", extrinsics_ctx, 3, 6)
        if cache is not None and not use_cache:
            raise ValueError("a precomputed cache can only be used with use_cache=True")
        b = actions.shape[0]
        n, d = z_ctx.shape[2], z_ctx.shape[3]
        states = [states_ctx[:, -1].expand(b, -1).to(torch.promote_types(states_ctx.dtype, torch.float32))]
        preds = []

        def ext_for(steps: int) -> torch.Tensor | None:
            if not self.predictor.use_extrinsics:
                return None
            e = extrinsics_ctx
            if steps > s0:
                e = torch.cat([e, e[:, -1:].expand(-1, steps - s0, -1)], dim=1)
            return e[:, :steps]

        if use_cache:
            if cache is None:
                cache = self.context_cache(z_ctx, states_ctx, past_actions, extrinsics_ctx)
            if static_kv and not torch.is_grad_enabled():
                from vjepa2_ac.encoder import compute_dtype

                # Static shapes: one preallocated key/value buffer for the whole rollout, filled in place
                # (holds the context prefix once, instead of concatenating a growing cache per layer/step).
                batch = max(b, z_ctx.shape[0], states_ctx.shape[0])
                capacity = (s0 - 1) + horizon
                cache = self.predictor.kv_buffer(batch, capacity, compute_dtype(z_ctx), z_ctx.device, cache)
            z_in, s_in = z_ctx[:, -1], states_ctx[:, -1:]  # [B|1, N, D], [B|1, 1, 7]
            for h in range(horizon):
                e = ext_for(s0 + h)
                e = e[:, -1:] if e is not None else None
                out, cache = self.predictor.forward_steps(z_in, actions[:, h : h + 1], s_in, e, cache=cache)
                z_in = self._next_z(out, z_in)  # [B, N, D]
                preds.append(z_in)
                states.append(_next_state(states[-1], actions[:, h]))
                s_in = states[-1][:, None]
        else:
            z_seq = z_ctx.expand(b, -1, -1, -1)
            s_seq = states_ctx.expand(b, -1, -1)
            past = past_actions.expand(b, -1, -1) if s0 > 1 else actions[:, :0]
            for h in range(horizon):
                acts = torch.cat([past, actions[:, : h + 1]], dim=1)  # [B, S0+h, 7]
                steps = s0 + h
                out = self.predictor(z_seq.reshape(b, steps * n, d), acts, s_seq, ext_for(steps))
                nxt = self._next_z(out[:, -n:], z_seq[:, -1])  # [B, N, D]
                preds.append(nxt)
                states.append(_next_state(states[-1], actions[:, h]))
                z_seq = torch.cat([z_seq, nxt[:, None].to(z_seq.dtype)], dim=1)
                s_seq = torch.cat([s_seq, states[-1][:, None]], dim=1)
        return torch.stack(preds, dim=1), torch.stack(states, dim=1)

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path, **extra) -> Path:
        """Writes weights and :attr:`config` atomically (see :func:`vjepa2_ac.checkpoint.save_checkpoint`)."""
        from vjepa2_ac.checkpoint import save_checkpoint

        return save_checkpoint(path, self, self.config, **extra)

    @classmethod
    def from_config(cls, config: dict) -> WorldModel:
        """Builds an (untrained) model from a :attr:`config` dict.

        ``token_pool`` / ``residual`` default to 1 / False (configs written before they existed). A residual
        model's head is zero-initialised, as training starts it.
        """
        for key in ("encoder", "predictor"):
            if not isinstance(config.get(key), dict):
                raise ValueError(f"world-model config needs a dict entry {key!r} of constructor kwargs")
        residual = config.get("residual", False)
        probe = config.get("probe")
        if probe is not None and not isinstance(probe, dict):
            raise ValueError(f"world-model config 'probe': expected a dict or None, got {probe!r}")
        model = cls(
            build_encoder(**config["encoder"]),
            build_predictor(**config["predictor"]),
            alignment=config.get("alignment", "subsample"),
            token_pool=config.get("token_pool", 1),
            residual=residual,
            probe=StateProbe(**probe) if probe else None,
            metadata=config.get("metadata"),
        )
        if residual:
            zero_residual_head(model.predictor)
        return model

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
        """Rebuilds a model saved by :meth:`save` and loads its weights strictly.

        The file's hash and weights are checked by :func:`~vjepa2_ac.checkpoint.load_checkpoint`; its
        config is first built on the ``meta`` device and compared with the weights present, so a config
        that asks for a larger model than the file holds fails before any real allocation.
        """
        from vjepa2_ac.checkpoint import CheckpointError, build_checked, load_checkpoint

        ckpt = load_checkpoint(path, map_location=map_location)
        config, state = ckpt["config"], ckpt["state_dict"]
        what = f"world model from {path}"
        # Module construction is a Python loop per layer: bound the layer counts by the tensors present.
        for part in ("encoder", "predictor"):
            depth = (config.get(part) or {}).get("depth", 0) if isinstance(config.get(part), dict) else 0
            if not isinstance(depth, int) or not 0 <= depth <= len(state):
                raise CheckpointError(
                    f"{path}: config {part}.depth={depth!r} does not fit the {len(state)} tensors in the file"
                )
        return build_checked(lambda: cls.from_config(config), state, what=what)
