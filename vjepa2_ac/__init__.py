"""vjepa2-ac: V-JEPA 2-AC, an action-conditioned latent world model for robot planning.

Public model API: :func:`build_encoder`, :func:`build_predictor`, :class:`WorldModel`, the size registry
(:data:`MODEL_SIZES`, :func:`encoder_kwargs`) and checkpoint helpers.
"""

__version__ = "0.1.0"

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
