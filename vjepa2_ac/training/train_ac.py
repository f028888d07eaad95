"""``vjepa2-ac train``: stage 2, AC-predictor training on a frozen encoder.

Recipe (official V-JEPA 2-AC): the frozen encoder's layer-normed embeddings of a clip are the targets;
the predictor is trained with an L1 teacher-forcing loss over all steps plus an auto-regressive rollout
loss (step 2 predicted from ground-truth step 0 and predicted step 1); AdamW with a warmup-constant-decay
schedule and weight decay on matrices only. Single process by default; ``torchrun --nproc_per_node=N``
runs DistributedDataParallel (gloo on CPU, NCCL on GPU).

Outputs in ``--out``: ``config.yaml`` (resolved), ``checkpoint.pt`` (full training state, for
``--resume``), ``metrics.csv``, ``tensorboard/``, and ``world_model.pt`` (encoder + predictor weights and
their constructor config, :func:`vjepa2_ac.save_checkpoint` format, loadable by ``WorldModel``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa2_ac.training import runtime
from vjepa2_ac.training.config import TrainACConfig, load_config, to_dict
from vjepa2_ac.training.loop import CHECKPOINT, Run, claim_run_dir, train_loop
from vjepa2_ac.training.objectives import ACObjective, encode_clips
from vjepa2_ac.training.schedules import build_optimizer

WORLD_MODEL = "world_model.pt"


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, default_config: str) -> None:
    """Options shared by ``pretrain`` and ``train``."""
    parser.add_argument(
        "--config", default=default_config, help="YAML file or preset name (default %(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="PATH",
        help="dataset path(s); replaces data.paths (repeatable)",
    )
    parser.add_argument("--out", required=True, help="run directory (config, checkpoints, metrics)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run in --out (checkpoints, metrics) and start over",
    )
    parser.add_argument("--steps", type=int, help="optim.total_steps")
    parser.add_argument("--batch-size", type=int, help="data.batch_size (per process)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget; stops with a checkpoint")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="run.device")
    parser.add_argument("--seed", type=int, help="run.seed")
    parser.add_argument("--threads", type=int, help="run.threads (torch CPU threads per process)")
    parser.add_argument("--no-bf16", action="store_true", help="float32 instead of bf16 autocast")
    parser.add_argument(
        "--activation-checkpointing", action="store_true", help="recompute activations in backward"
    )
    parser.add_argument("--encoder-checkpoint", help="init.encoder_checkpoint")
    parser.add_argument("--official-checkpoint", help="init.official_checkpoint (a local official .pt file)")
    # Simulates a kill after N steps (no final checkpoint); used by the resume tests.
    parser.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """``--set`` values plus the shortcut flags as ``key=value`` overrides (shortcuts win)."""
    ov = list(args.overrides)
    pairs = {
        "optim.total_steps": args.steps,
        "data.batch_size": args.batch_size,
        "run.max_minutes": args.max_minutes,
        "run.device": args.device,
        "run.seed": args.seed,
        "run.threads": args.threads,
        "init.encoder_checkpoint": getattr(args, "encoder_checkpoint", None),
        "init.official_checkpoint": getattr(args, "official_checkpoint", None),
    }
    ov += [f"{k}={v}" for k, v in pairs.items() if v is not None]
    if args.data:
        ov.append("data.paths=[" + ", ".join(repr(str(p)) for p in args.data) + "]")
    if args.no_bf16:
        ov.append("run.bf16=false")
    if args.activation_checkpointing:
        ov.append("run.activation_checkpointing=true")
    return ov


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tiny_sim")
    parser.add_argument(
        "--predictor-checkpoint", help="init.predictor_checkpoint (one of our world_model.pt)"
    )


def run(args: argparse.Namespace) -> int:
    ov = overrides_from_args(args)
    if args.predictor_checkpoint:
        ov.append(f"init.predictor_checkpoint={args.predictor_checkpoint}")
    cfg = load_config(TrainACConfig, args.config, ov)  # errors are reported by the CLI (exit codes)
    train(
        cfg,
        Path(args.out),
        resume=args.resume,
        stop_after_steps=args.stop_after_steps,
        overwrite=args.overwrite,
    )
    return 0


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------


def predictor_kwargs(cfg: TrainACConfig) -> dict[str, Any]:
    """Constructor kwargs of the predictor; with token pooling its grid is the pooled grid."""
    enc, k = cfg.model.encoder, cfg.model.token_pool
    kw = cfg.model.predictor.kwargs(enc, cfg.run.activation_checkpointing)
    kw["img_size"] = enc.img_size // k  # same patch size, k-times smaller grid side
    return kw


def load_encoder_weights(encoder: nn.Module, path: str) -> None:
    """Encoder weights from our checkpoints: pretrain ``encoder.pt``/``checkpoint.pt`` or a world model."""
    from vjepa2_ac.checkpoint import CheckpointError, check_finite, load_state_dict_strict, safe_load

    state = safe_load(path, "cpu", what="init.encoder_checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"init.encoder_checkpoint {path}: not a checkpoint dict")
    if state.get("kind") == "pretrain":  # a pretraining training-state checkpoint: take the EMA target
        sd = state["model"]["target_encoder"]
    elif "state_dict" in state:
        sd = state["state_dict"]
        if any(k.startswith("encoder.") for k in sd):
            sd = {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    else:
        raise CheckpointError(
            f"init.encoder_checkpoint {path}: no encoder weights found (keys {sorted(state)[:8]})"
        )
    check_finite(sd, path)
    load_state_dict_strict(encoder, sd, what=f"encoder from {path}")


def encoder_extras(path: str) -> tuple[nn.Module | None, list[str], dict | None]:
    """The state probe, the training signals and the stage-1 config an ``encoder.pt`` of ``pretrain``
    carries (None / [] / None otherwise)."""
    from vjepa2_ac.checkpoint import load_state_dict_strict
    from vjepa2_ac.state_probe import StateProbe

    state = torch.load(path, map_location="cpu", weights_only=True)
    probe = None
    if isinstance(state.get("probe"), dict):
        probe = StateProbe(**state["probe"]["config"])
        load_state_dict_strict(probe, state["probe"]["state_dict"], what=f"state probe from {path}")
    signals = state.get("training_signals", [])
    pretrain_config = state.get("pretrain_config")
    return probe, list(signals) if isinstance(signals, list) else [], pretrain_config


def training_signals(cfg: TrainACConfig, encoder_signals: list[str]) -> list[str]:
    """What the exported world model was trained on: the encoder's signals plus stage 2's own inputs."""
    own = ["frames", "ee_state", "actions"] + (["extrinsics"] if cfg.model.predictor.use_extrinsics else [])
    if cfg.init.official_checkpoint and not cfg.init.encoder_checkpoint:
        own = ["official_pretraining"] + own
    out: list[str] = []
    for name in list(encoder_signals) + own:
        if name not in out:
            out.append(name)
    return out


def build_models(cfg: TrainACConfig) -> tuple[nn.Module, nn.Module]:
    """Encoder (frozen, eval) and predictor, initialised as ``cfg.init`` says."""
    from vjepa2_ac import build_encoder, build_predictor
    from vjepa2_ac.checkpoint import load_checkpoint, load_official_checkpoint, load_state_dict_strict
    from vjepa2_ac.world_model import zero_residual_head

    encoder = build_encoder(**cfg.model.encoder.kwargs())
    predictor = build_predictor(**predictor_kwargs(cfg))
    if cfg.model.residual:
        zero_residual_head(predictor)  # starts at zero change: "copy the last step"
    init = cfg.init
    if init.official_checkpoint:
        with_pred = not init.predictor_checkpoint
        load_official_checkpoint(
            init.official_checkpoint, encoder=encoder, predictor=predictor if with_pred else None
        )
    if init.encoder_checkpoint:
        load_encoder_weights(encoder, init.encoder_checkpoint)
    if init.predictor_checkpoint:
        ck = load_checkpoint(init.predictor_checkpoint)
        sd = {k[len("predictor.") :]: v for k, v in ck["state_dict"].items() if k.startswith("predictor.")}
        load_state_dict_strict(predictor, sd, what=f"predictor from {init.predictor_checkpoint}")
    encoder.requires_grad_(False)
    encoder.eval()
    if not cfg.model.predictor.use_extrinsics:
        # Unused (exists only for official state-dict compatibility): no gradient, no DDP bucket.
        predictor.extrinsics_encoder.requires_grad_(False)
    return encoder, predictor


def as_world_model(
    cfg: TrainACConfig,
    encoder: nn.Module,
    predictor: nn.Module,
    probe: nn.Module | None = None,
    metadata: dict | None = None,
):
    """The trained modules as a ``WorldModel`` with the run's ``alignment`` / ``token_pool`` / ``residual``
    (shares their parameters; checks that the predictor grid is the pooled encoder grid)."""
    from vjepa2_ac.world_model import WorldModel

    return WorldModel(
        encoder,
        predictor,
        alignment=cfg.model.alignment,
        token_pool=cfg.model.token_pool,
        residual=cfg.model.residual,
        probe=probe,
        metadata=metadata,
    )


def export_world_model(
    path: Path,
    cfg: TrainACConfig,
    encoder: nn.Module,
    predictor: nn.Module,
    probe: nn.Module | None = None,
    metadata: dict | None = None,
    **extra,
) -> None:
    """Write encoder + predictor (+ probe) weights with their config (``WorldModel.save`` layout;
    activation checkpointing off for inference)."""
    from vjepa2_ac.checkpoint import save_checkpoint

    wm = as_world_model(cfg, encoder, predictor, probe, metadata)
    config = wm.config
    config["encoder"]["use_activation_checkpointing"] = False
    config["predictor"]["use_activation_checkpointing"] = False
    save_checkpoint(path, wm, config, **extra)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def build_dataset_of(cfg: TrainACConfig):
    """The clip dataset of ``cfg.data`` at the model's image size, tubelet and alignment."""
    from vjepa2_ac.training.data import build_dataset

    enc = cfg.model.encoder
    return build_dataset(
        cfg.data, img_size=enc.img_size, tubelet_size=enc.tubelet_size, alignment=cfg.model.alignment
    )


def build_data(
    cfg: TrainACConfig, encoder: nn.Module, run_dir: Path, info: runtime.DistInfo, dataset=None
) -> tuple[Any, bool]:
    """The clip dataset (``dataset``, or built from ``cfg``), or the embedding cache built from it (rank
    0 builds, the others wait and load); and whether it is the cache."""
    if dataset is None:
        dataset = build_dataset_of(cfg)
    if not cfg.data.cache_embeddings:
        return dataset, False
    from vjepa2_ac.rundir import data_identity
    from vjepa2_ac.training.cache import build_embedding_cache

    meta = {
        "data": to_dict(cfg.data),
        "data_identity": data_identity(cfg.data.paths),  # replaced episodes make a new cache
        "encoder": to_dict(cfg.model.encoder),
        "init": to_dict(cfg.init),
        "alignment": cfg.model.alignment,
        "token_pool": cfg.model.token_pool,
        "seed": cfg.run.seed,
    }
    kwargs = dict(
        path=run_dir / "embedding_cache.pt",
        meta=meta,
        passes=cfg.data.cache_passes,
        seed=cfg.run.seed,
        batch_size=cfg.data.batch_size,
        tubelet=cfg.model.encoder.tubelet_size,
        alignment=cfg.model.alignment,
        pool=cfg.model.token_pool,
        device=info.device,
        bf16=cfg.run.bf16,
    )
    if info.is_main:
        cache = build_embedding_cache(dataset, encoder, show_progress=True, **kwargs)
    if info.distributed:
        torch.distributed.barrier()
    if not info.is_main:
        cache = build_embedding_cache(dataset, encoder, show_progress=False, **kwargs)
    return cache, True


def train(
    cfg: TrainACConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    stop_after_steps: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the AC predictor as configured; returns the loop summary (see :func:`train_loop`).

    ``run_dir`` is claimed first (:func:`~vjepa2_ac.training.loop.claim_run_dir`): a folder holding
    another run needs ``resume`` (same settings and data) or ``overwrite``."""
    info = runtime.init_distributed(cfg.run.device, cfg.run.threads)
    try:
        runtime.seed_everything(cfg.run.seed)
        encoder, predictor = build_models(cfg)
        encoder.to(info.device)
        objective = ACObjective(
            predictor,
            auto_steps=cfg.loss.auto_steps,
            loss_exp=cfg.loss.loss_exp,
            rollout_weight=cfg.loss.rollout_weight,
            residual=cfg.model.residual,
        ).to(info.device)
        model = runtime.wrap_ddp(objective, info)
        optimizer, scheduler = build_optimizer(predictor, cfg.optim)
        dataset = build_dataset_of(cfg)  # data errors come before anything is written
        claim_run_dir(
            run_dir,
            cfg,
            info,
            resume=resume,
            overwrite=overwrite,
            results=(CHECKPOINT, WORLD_MODEL, "metrics.csv"),
            derived=("config.yaml", "tensorboard", "embedding_cache.pt"),
        )
        data, cached = build_data(cfg, encoder, run_dir, info, dataset)
        enc_cfg = cfg.model.encoder
        run = Run("train_ac", cfg, run_dir, info, {"predictor": predictor}, optimizer, scheduler)
        dev, bf16 = info.device, cfg.run.bf16

        def step_fn(step: int, batch: dict[str, Any]) -> dict[str, float]:
            states = batch["states"].to(dev, torch.float32)
            actions = batch["actions"].to(dev, torch.float32)
            if cached:
                z = batch["z"].to(dev)
            else:
                with runtime.autocast(dev, bf16):
                    z = encode_clips(
                        encoder,
                        batch["video"].to(dev),
                        tubelet=enc_cfg.tubelet_size,
                        alignment=cfg.model.alignment,
                        pool=cfg.model.token_pool,
                    )
                z = z.float()
            if z.shape[1] != states.shape[1]:
                raise ValueError(
                    f"clip gives {z.shape[1]} token steps but {states.shape[1]} states; the reader's "
                    "alignment "
                    f"does not match model.alignment={cfg.model.alignment!r}"
                )
            objective.train()
            with runtime.autocast(dev, bf16):
                loss, tf_loss, ar_loss, pred_std = model(z, actions, states)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Always measured (an infinite max norm clips nothing): a non-finite gradient stops the run.
            clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
            gnorm = nn.utils.clip_grad_norm_(predictor.parameters(), clip)
            optimizer.step()
            scheduler.step()
            red = runtime.all_reduce_mean(torch.stack([loss.detach().float(), tf_loss, ar_loss]).cpu(), info)
            return {
                "loss": float(red[0]),
                "tf_loss": float(red[1]),
                "ar_loss": float(red[2]),
                "emb_std": runtime.embedding_std(z),
                "pred_std": float(pred_std),
                "grad_norm": float(gnorm),
            }

        from vjepa2_ac.training.data import make_loader

        def make_batches(start: int):
            return make_loader(data, cfg.data, cfg.run.seed, info.rank, info.world_size, start)

        summary = train_loop(
            run,
            step_fn,
            make_batches,
            clips_per_step=cfg.data.batch_size * info.world_size,
            resume=resume,
            stop_after_steps=stop_after_steps,
            desc="train",
        )
        if info.is_main and not summary["killed"]:
            probe, enc_signals, enc_config = None, [], None
            if cfg.init.encoder_checkpoint:
                probe, enc_signals, enc_config = encoder_extras(cfg.init.encoder_checkpoint)
            # Provenance: both stages' resolved configs travel with the weights.
            metadata = {
                "training_signals": training_signals(cfg, enc_signals),
                "camera": cfg.data.camera,
                "fps": cfg.data.fps,
                "train_config": to_dict(cfg),
                "pretrain_config": enc_config,
            }
            if cached:
                from vjepa2_ac.training.calibration import energy_per_metre

                try:
                    metadata["energy_per_metre"] = energy_per_metre(data.tensors["z"], data.tensors["states"])
                except ValueError as e:
                    print(f"train: no energy calibration: {e}", file=sys.stderr)
            export_world_model(
                run_dir / WORLD_MODEL, cfg, encoder, predictor, probe, metadata, step=summary["steps"]
            )
        return summary
    finally:
        runtime.cleanup_distributed()
