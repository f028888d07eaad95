"""vjepa2-ac: V-JEPA 2-AC, an action-conditioned latent world model for robot planning.

Public model API: :func:`build_encoder`, :func:`build_predictor`, :class:`WorldModel`, the size registry
(:data:`MODEL_SIZES`, :func:`encoder_kwargs`) and checkpoint helpers. The names are resolved lazily, so
``import vjepa2_ac.<subpackage>`` (e.g. the CLI's ``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> defining module
_EXPORTS = {
    "CheckpointError": "vjepa2_ac.checkpoint",
    "load_checkpoint": "vjepa2_ac.checkpoint",
    "load_official_checkpoint": "vjepa2_ac.checkpoint",
    "save_checkpoint": "vjepa2_ac.checkpoint",
    "VisionTransformer": "vjepa2_ac.encoder",
    "build_encoder": "vjepa2_ac.encoder",
    "ACPredictor": "vjepa2_ac.predictor",
    "KVCache": "vjepa2_ac.predictor",
    "build_predictor": "vjepa2_ac.predictor",
    "MODEL_SIZES": "vjepa2_ac.sizes",
    "PREDICTOR_SIZES": "vjepa2_ac.sizes",
    "count_encoder_params": "vjepa2_ac.sizes",
    "count_predictor_params": "vjepa2_ac.sizes",
    "encoder_kwargs": "vjepa2_ac.sizes",
    "predictor_kwargs": "vjepa2_ac.sizes",
    "WorldModel": "vjepa2_ac.world_model",
}

__all__ = [
    "__version__",
    "ACPredictor",
    "CheckpointError",
    "KVCache",
    "MODEL_SIZES",
    "PREDICTOR_SIZES",
    "VisionTransformer",
    "WorldModel",
    "build_encoder",
    "build_predictor",
    "count_encoder_params",
    "count_predictor_params",
    "encoder_kwargs",
    "load_checkpoint",
    "load_official_checkpoint",
    "predictor_kwargs",
    "save_checkpoint",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vjepa2_ac' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for static analysis and IDEs
    from vjepa2_ac.checkpoint import (
        CheckpointError,
        load_checkpoint,
        load_official_checkpoint,
        save_checkpoint,
    )
    from vjepa2_ac.encoder import VisionTransformer, build_encoder
    from vjepa2_ac.predictor import ACPredictor, KVCache, build_predictor
    from vjepa2_ac.sizes import (
        MODEL_SIZES,
        PREDICTOR_SIZES,
        count_encoder_params,
        count_predictor_params,
        encoder_kwargs,
        predictor_kwargs,
    )
    from vjepa2_ac.world_model import WorldModel
