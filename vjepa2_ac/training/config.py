"""Typed training configurations, loaded from YAML with strict key and value checking.

Every stage has one top-level dataclass (:class:`PretrainConfig`, :class:`TrainACConfig`,
:class:`ProbeConfig`). They are built from nested dicts by :func:`from_dict`, which rejects unknown keys
and wrongly typed values with a :class:`ConfigError` naming the dotted key (``model.encoder.num_heads``),
and each dataclass checks impossible values in ``__post_init__``. :func:`load_config` reads a YAML file
(a path or the name of a packaged preset under ``vjepa2_ac/configs``) and applies ``key.path=value``
overrides; :func:`save_config` writes the resolved config of a run.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the dotted key."""

    def __init__(self, key: str, msg: str):
        super().__init__(f"config key '{key}': {msg}")
        self.key, self.msg = key, msg


def _fail(key: str, msg: str) -> None:
    raise ConfigError(key, msg)


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------


@dataclass
class EncoderConfig:
    """Constructor arguments of the ViT encoder (official ``VisionTransformer`` names)."""

    img_size: int = 64
    patch_size: int = 8
    num_frames: int = 16  # only decides image vs video and the square fallback with RoPE
    tubelet_size: int = 2
    embed_dim: int = 96
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    use_rope: bool = True

    def __post_init__(self) -> None:
        _positive(self, "", ["img_size", "patch_size", "num_frames", "tubelet_size"])
        _positive(self, "", ["embed_dim", "depth", "num_heads", "mlp_ratio"])
        if self.embed_dim % self.num_heads:
            _fail(
                "embed_dim",
                f"width {self.embed_dim} is not divisible by num_heads={self.num_heads}",
            )
        if self.img_size % self.patch_size:
            _fail("img_size", f"{self.img_size} is not divisible by patch_size={self.patch_size}")
        if self.tubelet_size > self.num_frames:
            _fail(
                "tubelet_size",
                f"tubelet of {self.tubelet_size} frames is larger than num_frames={self.num_frames}",
            )

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.img_size // self.patch_size

    def kwargs(self, activation_checkpointing: bool = False) -> dict[str, Any]:
        """Keyword arguments for :func:`vjepa2_ac.build_encoder`."""
        return dict(
            img_size=self.img_size,
            patch_size=self.patch_size,
            num_frames=self.num_frames,
            tubelet_size=self.tubelet_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            use_rope=self.use_rope,
            use_activation_checkpointing=activation_checkpointing,
        )


@dataclass
class PredictorConfig:
    """Constructor arguments of the AC predictor (official ``VisionTransformerPredictorAC`` names)."""

    predictor_embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    max_steps: int = 16  # block-causal mask size in token steps (official: num_frames // tubelet_size)
    use_extrinsics: bool = False

    def __post_init__(self) -> None:
        _positive(self, "", ["predictor_embed_dim", "depth", "num_heads", "mlp_ratio", "max_steps"])
        if self.predictor_embed_dim % self.num_heads:
            _fail(
                "predictor_embed_dim",
                f"width {self.predictor_embed_dim} is not divisible by num_heads={self.num_heads}",
            )

    def kwargs(self, enc: EncoderConfig, activation_checkpointing: bool = False) -> dict[str, Any]:
        """Keyword arguments for :func:`vjepa2_ac.build_predictor` (grid and width from the encoder)."""
        return dict(
            img_size=enc.img_size,
            patch_size=enc.patch_size,
            num_frames=self.max_steps * enc.tubelet_size,
            tubelet_size=enc.tubelet_size,
            embed_dim=enc.embed_dim,
            predictor_embed_dim=self.predictor_embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            use_extrinsics=self.use_extrinsics,
            use_rope=True,
            is_frame_causal=True,
            action_embed_dim=7,
            use_activation_checkpointing=activation_checkpointing,
        )


@dataclass
class MaskPredictorConfig:
    """The small mask-token predictor used by encoder pretraining."""

    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        _positive(self, "", ["embed_dim", "depth", "num_heads", "mlp_ratio"])
        if self.embed_dim % self.num_heads:
            _fail(
                "embed_dim",
                f"width {self.embed_dim} is not divisible by num_heads={self.num_heads}",
            )


@dataclass
class MaskBlockConfig:
    """One family of 3D multi-block tube masks (official ``_MaskGenerator`` settings)."""

    num_blocks: int = 8
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    temporal_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            _fail("num_blocks", f"must be >= 1, got {self.num_blocks}")
        for name in ("spatial_scale", "temporal_scale", "aspect_ratio"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1] or v[0] <= 0:
                _fail(name, f"expected [min, max] with 0 < min <= max, got {v}")
        for name in ("spatial_scale", "temporal_scale"):
            if getattr(self, name)[1] > 1:
                _fail(name, f"fractions must be <= 1, got {getattr(self, name)}")


@dataclass
class DataConfig:
    """Where clips come from and how they are cut."""

    format: str = "raw"  # raw | rlds | lerobot
    paths: list[str] = field(
        default_factory=list
    )  # episode dirs, roots or list files (raw); dataset dirs (rlds, lerobot)
    frames_per_clip: int = 8
    fps: float = 4.0
    camera: str = "left"  # left | right | wrist (metadata key <role>_mp4_path), or a camera serial
    crop: str = "droid"  # droid (official deterministic crop) | random | none
    batch_size: int = 8  # per process
    num_workers: int = 0
    reader_kwargs: dict[str, Any] = field(default_factory=dict)  # extra reader arguments, passed through
    # lerobot only: {} or {preset: droid} for DROID's port, else LeRobotMapping fields (position,
    # orientation, orientation_format, gripper, gripper_range, camera) of another robot.
    lerobot: dict[str, Any] = field(default_factory=dict)
    # Stage 2 only: encode every clip once with the frozen encoder and train the predictor on the cache.
    cache_embeddings: bool = False
    cache_passes: int = 1  # clips drawn per episode into the cache

    def __post_init__(self) -> None:
        if self.format not in ("raw", "rlds", "lerobot"):
            _fail("format", f"expected 'raw', 'rlds' or 'lerobot', got {self.format!r}")
        if self.lerobot:
            from vjepa2_ac.datasets.lerobot_mapping import mapping_from_options

            try:
                mapping_from_options(self.lerobot)
            except (TypeError, ValueError) as e:
                _fail("lerobot", str(e))
        _positive(self, "", ["frames_per_clip", "fps", "batch_size", "cache_passes"])
        if self.num_workers < 0:
            _fail("num_workers", f"must be >= 0, got {self.num_workers}")
        if self.crop not in ("droid", "random", "none"):
            _fail("crop", f"expected droid|random|none, got {self.crop!r}")


@dataclass
class OptimConfig:
    """AdamW with a warm-up schedule; weight decay only on non-bias tensors with ndim > 1."""

    schedule: str = "wsd"  # wsd (warmup-constant-decay) | cosine (warmup-cosine)
    total_steps: int = 100
    warmup_steps: int = 10
    anneal_steps: int = 10  # wsd only: linear decay to final_lr over the last anneal_steps
    start_lr: float = 7.5e-5
    lr: float = 4.25e-4
    final_lr: float = 0.0
    weight_decay: float = 0.04
    final_weight_decay: float = 0.04  # cosine from weight_decay to final_weight_decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 0.0  # 0 = off

    def __post_init__(self) -> None:
        if self.schedule not in ("wsd", "cosine"):
            _fail("schedule", f"expected 'wsd' or 'cosine', got {self.schedule!r}")
        _positive(self, "", ["total_steps"])
        for k in (
            "warmup_steps",
            "anneal_steps",
            "start_lr",
            "final_lr",
            "weight_decay",
            "final_weight_decay",
        ):
            if getattr(self, k) < 0:
                _fail(k, f"must be >= 0, got {getattr(self, k)}")
        if self.lr <= 0:
            _fail("lr", f"must be > 0, got {self.lr}")
        budget = self.warmup_steps + (self.anneal_steps if self.schedule == "wsd" else 0)
        if budget > self.total_steps:
            _fail(
                "warmup_steps",
                f"warmup ({self.warmup_steps}) + anneal ({self.anneal_steps}) exceeds "
                f"total_steps={self.total_steps}",
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            _fail("betas", f"expected two values in [0, 1), got {self.betas}")
        if self.grad_clip < 0:
            _fail("grad_clip", f"must be >= 0, got {self.grad_clip}")


@dataclass
class RunConfig:
    """Bookkeeping: precision, checkpoints, logging, budget."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True
    activation_checkpointing: bool = False
    checkpoint_every: int = 50  # steps; a checkpoint is also written at the end
    log_every: int = 1
    max_minutes: float = 0.0  # 0 = no time budget
    tensorboard: bool = True
    threads: int = 0  # torch CPU threads per process; 0 = torch's default (1 is faster on a crowded CPU)

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            _fail("device", f"expected auto|cpu|cuda, got {self.device!r}")
        _positive(self, "", ["checkpoint_every", "log_every"])
        if self.max_minutes < 0:
            _fail("max_minutes", f"must be >= 0, got {self.max_minutes}")
        if self.threads < 0:
            _fail("threads", f"must be >= 0, got {self.threads}")


@dataclass
class ACModelConfig:
    """World model of stage 2: frozen encoder + AC predictor."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    alignment: str = "subsample"  # subsample | duplicate
    token_pool: int = 1  # k: average-pool k x k patch tokens of the frozen encoder before layer norm
    residual: bool = False  # predictor output = input step + predicted change (zero-initialised head)

    def __post_init__(self) -> None:
        if self.alignment not in ("subsample", "duplicate"):
            _fail("alignment", f"expected 'subsample' or 'duplicate', got {self.alignment!r}")
        if self.token_pool < 1 or self.encoder.grid % self.token_pool:
            _fail(
                "token_pool",
                f"must be >= 1 and divide the patch grid {self.encoder.grid}, got {self.token_pool}",
            )


@dataclass
class InitConfig:
    """Where initial weights come from (all optional)."""

    encoder_checkpoint: str = ""  # a checkpoint written by `vjepa2-ac pretrain` (or any ours with an encoder)
    official_checkpoint: str = ""  # an official V-JEPA 2(-AC) .pt file on a local path
    predictor_checkpoint: str = ""  # continue from one of our AC checkpoints (predictor weights)


@dataclass
class LossConfig:
    """Stage 2 loss: teacher forcing over all steps + auto-regressive rollout."""

    auto_steps: int = 2  # rollout length of the auto-regressive loss (official: 2)
    loss_exp: float = 1.0  # 1 = L1
    rollout_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.auto_steps < 0:
            _fail("auto_steps", f"must be >= 0, got {self.auto_steps}")
        _positive(self, "", ["loss_exp"])
        if self.rollout_weight < 0:
            _fail("rollout_weight", f"must be >= 0, got {self.rollout_weight}")


@dataclass
class TrainACConfig:
    """Stage 2: AC-predictor training on a frozen encoder (``vjepa2-ac train``)."""

    model: ACModelConfig = field(default_factory=ACModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    init: InitConfig = field(default_factory=InitConfig)

    def __post_init__(self) -> None:
        enc = self.model.encoder
        frames = self.data.frames_per_clip
        if enc.tubelet_size > frames:
            _fail(
                "model.encoder.tubelet_size",
                f"tubelet of {enc.tubelet_size} frames is larger than the clip "
                f"(data.frames_per_clip={frames})",
            )
        if self.model.alignment == "subsample" and frames % enc.tubelet_size:
            _fail(
                "data.frames_per_clip",
                f"{frames} frames do not split into tubelets of {enc.tubelet_size} (alignment 'subsample')",
            )
        steps = self.steps_per_clip
        if steps < 2:
            _fail("data.frames_per_clip", f"a clip must give >= 2 token steps, got {steps}")
        if steps > self.model.predictor.max_steps:
            _fail(
                "model.predictor.max_steps",
                f"{self.model.predictor.max_steps} is smaller than the {steps} token steps of a clip",
            )
        if self.loss.auto_steps > steps - 1:
            _fail(
                "loss.auto_steps", f"{self.loss.auto_steps} rollout steps need more than {steps} token steps"
            )

    @property
    def steps_per_clip(self) -> int:
        """Token steps S of one clip."""
        f = self.data.frames_per_clip
        return f // self.model.encoder.tubelet_size if self.model.alignment == "subsample" else f


@dataclass
class PretrainModelConfig:
    """Stage 1 models: context/target encoder and mask-token predictor."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mask_predictor: MaskPredictorConfig = field(default_factory=MaskPredictorConfig)


def _default_masks() -> list[MaskBlockConfig]:
    return [
        MaskBlockConfig(num_blocks=8, spatial_scale=[0.15, 0.15]),
        MaskBlockConfig(num_blocks=2, spatial_scale=[0.7, 0.7]),
    ]


@dataclass
class PretrainConfig:
    """Stage 1: V-JEPA masked latent prediction (``vjepa2-ac pretrain``)."""

    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            schedule="cosine", start_lr=1e-4, lr=5.25e-4, final_lr=5.25e-4, warmup_steps=10, anneal_steps=0
        )
    )
    masks: list[MaskBlockConfig] = field(default_factory=_default_masks)
    ema: list[float] = field(default_factory=lambda: [0.99925, 0.99925])
    loss_exp: float = 1.0
    # Weight of the masked latent prediction (the paper's objective); 0 trains the encoder with the
    # state-geometry terms alone.
    jepa_weight: float = 1.0
    # State geometry (label-free: DROID records the state; not in the paper recipe): every token of each
    # tubelet's embedding linearly decodes the state of its step (aux_probe_weight), and the embedding is
    # pulled towards a learned linear map of that state (manifold_weight), so that the planning energy
    # grows with the end-effector distance. aux_probe_dims: the state dims used by both (EE xyz).
    aux_probe_weight: float = 0.0
    manifold_weight: float = 0.0
    aux_probe_dims: list[int] = field(default_factory=lambda: [0, 1, 2])
    # Ablation only (not label-free): per-frame arrays of each episode's simulator record ``sim.npz``
    # (e.g. [block_pos]) that the state-geometry terms decode and map beside the state; the checkpoint's
    # training_signals then name them (sim_block_position). Raw-layout data written by `collect` only.
    sim_labels: list[str] = field(default_factory=list)
    run: RunConfig = field(default_factory=RunConfig)
    init: InitConfig = field(default_factory=InitConfig)

    def __post_init__(self) -> None:
        enc = self.model.encoder
        if enc.tubelet_size > self.data.frames_per_clip:
            _fail(
                "model.encoder.tubelet_size",
                f"tubelet of {enc.tubelet_size} frames is larger than the clip "
                f"(data.frames_per_clip={self.data.frames_per_clip})",
            )
        if self.data.frames_per_clip % enc.tubelet_size:
            _fail(
                "data.frames_per_clip",
                f"{self.data.frames_per_clip} frames do not split into tubelets of {enc.tubelet_size}",
            )
        if not self.masks:
            _fail("masks", "at least one mask family is needed")
        if len(self.ema) != 2 or not all(0 <= m <= 1 for m in self.ema):
            _fail("ema", f"expected [start, end] momenta in [0, 1], got {self.ema}")
        for name in ("jepa_weight", "aux_probe_weight", "manifold_weight"):
            if getattr(self, name) < 0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")
        if self.jepa_weight == 0 and self.aux_probe_weight == 0 and self.manifold_weight == 0:
            _fail("jepa_weight", "every loss weight is 0: nothing would be trained")
        for d in self.aux_probe_dims:
            if not 0 <= d < 7:
                _fail("aux_probe_dims", f"state dims are 0..6, got {d}")
        _positive(self, "", ["loss_exp"])
        if self.sim_labels:
            if self.aux_probe_weight == 0 and self.manifold_weight == 0:
                _fail(
                    "sim_labels",
                    "are read by the state-geometry terms: set aux_probe_weight or manifold_weight",
                )
            if self.data.format != "raw":
                _fail(
                    "sim_labels",
                    f"need raw-layout episodes with sim.npz, data.format is {self.data.format!r}",
                )
            if len(set(self.sim_labels)) != len(self.sim_labels) or not all(
                isinstance(n, str) and n for n in self.sim_labels
            ):
                _fail("sim_labels", f"expected distinct sim.npz array names, got {self.sim_labels}")


@dataclass
class ProbeConfig:
    """A probe on frozen (or fine-tuned) encoder embeddings (``vjepa2-ac probe``)."""

    encoder_checkpoint: str = ""  # empty = a randomly initialised encoder (baseline)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # used when no checkpoint is given
    data: DataConfig = field(
        default_factory=lambda: DataConfig(frames_per_clip=2, fps=15.0, crop="none", batch_size=16)
    )
    head: str = "linear"  # linear | attentive
    finetune: bool = False  # False = frozen encoder (linear probing)
    # h5 datasets of the episode's trajectory.h5 (optionally sliced); their value at the clip's first
    # frame is the target.
    targets: list[str] = field(default_factory=lambda: ["observation/robot_state/cartesian_position[0:3]"])
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.25
    clips_per_episode: int = 4
    run: RunConfig = field(default_factory=lambda: RunConfig(checkpoint_every=1000))

    def __post_init__(self) -> None:
        if self.head not in ("linear", "attentive"):
            _fail("head", f"expected 'linear' or 'attentive', got {self.head!r}")
        if not self.targets:
            _fail("targets", "at least one target key is needed")
        _positive(self, "", ["steps", "lr", "clips_per_episode"])
        if not 0 < self.val_fraction < 1:
            _fail("val_fraction", f"must be in (0, 1), got {self.val_fraction}")


def _positive(obj: Any, prefix: str, names: list[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        if v <= 0:
            _fail(f"{prefix}.{n}" if prefix else n, f"must be > 0, got {v}")


# ------------------------------------------------------------------------------------------------
# dict <-> dataclass
# ------------------------------------------------------------------------------------------------

T = typing.TypeVar("T")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key)
            except ConfigError as e:
                errors.append(str(e))
        _fail(key, f"value {value!r} matches none of {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            _fail(key, f"expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            _fail(key, f"expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            _fail(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            _fail(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        number = _to_float(value, key)
        if not math.isfinite(number):  # no setting of ours means anything at NaN or infinity
            _fail(key, f"expected a finite number, got {number}")
        return number
    if tp is str:
        if not isinstance(value, str):
            _fail(key, f"expected a string, got {value!r}")
        return value
    return value


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d*)?\s*/\s*\d+(\.\d*)?\s*", value):
        num, den = value.split("/")
        if float(den) == 0:
            _fail(key, f"expected a number, got {value!r} (division by zero)")
        return float(num) / float(den)  # e.g. mlp_ratio "48/11" exactly as the official factory
    if isinstance(value, str):
        try:
            return float(value)  # PyYAML reads "3e-3" (no dot) as a string
        except ValueError:
            _fail(key, f"expected a number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, f"expected a number, got {value!r}")
    return float(value)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, failing on unknown keys or wrong types (naming the key)."""
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(key, f"unknown key; valid keys here: {', '.join(sorted(names))}")
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            # A partial section is merged onto this field's default (which may differ from the section
            # class's defaults, e.g. the pretraining schedule).
            default = _field_default(cls, k)
            if default is not None:
                v = _merge(dataclasses.asdict(default), v)
        kwargs[k] = _coerce(tp, v, key)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        # __post_init__ checks name keys relative to their own section.
        if not prefix:
            raise
        raise ConfigError(f"{prefix}.{e.key}", e.msg) from None


def _field_default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts/lists (YAML-serialisable)."""
    return dataclasses.asdict(cfg)


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(dotted, f"'{p}' is not a section")
        cur = nxt
    cur[parts[-1]] = value


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML path, or the name of a packaged preset (``tiny_sim`` -> ``vjepa2_ac/configs/tiny_sim.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    preset = CONFIG_DIR / (p.name if p.suffix == ".yaml" else f"{p.name}.yaml")
    if preset.is_file() and len(p.parts) == 1:
        return preset
    presets = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(
        f"config {str(name_or_path)!r} is neither a file nor a preset ({', '.join(presets)})"
    )


def load_config(cls: type[T], source: str | os.PathLike | dict | None = None, overrides: list[str] = ()) -> T:
    """Load ``cls`` from a YAML file/preset name (or a dict), then apply ``a.b=value`` (YAML) overrides."""
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, dict):
        data = copy.deepcopy(source)  # overrides must not leak into the caller's dict
    else:
        path = resolve_config_path(source)
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ConfigError("<root>", f"config file {path}: expected a mapping at the top level")
        data.pop("_preset", None)  # free-text description allowed in presets
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(ov, "override: expected KEY=VALUE (e.g. optim.lr=1e-3)")
        k, v = ov.split("=", 1)
        _set_dotted(data, k.strip(), yaml.safe_load(v))
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    from vjepa2_ac.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
