"""Precomputed frozen-encoder embeddings for stage 2 (``data.cache_embeddings``).

With a frozen encoder the targets of a clip never change, so encoding each clip once and training the
predictor on the cache removes the encoder from every step (the recipe that worked on CPU in the reach
feasibility study). Each dataset item is drawn ``data.cache_passes`` times with its own seed (different
clip windows); the cache is stored in the run directory atomically and reused on ``--resume`` when its
``meta`` matches: the data, encoder and init settings, and the data files' identity (paths, sizes,
modification times; see :func:`vjepa2_ac.rundir.data_identity`), so replaced episodes are re-encoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vjepa2_ac.training.data import SeededItems, _mix, collate
from vjepa2_ac.training.objectives import encode_clips
from vjepa2_ac.training.runtime import atomic_save, autocast


class EmbeddingCache(Dataset):
    """Items ``{"z": [S, N, D], "states": [S, 7], "actions": [S-1 or S, 7]}`` from precomputed tensors."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    def __len__(self) -> int:
        return int(self.tensors["z"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


@torch.no_grad()
def build_embedding_cache(
    dataset: Dataset,
    encoder: torch.nn.Module,
    *,
    path: Path,
    meta: dict[str, Any],
    passes: int,
    seed: int,
    batch_size: int,
    tubelet: int,
    alignment: str,
    pool: int,
    device: torch.device,
    bf16: bool,
    show_progress: bool = True,
) -> EmbeddingCache:
    """Encode every (pass, item) once, or load the cache at ``path`` if built with the same ``meta``."""
    if path.is_file():
        from vjepa2_ac.checkpoint import CheckpointError, safe_load

        try:
            saved = safe_load(path, "cpu", what="embedding cache")
        except CheckpointError as e:  # derived data: rebuilt, and said so
            tqdm.write(f"rebuilding the embedding cache: {e}")
            saved = {}
        if isinstance(saved, dict) and saved.get("meta") == meta:
            return EmbeddingCache(saved["tensors"])
    keys = [(i, _mix(seed, p, i, 3)) for p in range(passes) for i in range(len(dataset))]
    batches = [keys[j : j + batch_size] for j in range(0, len(keys), batch_size)]
    loader = DataLoader(SeededItems(dataset), batch_sampler=batches, collate_fn=collate)
    parts: dict[str, list[torch.Tensor]] = {"z": [], "states": [], "actions": []}
    encoder.eval()
    for batch in tqdm(loader, desc="encode cache", disable=not show_progress, dynamic_ncols=True):
        video = batch["video"].to(device)
        with autocast(device, bf16):
            z = encode_clips(encoder, video, tubelet=tubelet, alignment=alignment, pool=pool)
        parts["z"].append(z.float().cpu())
        parts["states"].append(batch["states"].float())
        parts["actions"].append(batch["actions"].float())
    tensors = {k: torch.cat(v) for k, v in parts.items()}
    atomic_save({"meta": meta, "tensors": tensors}, path)
    return EmbeddingCache(tensors)
