"""V-JEPA 2-AC action-conditioned predictor with official semantics plus incremental (cached) decoding.

Sequence layout: for every time step ``t`` the tokens ``[a_t, s_t, (e_t), z_t,0 .. z_t,HW-1]`` (condition
tokens first). Attention is block-causal (a step sees itself, bidirectionally, and all earlier steps);
patch tokens are rotated by 3-D RoPE at ``(t, row, col)``, condition tokens in time only. The output block
of step ``t`` (condition tokens dropped) is the prediction of step ``t + 1``.

Because a step only ever attends to earlier steps and itself, the keys/values of earlier steps never
change when a step is appended. :meth:`ACPredictor.forward_steps` exploits that with a per-layer key/value
cache: feeding one new step costs one step's compute instead of re-running the whole growing sequence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vjepa2_ac.encoder import _pair, compute_dtype
from vjepa2_ac.layers import Block, _linspace, init_vit_weights, rescale_blocks
from vjepa2_ac.rope import predictor_rope_tables

__all__ = ["ACPredictor", "KVBuffer", "KVCache", "build_predictor", "block_causal_mask"]


def block_causal_mask(steps: int, tokens_per_step: int, device=None) -> torch.Tensor:
    """Bool ``[steps*n, steps*n]`` mask, True where a query token's step is >= the key token's step."""
    step = torch.arange(steps, device=device).repeat_interleave(tokens_per_step)
    return step[:, None] >= step[None, :]


@dataclass(frozen=True)
class KVCache:
    """Per-layer keys/values of already processed steps (immutable; extending returns a new cache).

    ``layers[i] = (k, v)`` with shape ``[Bc, heads, steps * tokens_per_step, head_dim]``. A cache with
    ``Bc == 1`` broadcasts over any batch of new tokens (one shared context for many samples).
    """

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    steps: int

    @property
    def batch_size(self) -> int:
        return self.layers[0][0].shape[0]

    def select(self, index: torch.Tensor) -> KVCache:
        """The cache of a subset/reordering of the batch (``index`` into dim 0)."""
        return KVCache(tuple((k[index], v[index]) for k, v in self.layers), self.steps)


class KVBuffer:
    """Preallocated per-layer keys/values filled in place: a static-shape cache for inference rollouts.

    ``keys[i]`` / ``values[i]`` are ``[B, heads, capacity * tokens_per_step, head_dim]``; the rows of the
    first ``steps`` steps are filled. :meth:`ACPredictor.forward_steps` with ``cache=buffer`` writes the
    new steps' rotated keys/values into the next rows and advances ``steps`` (the same object is
    returned), so a rollout of ``H`` steps allocates once instead of concatenating a growing cache in
    every layer and step. Built by :meth:`ACPredictor.kv_buffer`; gradients are not supported (in-place).
    """

    def __init__(
        self, keys: list[torch.Tensor], values: list[torch.Tensor], steps: int, tokens_per_step: int
    ):
        self.keys, self.values = keys, values
        self.steps = steps
        self.tokens_per_step = tokens_per_step

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def capacity(self) -> int:
        """Maximum number of steps the buffer holds."""
        return self.keys[0].shape[2] // self.tokens_per_step

    @property
    def dtype(self) -> torch.dtype:
        return self.keys[0].dtype


class ACPredictor(nn.Module):
    """The AC predictor: ``predictor(x[B, T*H*W, D], actions[B, T, 7], states[B, T, 7], extrinsics=None)``.

    Accepts the official constructor keyword names; ``num_frames // tubelet_size`` is the maximum number of
    time steps (as officially, where the mask is built for that many steps). Parameter names equal the
    official ones, including ``extrinsics_encoder`` which exists even when ``use_extrinsics=False``.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        num_frames: int = 1,
        tubelet_size: int = 2,
        embed_dim: int = 768,
        predictor_embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        uniform_power: bool = True,
        use_silu: bool = False,
        wide_silu: bool = True,
        is_frame_causal: bool = True,
        use_activation_checkpointing: bool = False,
        use_rope: bool = True,
        action_embed_dim: int = 7,
        use_extrinsics: bool = False,
    ) -> None:
        # Resolved constructor arguments, saved in checkpoints so the model can be rebuilt.
        config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        self.config = config
        if use_silu:
            raise ValueError("use_silu=True (SwiGLU MLP) is not supported: V-JEPA 2-AC uses GELU MLPs")
        if not is_frame_causal:
            raise ValueError(
                "is_frame_causal=False is not supported (the official class crashes with it too)"
            )
        if not use_rope:
            raise ValueError("use_rope=False is not supported by the AC predictor (official models use RoPE)")
        self.img_size = _pair(img_size, "img_size")
        self.patch_size = int(patch_size)
        if any(s % self.patch_size for s in self.img_size):
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size={self.patch_size}")
        self.grid_height, self.grid_width = (s // self.patch_size for s in self.img_size)
        self.num_frames = int(num_frames)
        self.tubelet_size = int(tubelet_size)
        self.max_steps = self.num_frames // self.tubelet_size
        if self.max_steps < 1:
            raise ValueError(
                f"num_frames // tubelet_size = {num_frames} // {tubelet_size} must be >= 1 (max time steps)"
            )
        self.embed_dim = int(embed_dim)
        self.predictor_embed_dim = int(predictor_embed_dim)
        self.num_heads = int(num_heads)
        if predictor_embed_dim % num_heads or predictor_embed_dim // num_heads < 6:
            raise ValueError(
                f"predictor_embed_dim={predictor_embed_dim} must be divisible by num_heads={num_heads} "
                "with a head dim >= 6 (RoPE)"
            )
        self.action_embed_dim = int(action_embed_dim)
        self.use_extrinsics = bool(use_extrinsics)
        self.cond_tokens = 3 if self.use_extrinsics else 2
        self.use_activation_checkpointing = bool(use_activation_checkpointing)

        dp = self.predictor_embed_dim
        self.predictor_embed = nn.Linear(self.embed_dim, dp)
        self.action_encoder = nn.Linear(self.action_embed_dim, dp)
        self.state_encoder = nn.Linear(self.action_embed_dim, dp)
        self.extrinsics_encoder = nn.Linear(self.action_embed_dim - 1, dp)
        dpr = _linspace(drop_path_rate, depth)
        self.predictor_blocks = nn.ModuleList(
            Block(
                dp,
                self.num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[i],
                norm_eps=norm_eps,
            )
            for i in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(dp, eps=norm_eps)
        self.predictor_proj = nn.Linear(dp, self.embed_dim)
        self.apply(lambda m: init_vit_weights(m, init_std))
        rescale_blocks(self.predictor_blocks)
        self._masks: dict[tuple, torch.Tensor] = {}

    @property
    def tokens_per_frame(self) -> int:
        """Patch tokens per time step (``H * W`` of the predictor grid)."""
        return self.grid_height * self.grid_width

    # -- helpers -----------------------------------------------------------------------------------
    def _mask(self, new_steps: int, past_steps: int, device) -> torch.Tensor | None:
        """Bool ``[new*n, (past+new)*n]``: all past tokens visible, block-causal among the new ones."""
        if new_steps == 1:
            return None  # one step sees everything before it and itself: no mask needed
        key = (new_steps, past_steps, torch.device(device))
        mask = self._masks.get(key)
        if mask is None:
            n = self.cond_tokens + self.tokens_per_frame
            causal = block_causal_mask(new_steps, n, device=device)
            past = torch.ones(new_steps * n, past_steps * n, dtype=torch.bool, device=device)
            mask = torch.cat([past, causal], dim=1)
            if len(self._masks) > 16:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _check_inputs(self, x, actions, states, extrinsics) -> tuple[int, int]:
        hw = self.tokens_per_frame
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must be [B, T*{hw}, {self.embed_dim}], got {tuple(x.shape)}")
        if x.shape[1] % hw:
            raise ValueError(f"x has {x.shape[1]} tokens, not a multiple of {hw} tokens per frame")
        t = x.shape[1] // hw
        # Batch-1 inputs (e.g. one shared context) broadcast over the other inputs' batch.
        ext = extrinsics if self.use_extrinsics else None
        b = max(v.shape[0] for v in (x, actions, states, ext) if v is not None)
        if x.shape[0] not in (1, b):
            raise ValueError(f"x has batch {x.shape[0]}, other inputs {b} (need 1 or {b})")
        for name, v, d in (
            ("actions", actions, self.action_embed_dim),
            ("states", states, self.action_embed_dim),
        ):
            if v.ndim != 3 or v.shape[1:] != (t, d) or v.shape[0] not in (1, b):
                raise ValueError(f"{name} must be [B={b}, T={t}, {d}], got {tuple(v.shape)}")
        if self.use_extrinsics:
            d = self.action_embed_dim - 1
            if extrinsics is None:
                raise ValueError("this predictor has use_extrinsics=True: extrinsics [B, T, 6] are required")
            if extrinsics.ndim != 3 or extrinsics.shape[1:] != (t, d) or extrinsics.shape[0] not in (1, b):
                raise ValueError(f"extrinsics must be [B={b}, T={t}, {d}], got {tuple(extrinsics.shape)}")
        return t, b

    def _tokens(self, x, actions, states, extrinsics, t: int, b: int) -> torch.Tensor:
        """``[B, T*(K+HW), Dp]``: per step ``[a_t, s_t, (e_t), patches_t]``."""
        z = self.predictor_embed(x).view(x.shape[0], t, self.tokens_per_frame, -1).expand(b, -1, -1, -1)
        cond = [self.action_encoder(actions), self.state_encoder(states)]
        if self.use_extrinsics:
            cond.append(self.extrinsics_encoder(extrinsics))
        cond = [c.expand(b, -1, -1).to(z.dtype) for c in cond]  # [B, T, Dp] each
        seq = torch.cat([torch.stack(cond, dim=2), z], dim=2)  # [B, T, K+HW, Dp]
        return seq.flatten(1, 2)

    def _head(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Drops condition tokens, then ``predictor_norm`` + ``predictor_proj`` -> ``[B, T*HW, D]``."""
        b = x.shape[0]
        x = x.view(b, t, self.cond_tokens + self.tokens_per_frame, -1)[:, :, self.cond_tokens :]
        return self.predictor_proj(self.predictor_norm(x.flatten(1, 2)))

    def kv_buffer(
        self,
        batch: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device | str,
        prefix: KVCache | None = None,
    ) -> KVBuffer:
        """Empty :class:`KVBuffer` for ``batch`` samples and ``capacity`` steps (optionally with ``prefix``).

        ``prefix`` (e.g. a batch-1 context cache) is copied into the first rows once, broadcast over the
        batch. ``dtype`` must be the dtype the attention computes keys in (the autocast dtype under
        autocast).
        """
        n = self.cond_tokens + self.tokens_per_frame
        steps = prefix.steps if prefix is not None else 0
        if capacity < steps or capacity > self.max_steps:
            raise ValueError(
                f"kv_buffer: capacity {capacity} must be in [{steps} (prefix steps), {self.max_steps}]"
            )
        if prefix is not None and prefix.batch_size not in (1, batch):
            raise ValueError(
                f"kv_buffer: prefix has batch {prefix.batch_size}, buffer {batch} (need 1 or equal)"
            )
        hd = self.predictor_embed_dim // self.num_heads
        shape = (batch, self.num_heads, capacity * n, hd)
        keys, values = [], []
        for i in range(len(self.predictor_blocks)):
            k = torch.empty(shape, dtype=dtype, device=device)
            v = torch.empty(shape, dtype=dtype, device=device)
            if prefix is not None:
                pk, pv = prefix.layers[i]
                k[:, :, : steps * n].copy_(pk)
                v[:, :, : steps * n].copy_(pv)
            keys.append(k)
            values.append(v)
        return KVBuffer(keys, values, steps, n)

    # -- forward -----------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full block-causal pass: ``x[B, T*HW, D]`` -> ``[B, T*HW, D]`` (block t predicts step t+1)."""
        out, _ = self.forward_steps(x, actions, states, extrinsics, cache=None, return_cache=False)
        return out

    def forward_steps(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
        cache: KVCache | KVBuffer | None = None,
        return_cache: bool = True,
    ) -> tuple[torch.Tensor, KVCache | KVBuffer | None]:
        """Appends ``T`` new steps after those in ``cache``; returns their outputs and the extended cache.

        ``x[B, T*HW, D]``, ``actions``/``states`` ``[B, T, 7]`` (``extrinsics [B, T, 6]``) are the new steps;
        their time indices continue after ``cache.steps``. New tokens attend to every cached token and,
        block-causally, to each other. A cache of batch 1 broadcasts over ``B``. Output ``[B, T*HW, D]``
        equals the corresponding slice of :meth:`forward` on the whole sequence.

        With a :class:`KVBuffer` the new keys/values are written into it in place and the same buffer is
        returned (inference only; same outputs as with a :class:`KVCache` holding the same steps).
        """
        t, b = self._check_inputs(x, actions, states, extrinsics)
        past = cache.steps if cache is not None else 0
        buffered = isinstance(cache, KVBuffer)
        if buffered:
            if torch.is_grad_enabled():
                raise ValueError("a KVBuffer is filled in place and cannot carry gradients: use a KVCache")
            if len(cache.keys) != len(self.predictor_blocks):
                raise ValueError(
                    f"buffer has {len(cache.keys)} layers, predictor {len(self.predictor_blocks)}"
                )
            if b not in (1, cache.batch_size):
                raise ValueError(
                    f"buffer has batch {cache.batch_size}, new steps batch {b} (need 1 or equal)"
                )
            if past + t > cache.capacity:
                raise ValueError(f"buffer holds {cache.capacity} steps, {past} filled, {t} more requested")
            b = cache.batch_size
        elif cache is not None:
            if len(cache.layers) != len(self.predictor_blocks):
                raise ValueError(
                    f"cache has {len(cache.layers)} layers, predictor {len(self.predictor_blocks)}"
                )
            cb = cache.batch_size
            if cb != b and 1 not in (cb, b):
                raise ValueError(
                    f"cache has batch {cb}, new steps batch {b} (one of them must be 1 or both equal)"
                )
            b = max(b, cb)
        if past + t > self.max_steps:
            raise ValueError(
                f"{past + t} time steps exceed this predictor's limit num_frames // tubelet_size = "
                f"{self.num_frames} // {self.tubelet_size} = {self.max_steps} (raise num_frames)"
            )
        seq = self._tokens(x, actions, states, extrinsics, t, b)
        n = self.cond_tokens + self.tokens_per_frame
        cos, sin = predictor_rope_tables(
            self.max_steps,
            self.cond_tokens,
            self.grid_height,
            self.grid_width,
            self.predictor_embed_dim // self.num_heads,
            dtype=compute_dtype(seq),
            device=seq.device,
        )
        rope = (cos[past * n : (past + t) * n], sin[past * n : (past + t) * n])
        mask = self._mask(t, past, seq.device)
        if buffered:
            if cache.dtype != compute_dtype(seq):
                raise ValueError(f"buffer dtype {cache.dtype} != compute dtype {compute_dtype(seq)}")
            for i, blk in enumerate(self.predictor_blocks):
                seq = blk(seq, rope, mask, kv_buffer=(cache.keys[i], cache.values[i], past * n))
            cache.steps = past + t
            return self._head(seq, t), cache
        new_layers = []
        for i, blk in enumerate(self.predictor_blocks):
            past_kv = cache.layers[i] if cache is not None else None
            if self.use_activation_checkpointing and self.training and torch.is_grad_enabled():
                seq, kv = checkpoint(blk, seq, rope, mask, past_kv, True, use_reentrant=False)
            else:
                seq, kv = blk(seq, rope, mask, past_kv, True)
            if return_cache:
                new_layers.append(kv)
        out = self._head(seq, t)
        new_cache = KVCache(tuple(new_layers), past + t) if return_cache else None
        return out, new_cache


_IGNORED_OFFICIAL_KWARGS = {"norm_layer", "use_sdpa", "use_SiLU", "wide_SiLU"}


def build_predictor(**kwargs) -> ACPredictor:
    """Builds the AC predictor from the official constructor keyword names (see :class:`ACPredictor`).

    ``norm_layer`` and ``use_sdpa`` (swallowed by the official class) are accepted and ignored; other unknown
    keywords are errors. The resolved kwargs are ``predictor.config`` (saved in checkpoints).
    """
    ignored = sorted(k for k in kwargs if k in _IGNORED_OFFICIAL_KWARGS and k != "use_sdpa")
    if ignored:
        warnings.warn(f"build_predictor ignores official keyword(s) {ignored}", stacklevel=2)
    clean = {k: v for k, v in kwargs.items() if k not in _IGNORED_OFFICIAL_KWARGS}
    try:
        model = ACPredictor(**clean)
    except TypeError as e:
        raise TypeError(f"build_predictor: {e}") from None
    return model
