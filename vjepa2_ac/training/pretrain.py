"""``vjepa2-ac pretrain``: stage 1, V-JEPA masked latent prediction to produce our own encoder.

A context encoder sees the clip minus 3D multi-block tube masks; a small mask-token predictor predicts the
layer-normed embeddings of the masked tokens given by the target encoder (an EMA of the context encoder)
on the full clip; L1 loss averaged over the mask families; AdamW with warmup-cosine. Optionally (not in
the paper recipe, label-free because DROID records the state) the state-geometry terms of
:class:`~vjepa2_ac.training.objectives.StateGeometryLoss` shape each tubelet's embedding with the robot
state of its step (``aux_probe_weight``, ``manifold_weight``); ``jepa_weight: 0`` trains with them alone.
``sim_labels`` (an ablation, not label-free) adds simulator arrays of each episode's ``sim.npz`` to them.

Outputs in ``--out``: ``config.yaml``, ``checkpoint.pt`` (full training state for ``--resume``),
``metrics.csv`` (loss, ``emb_std`` = collapse watch), ``tensorboard/`` and ``encoder.pt``
(:func:`vjepa2_ac.save_checkpoint` format, with the state probe and the list of training signals; pass it
to ``vjepa2-ac train --encoder-checkpoint``). It holds the EMA target encoder, or, when the masked
prediction is off (no EMA target is trained), the encoder itself.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa2_ac.training import runtime
from vjepa2_ac.training.config import PretrainConfig, load_config, to_dict
from vjepa2_ac.training.loop import CHECKPOINT, Run, claim_run_dir, train_loop
from vjepa2_ac.training.mask_predictor import MaskTokenPredictor
from vjepa2_ac.training.objectives import PretrainObjective, StateGeometryLoss, layer_norm, sample_masks
from vjepa2_ac.training.schedules import build_optimizer
from vjepa2_ac.training.train_ac import add_common_arguments, load_encoder_weights, overrides_from_args

ENCODER = "encoder.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tiny_pretrain")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(PretrainConfig, args.config, overrides_from_args(args))
    pretrain(
        cfg,
        Path(args.out),
        resume=args.resume,
        stop_after_steps=args.stop_after_steps,
        overwrite=args.overwrite,
    )
    return 0


def build_models(cfg: PretrainConfig) -> tuple[nn.Module, nn.Module, MaskTokenPredictor]:
    """Context encoder, EMA target encoder (frozen copy) and mask-token predictor."""
    from vjepa2_ac import build_encoder
    from vjepa2_ac.checkpoint import load_official_checkpoint

    act = cfg.run.activation_checkpointing
    encoder = build_encoder(**cfg.model.encoder.kwargs(act))
    if cfg.init.official_checkpoint:
        load_official_checkpoint(cfg.init.official_checkpoint, encoder=encoder)
    if cfg.init.encoder_checkpoint:
        load_encoder_weights(encoder, cfg.init.encoder_checkpoint)
    target = copy.deepcopy(encoder)
    target.requires_grad_(False)
    target.use_activation_checkpointing = False
    mp = cfg.model.mask_predictor
    predictor = MaskTokenPredictor(
        encoder.embed_dim,
        mp.embed_dim,
        mp.depth,
        mp.num_heads,
        mp.mlp_ratio,
        num_mask_tokens=len(cfg.masks),
        use_activation_checkpointing=act,
    )
    return encoder, target, predictor


def encoder_signals(cfg: PretrainConfig) -> list[str]:
    """The quantities stage 1 trains on: frames, the robot state for the geometry terms, and the
    simulator labels of an ablation (``sim_labels``, named ``sim_*``)."""
    from vjepa2_ac.datasets.sim_labels import sim_signal

    geometry = cfg.aux_probe_weight > 0 or cfg.manifold_weight > 0
    return ["frames"] + (["ee_state"] if geometry else []) + [sim_signal(n) for n in cfg.sim_labels]


def state_normaliser(dataset, dims: list[int], seed: int, n: int = 256) -> dict[str, torch.Tensor]:
    """Mean/std of the probed state dims over up to ``n`` seeded clips (fixed for the run)."""
    from vjepa2_ac.training.data import SeededItems, _mix

    items = SeededItems(dataset)
    k = min(n, len(dataset))
    states = torch.cat([torch.as_tensor(items[(i, _mix(seed, i, 4))]["states"])[:, dims] for i in range(k)])
    return {"mean": states.mean(0).float(), "std": states.std(0).clamp_min(1e-3).float()}


def label_normaliser(dataset, seed: int, n: int = 256) -> dict[str, torch.Tensor]:
    """Mean/std of the simulator labels over up to ``n`` seeded clips spread evenly over the dataset,
    ignoring the NaN rows of episodes without them (an error when none of those clips has them)."""
    from vjepa2_ac.training.data import SeededItems, _mix

    items = SeededItems(dataset)
    index = sorted({int(i) for i in torch.linspace(0, len(dataset) - 1, min(n, len(dataset)))})
    rows = torch.cat([items[(i, _mix(seed, i, 4))]["sim_labels"] for i in index])
    rows = rows[torch.isfinite(rows).all(-1)].double()
    if len(rows) < 2:
        raise ValueError(f"sim_labels {dataset.names}: fewer than 2 labelled steps in {len(index)} clips")
    return {"mean": rows.mean(0).float(), "std": rows.std(0).float()}


def pretrain(
    cfg: PretrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    stop_after_steps: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run V-JEPA pretraining as configured; returns the loop summary. ``run_dir`` is claimed as by
    :func:`~vjepa2_ac.training.loop.claim_run_dir` (``resume`` or ``overwrite`` for a used folder)."""
    from vjepa2_ac.checkpoint import save_checkpoint
    from vjepa2_ac.training.data import build_dataset, make_loader

    info = runtime.init_distributed(cfg.run.device, cfg.run.threads)
    try:
        runtime.seed_everything(cfg.run.seed)
        encoder, target, predictor = build_models(cfg)
        enc = cfg.model.encoder
        aux = cfg.aux_probe_weight > 0 or cfg.manifold_weight > 0
        jepa_on = cfg.jepa_weight > 0
        geometry = None
        dataset = build_dataset(cfg.data, img_size=enc.img_size, tubelet_size=enc.tubelet_size)
        if cfg.sim_labels:  # an ablation: the simulator record beside each episode
            from vjepa2_ac.datasets.sim_labels import SimLabelClips

            dataset = SimLabelClips(dataset, cfg.sim_labels)
            have = ", ".join(f"{k} in {v}" for k, v in dataset.available.items())
            print(f"sim_labels (ablation, not label-free): {have} of {len(dataset.episodes)} episodes")
        if aux:
            from vjepa2_ac.state_probe import StateProbe

            geometry = StateGeometryLoss(
                StateProbe(encoder.embed_dim, cfg.aux_probe_dims),
                tokens=enc.grid**2,
                probe_weight=cfg.aux_probe_weight,
                manifold_weight=cfg.manifold_weight,
                labels=dataset.width if cfg.sim_labels else 0,
            )
        objective = PretrainObjective(
            encoder, predictor, geometry, jepa_weight=cfg.jepa_weight, loss_exp=cfg.loss_exp
        ).to(info.device)
        target.to(info.device).eval()
        model = runtime.wrap_ddp(objective, info)
        optimizer, scheduler = build_optimizer(objective, cfg.optim)
        claim_run_dir(
            run_dir,
            cfg,
            info,
            resume=resume,
            overwrite=overwrite,
            results=(CHECKPOINT, ENCODER, "metrics.csv"),
            derived=("config.yaml", "tensorboard"),
        )
        modules = {"encoder": encoder, "target_encoder": target, "predictor": predictor}
        if aux:
            modules["geometry"] = geometry
        run = Run("pretrain", cfg, run_dir, info, modules, optimizer, scheduler)
        if aux:
            norm = state_normaliser(dataset, cfg.aux_probe_dims, cfg.run.seed)
            geometry.probe.set_normaliser(norm["mean"], norm["std"])
            if cfg.sim_labels:
                lab = label_normaliser(dataset, cfg.run.seed)
                geometry.set_label_normaliser(lab["mean"], lab["std"])
        dev, bf16 = info.device, cfg.run.bf16
        grid = (cfg.data.frames_per_clip // enc.tubelet_size, enc.grid, enc.grid)
        total = cfg.optim.total_steps

        def step_fn(step: int, batch: dict[str, Any]) -> dict[str, float]:
            video = batch["video"].to(dev)
            b = video.shape[0]
            h, masks = None, []
            if jepa_on:
                with torch.no_grad(), runtime.autocast(dev, bf16):
                    h = layer_norm(target(video).float())  # [B, N, D] targets
                masks = sample_masks(b, grid, cfg.masks, cfg.run.seed * 7919 + info.rank, step, dev)
            states = batch["states"].float().to(dev)  # [B, S, 7], one state per tubelet step
            labels = batch["sim_labels"].to(dev) if cfg.sim_labels else None  # [B, S, K] (ablation)
            objective.train()
            with runtime.autocast(dev, bf16):
                loss, jepa, aux_loss, manifold = model(video, h, masks, grid, states, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Always measured (an infinite max norm clips nothing): a non-finite gradient stops the run.
            clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
            gnorm = nn.utils.clip_grad_norm_(objective.parameters(), clip)
            optimizer.step()
            scheduler.step()
            # EMA of the context encoder; momentum interpolated linearly over the run.
            m = cfg.ema[0] + (step + 1) * (cfg.ema[1] - cfg.ema[0]) / total
            if jepa_on:
                with torch.no_grad():
                    for pt, pc in zip(target.parameters(), encoder.parameters()):
                        pt.mul_(m).add_(pc.detach(), alpha=1 - m)
            stats = torch.stack([loss.detach().float(), jepa, aux_loss, manifold]).cpu()
            red = runtime.all_reduce_mean(stats, info)
            return {
                "loss": float(red[0]),
                "jepa_loss": float(red[1]),
                "aux_loss": float(red[2]),
                "manifold_loss": float(red[3]),
                "emb_std": runtime.embedding_std(h) if jepa_on else float("nan"),
                "ema": m if jepa_on else float("nan"),
                "grad_norm": float(gnorm),
            }

        def make_batches(start: int):
            return make_loader(dataset, cfg.data, cfg.run.seed, info.rank, info.world_size, start)

        summary = train_loop(
            run,
            step_fn,
            make_batches,
            clips_per_step=cfg.data.batch_size * info.world_size,
            resume=resume,
            stop_after_steps=stop_after_steps,
            desc="pretrain",
        )
        if info.is_main and not summary["killed"]:
            export = target if jepa_on else encoder
            kw = dict(getattr(export, "config", enc.kwargs()))
            kw["use_activation_checkpointing"] = False
            extra = {"training_signals": encoder_signals(cfg), "pretrain_config": to_dict(cfg)}
            if geometry is not None:
                extra["probe"] = {"config": geometry.probe.config, "state_dict": geometry.probe.state_dict()}
            save_checkpoint(run_dir / ENCODER, export, kw, step=summary["steps"], role="encoder", **extra)
        return summary
    finally:
        runtime.cleanup_distributed()
