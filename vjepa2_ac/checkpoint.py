"""Checkpoints: our own (weights + constructor config) and Meta's official V-JEPA 2 / 2-AC files.

Every file is read with ``torch.load(..., weights_only=True)`` through :func:`safe_load`, which turns a
refused pickle, a truncated or damaged file into a one-line :class:`CheckpointError` naming the file.
Writes are atomic (temporary file in the same folder, then ``os.replace``), so an interrupted save never
leaves a truncated checkpoint behind. Our checkpoints carry a sha256 of their config and tensors
(``sha256`` entry), verified on load; files without one (Meta's, older ones) load as before. Every load
refuses NaN/inf weights, and :func:`check_state_dict` compares a checkpoint with a module built on the
``meta`` device (no memory) so that a config asking for a huge model is refused before any allocation.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "safe_load",
    "content_hash",
    "check_finite",
    "check_state_dict",
    "build_checked",
    "save_checkpoint",
    "load_checkpoint",
    "clean_official_keys",
    "load_state_dict_strict",
    "load_official_checkpoint",
    "OFFICIAL_AC_URL",
]

FORMAT = "vjepa2_ac"
FORMAT_VERSION = 1
# Where Meta publishes the V-JEPA 2-AC ViT-g weights (used only if a caller passes it explicitly).
OFFICIAL_AC_URL = "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt"


class CheckpointError(RuntimeError):
    """A checkpoint does not match the module it is loaded into, or is not a valid checkpoint file."""


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file.

    A file holding pickled Python objects other than tensors and plain values is refused (loading it
    could run code); a truncated or otherwise damaged file is reported as such, not as a torch trace.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about a plain pickle's protocol before refusing it: noise next to our message.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message suggests weights_only=False, which would run the file's code: not an option.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only load failed" in first.lower() or "unsupported" in str(e).lower():
            raise CheckpointError(
                f"{path}: refused: the {what} holds Python objects other than tensors and plain values "
                "(loading it could run code); only weights files are accepted"
            ) from None
        raise CheckpointError(f"{path}: not a readable {what} (damaged pickle: {first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable {what} (truncated or damaged file, {path.stat().st_size} bytes: {first})"
        ) from None


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().cpu().reshape(-1).contiguous()
    return memoryview(flat.view(torch.uint8).numpy())


def content_hash(config: Mapping, state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the config (canonical JSON) and every tensor's name, dtype, shape and bytes, in sorted
    key order: equal for the same weights and config whatever the device or the dict's order."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=repr).encode())
    for key in sorted(state_dict):
        t = state_dict[key]
        h.update(f"\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def check_finite(state_dict: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuses NaN/inf in any floating-point tensor, naming the first offending keys."""
    bad = []
    for key, t in state_dict.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad.append(f"{key} ({n} of {t.numel()})")
    if bad:
        more = f" and {len(bad) - 5} more tensors" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{path}: non-finite (NaN/inf) weights in {', '.join(bad[:5])}{more}; "
            "the run that wrote it diverged"
        )


def _atomic_save(obj, path: Path) -> None:
    from vjepa2_ac.atomic import atomic_write

    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(
    path: str | Path, model_or_state: nn.Module | Mapping[str, torch.Tensor], config: Mapping, **extra
) -> Path:
    """Writes ``{"format", "format_version", "config", "state_dict", **extra}`` to ``path`` atomically.

    ``config`` must hold plain Python values (it is read back with ``weights_only=True``); for a
    :class:`~vjepa2_ac.world_model.WorldModel` it is ``model.config`` (both modules' constructor kwargs and
    the alignment). ``extra`` entries (e.g. ``step``, ``optimizer``) are stored alongside.
    """
    path = Path(path)
    if isinstance(model_or_state, nn.Module):
        state = model_or_state.state_dict()
    elif isinstance(model_or_state, Mapping):
        state = dict(model_or_state)
    else:
        raise TypeError(f"save_checkpoint: expected an nn.Module or a state dict, got {type(model_or_state)}")
    if not isinstance(config, Mapping):
        raise TypeError(f"save_checkpoint: config must be a dict, got {type(config).__name__}")
    for key in ("format", "format_version", "config", "state_dict", "sha256"):
        if key in extra:
            raise ValueError(f"save_checkpoint: extra entry {key!r} is reserved")
    state = {k: v.detach().cpu() for k, v in state.items()}
    check_finite(state, path)  # a diverged model is refused when written, not when planning with it
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": dict(config),
        "state_dict": state,
        "sha256": content_hash(dict(config), state),
        **extra,
    }
    _atomic_save(payload, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Reads a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Verifies the stored content hash (when the file has one) and refuses NaN/inf weights.
    """
    path = Path(path)
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a vjepa2_ac checkpoint (no format={FORMAT!r} entry); "
            "for Meta's files use load_official_checkpoint"
        )
    for key in ("config", "state_dict"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint has no {key!r} dict entry")
    bad = sorted(k for k, v in ckpt["state_dict"].items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {', '.join(bad[:5])}")
    stored = ckpt.get("sha256")
    if stored is not None:
        actual = content_hash(ckpt["config"], ckpt["state_dict"])
        if actual != stored:
            raise CheckpointError(
                f"{path}: content hash mismatch (stored sha256 {str(stored)[:12]}..., contents "
                f"{actual[:12]}...): its weights or config changed after it was saved"
            )
    check_finite(ckpt["state_dict"], path)
    return ckpt


def clean_official_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Removes the ``module.`` (DDP) and ``backbone.`` (multi-seq wrapper) parts of official key names."""
    return {k.replace("module.", "").replace("backbone.", ""): v for k, v in state_dict.items()}


def load_state_dict_strict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "module"
) -> None:
    """Loads ``state_dict`` into ``module`` requiring exactly the same keys and shapes.

    Raises :class:`CheckpointError` listing every missing, unexpected and wrongly shaped key.
    """
    check_state_dict(module, state_dict, what)
    module.load_state_dict(state_dict, strict=True)


def build_checked(
    build: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor], what: str = "module"
) -> nn.Module:
    """``build()`` on the ``meta`` device first (no memory), compared key by key and shape by shape with
    ``state_dict``, then for real and loaded strictly: a config asking for a bigger model than the weights
    fails with :class:`CheckpointError` before any allocation. ``build``'s TypeError/ValueError (a bad
    config) becomes a :class:`CheckpointError` too."""
    try:
        with torch.device("meta"):
            skeleton = build()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot build {what}: invalid config: {e}") from None
    check_state_dict(skeleton, state_dict, what)
    del skeleton
    module = build()
    module.load_state_dict(state_dict, strict=True)
    return module


def check_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "module") -> None:
    """Raises :class:`CheckpointError` unless ``state_dict`` has exactly ``module``'s keys and shapes.

    ``module`` may live on the ``meta`` device: building the module from a checkpoint's config there
    costs no memory, so a config that asks for far more weights than the file holds is refused before
    the real module is allocated.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        lines = [f"cannot load {what}:"]
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", shapes),
        ):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
        raise CheckpointError("\n".join(lines))


def _read_official(path_or_url: str | Path, map_location) -> dict:
    src = str(path_or_url)
    if src.startswith(("http://", "https://")):
        return torch.hub.load_state_dict_from_url(src, map_location=map_location, weights_only=True)
    return safe_load(src, map_location, what="official checkpoint")


def load_official_checkpoint(
    path: str | Path,
    encoder: nn.Module | None = None,
    predictor: nn.Module | None = None,
    *,
    encoder_key: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, dict[str, torch.Tensor]]:
    """Loads Meta's V-JEPA 2 / 2-AC weights (e.g. ``vjepa2-ac-vitg.pt``) strictly into the given modules.

    Args:
        path: a local file, or an ``http(s)://`` URL fetched with ``torch.hub.load_state_dict_from_url``
            (only when a URL is passed explicitly; e.g. :data:`OFFICIAL_AC_URL`).
        encoder: module built by :func:`vjepa2_ac.build_encoder` with the matching size, or ``None``.
        predictor: module built by :func:`vjepa2_ac.build_predictor`, or ``None``.
        encoder_key: entry holding the encoder weights; default ``"target_encoder"`` if present, else
            ``"encoder"`` (identical in AC checkpoints: the AC stage never updates either encoder).

    A file that is a bare state dict (no ``encoder``/``predictor`` entries) is loaded into the single module
    given. ``module.`` and ``backbone.`` are removed from key names. A RoPE encoder ignores a ``pos_embed``
    tensor in the file (official pretraining files carry one). Everything else must match exactly, otherwise a
    :class:`CheckpointError` lists the missing, unexpected and wrongly shaped keys.

    Returns the cleaned state dicts that were loaded, by role (``"encoder"``, ``"predictor"``).
    """
    if encoder is None and predictor is None:
        raise ValueError("load_official_checkpoint: pass an encoder and/or a predictor to load into")
    raw = _read_official(path, map_location)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(raw).__name__}")
    entries = {k for k in ("encoder", "target_encoder", "predictor") if isinstance(raw.get(k), Mapping)}
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    if not entries:
        # A bare state dict: only unambiguous with one target module.
        if encoder is not None and predictor is not None:
            raise CheckpointError(
                f"{path}: a bare state dict (no encoder/predictor entries) loads into one module at a time"
            )
        targets = {"encoder": (encoder, raw)} if encoder is not None else {"predictor": (predictor, raw)}
    else:
        targets = {}
        if encoder is not None:
            key = encoder_key or ("target_encoder" if "target_encoder" in entries else "encoder")
            if key not in raw or not isinstance(raw[key], Mapping):
                raise CheckpointError(f"{path}: no encoder entry {key!r}; entries: {sorted(raw)}")
            targets["encoder"] = (encoder, raw[key])
        if predictor is not None:
            if "predictor" not in entries:
                raise CheckpointError(f"{path}: no 'predictor' entry; entries: {sorted(raw)}")
            targets["predictor"] = (predictor, raw["predictor"])
    for role, (module, sd) in targets.items():
        clean = clean_official_keys(sd)
        check_finite(clean, path)
        if role == "encoder" and "pos_embed" in clean and "pos_embed" not in module.state_dict():
            clean.pop("pos_embed")
        load_state_dict_strict(module, clean, what=f"{role} from {path}")
        loaded[role] = clean
    return loaded
