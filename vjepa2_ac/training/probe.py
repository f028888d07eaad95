"""``vjepa2-ac probe``: how well do embeddings encode the end-effector (and block) positions?

A probe head regresses per-episode quantities stored in ``trajectory.h5`` (the end-effector xyz by
default; e.g. ``observation/object_position`` for push episodes) from the embedding of a one-step clip
(one tubelet, layer-normed tokens). Heads: ``linear`` (one linear map of all tokens, i.e. linear probing
when the encoder is frozen) or ``attentive`` (one learned query cross-attending over the tokens with a
learned position code, then an MLP). ``--finetune`` trains the encoder too. Episodes are split into
train/validation episodes; reported on validation: R² and MAE per target dim, against a constant
predictor (the training mean).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vjepa2_ac.training import runtime
from vjepa2_ac.training.config import ConfigError, ProbeConfig, load_config, save_config
from vjepa2_ac.training.data import SeededItems, _mix, build_dataset
from vjepa2_ac.training.objectives import layer_norm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="optional YAML with ProbeConfig fields")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--encoder-checkpoint",
        help="encoder.pt / world_model.pt / pretrain checkpoint.pt "
        "(default: a randomly initialised encoder, a baseline)",
    )
    parser.add_argument("--data", action="append", default=[], metavar="PATH", help="episodes (repeatable)")
    parser.add_argument("--out", required=True, help="output directory (probe_results.json, config.yaml)")
    parser.add_argument("--head", choices=["linear", "attentive"])
    parser.add_argument("--finetune", action="store_true", help="train the encoder too (default: frozen)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="H5KEY[a:b]",
        help="h5 dataset to predict, optionally sliced on its last axis (repeatable)",
    )
    parser.add_argument("--steps", type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    ov = list(args.overrides)
    if args.encoder_checkpoint:
        ov.append(f"encoder_checkpoint={args.encoder_checkpoint}")
    if args.data:
        ov.append("data.paths=[" + ", ".join(repr(p) for p in args.data) + "]")
    if args.head:
        ov.append(f"head={args.head}")
    if args.finetune:
        ov.append("finetune=true")
    if args.target:
        ov.append("targets=[" + ", ".join(repr(t) for t in args.target) + "]")
    if args.steps:
        ov.append(f"steps={args.steps}")
    if args.device:
        ov.append(f"run.device={args.device}")
    cfg = load_config(ProbeConfig, args.config, ov)
    res = probe(cfg, Path(args.out))
    print(format_results(res))
    return 0


# ------------------------------------------------------------------------------------------------
# Encoder loading and targets
# ------------------------------------------------------------------------------------------------


def load_encoder(path: str | None, fallback_kwargs: dict[str, Any]) -> nn.Module:
    """An encoder from any of our checkpoints (pretrain ``encoder.pt``/``checkpoint.pt``, ``world_model.pt``),
    or a randomly initialised one built from ``fallback_kwargs`` when ``path`` is empty."""
    from vjepa2_ac import build_encoder
    from vjepa2_ac.checkpoint import CheckpointError, check_finite, load_state_dict_strict, safe_load
    from vjepa2_ac.training.config import EncoderConfig, from_dict

    if not path:
        return build_encoder(**fallback_kwargs)
    state = safe_load(path, "cpu", what="encoder checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: encoder checkpoint is not a checkpoint dict")
    if state.get("kind") == "pretrain":
        kw = from_dict(EncoderConfig, state["config"]["model"]["encoder"], "model.encoder").kwargs()
        sd = state["model"]["target_encoder"]
    elif "state_dict" in state and isinstance(state.get("config"), dict):
        conf, sd = state["config"], state["state_dict"]
        if isinstance(conf.get("encoder"), dict):  # a world model
            kw = conf["encoder"]
            sd = {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
        else:
            kw = conf
    else:
        raise CheckpointError(f"{path}: encoder checkpoint of unknown layout (keys {sorted(state)[:8]})")
    kw = {**kw, "use_activation_checkpointing": False}
    check_finite(sd, path)
    encoder = build_encoder(**kw)
    load_state_dict_strict(encoder, sd, what=f"encoder from {path}")
    return encoder


def _h5_datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
    return names


_KEY = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<a>-?\d*):(?P<b>-?\d*)\])?$")


class H5Targets:
    """Reads ``key[a:b]`` target values of episodes' ``trajectory.h5`` at given frames (arrays cached)."""

    def __init__(self, keys: list[str]):
        self.specs = []
        for k in keys:
            m = _KEY.match(k.strip())
            if not m:
                raise ConfigError("targets", f"{k!r} is not 'h5/key' or 'h5/key[a:b]'")
            a, b = m["a"], m["b"]
            sl = slice(int(a) if a else None, int(b) if b else None) if m.group(2) else slice(None)
            self.specs.append((m["name"], sl))
        self._cache: dict[str, list[np.ndarray]] = {}

    def _arrays(self, episode: str) -> list[np.ndarray]:
        if episode not in self._cache:
            path = Path(episode) / "trajectory.h5"
            out = []
            with h5py.File(path, "r") as f:
                for name, sl in self.specs:
                    if name not in f:
                        keys = _h5_datasets(f)
                        raise KeyError(f"{path}: no h5 dataset {name!r} (probe target); available: {keys}")
                    arr = np.asarray(f[name][()], dtype=np.float64)
                    arr = arr.reshape(len(arr), -1)[:, sl]
                    out.append(arr)
            self._cache[episode] = out
        return self._cache[episode]

    def value(self, episode: str, frame: int) -> np.ndarray:
        """Concatenated target values of ``episode`` at ``frame``."""
        return np.concatenate([a[frame] for a in self._arrays(episode)])


# ------------------------------------------------------------------------------------------------
# Heads
# ------------------------------------------------------------------------------------------------


class LinearHead(nn.Module):
    """One linear map of all (flattened) tokens ``[B, N, D] -> [B, P]``."""

    def __init__(self, tokens: int, dim: int, out: int):
        super().__init__()
        self.fc = nn.Linear(tokens * dim, out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z.flatten(1))


class AttentiveHead(nn.Module):
    """A learned query attends over the tokens (plus a learned position code) -> MLP -> ``[B, P]``."""

    def __init__(self, tokens: int, dim: int, out: int, heads: int = 4):
        super().__init__()
        heads = heads if dim % heads == 0 else 1
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        kv = z + self.pos
        q = self.query.expand(z.shape[0], -1, -1)
        return self.mlp(self.attn(q, kv, kv, need_weights=False)[0][:, 0])


# ------------------------------------------------------------------------------------------------
# Probe
# ------------------------------------------------------------------------------------------------


def _collect(dataset, targets: H5Targets, cfg: ProbeConfig, seed: int):
    """Clips (video) and targets for ``clips_per_episode`` seeded clips of every episode."""
    items = SeededItems(dataset)
    videos, ys, eps = [], [], []
    keys = [(i, _mix(seed, c, i, 5)) for i in range(len(dataset)) for c in range(cfg.clips_per_episode)]
    for k in tqdm(keys, desc="probe clips", dynamic_ncols=True, leave=False):
        s = items[k]
        videos.append(s["video"])
        ys.append(targets.value(s["episode"], int(s["frame_indices"][0])))
        eps.append(k[0])
    return torch.stack(videos), torch.as_tensor(np.stack(ys), dtype=torch.float32), torch.tensor(eps)


def _embed(encoder: nn.Module, video: torch.Tensor, device, bf16: bool, batch: int = 32) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for j in range(0, len(video), batch):
            with runtime.autocast(device, bf16):
                out.append(layer_norm(encoder(video[j : j + batch].to(device)).float()).cpu())
    return torch.cat(out)


def probe(cfg: ProbeConfig, out_dir: Path) -> dict[str, Any]:
    """Train the probe head and return validation metrics (also written to ``probe_results.json``)."""
    info = runtime.init_distributed(cfg.run.device, cfg.run.threads)
    dev, bf16 = info.device, cfg.run.bf16
    runtime.seed_everything(cfg.run.seed)
    encoder = load_encoder(cfg.encoder_checkpoint, cfg.encoder.kwargs()).to(dev)
    tub = encoder.tubelet_size
    clip_cfg = cfg.data
    if clip_cfg.frames_per_clip % tub:
        raise ConfigError(
            "data.frames_per_clip", f"{clip_cfg.frames_per_clip} is not a multiple of tubelet {tub}"
        )
    dataset = build_dataset(clip_cfg, img_size=encoder.img_size[0], tubelet_size=tub)
    targets = H5Targets(cfg.targets)
    video, y, eps = _collect(dataset, targets, cfg, cfg.run.seed)
    # Split by episode so validation clips come from unseen episodes.
    g = torch.Generator().manual_seed(cfg.run.seed)
    perm = torch.randperm(len(dataset), generator=g)
    n_val = max(1, round(cfg.val_fraction * len(dataset)))
    if len(dataset) - n_val < 1:
        raise ValueError(f"probe needs >= 2 episodes for a train/validation split, got {len(dataset)}")
    val_eps = set(perm[:n_val].tolist())
    val = torch.tensor([int(e) in val_eps for e in eps])
    tr = ~val
    mean, std = y[tr].mean(0), y[tr].std(0).clamp_min(1e-6)
    yn = (y - mean) / std

    if not cfg.finetune:
        encoder.eval().requires_grad_(False)
        feats = _embed(encoder, video, dev, bf16)  # [M, N, D]
        if cfg.head == "linear":
            # Frozen features + linear head: solved exactly (ridge), penalty chosen on held-out episodes.
            pred, lam = fit_ridge(feats.flatten(1), yn, tr, eps, cfg.run.seed)
            pred = pred[val] * std + mean
            return _finish(cfg, out_dir, evaluate(pred, y[val], mean), tr, val, feats, ridge_lambda=lam)
    n_tok = (
        (video.shape[2] // tub)
        * (video.shape[3] // encoder.patch_size)
        * (video.shape[4] // encoder.patch_size)
    )
    head_cls = LinearHead if cfg.head == "linear" else AttentiveHead
    head = head_cls(n_tok, encoder.embed_dim, y.shape[1]).to(dev)
    params = list(head.parameters()) + (list(encoder.parameters()) if cfg.finetune else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    tr_idx = torch.nonzero(tr).flatten()
    bs = min(cfg.data.batch_size, len(tr_idx))

    def features(idx: torch.Tensor, train: bool) -> torch.Tensor:
        if not cfg.finetune:
            return feats[idx].to(dev)
        encoder.train(train)
        with torch.set_grad_enabled(train), runtime.autocast(dev, bf16):
            return layer_norm(encoder(video[idx].to(dev)).float())

    bar = tqdm(range(cfg.steps), desc="probe", dynamic_ncols=True)
    for step in bar:
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = tr_idx[torch.randint(len(tr_idx), (bs,), generator=g)]
        head.train()
        with runtime.autocast(dev, bf16):
            loss = F.mse_loss(head(features(idx, True)).float(), yn[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")

    head.eval()
    val_idx = torch.nonzero(val).flatten()
    with torch.no_grad():
        preds = []
        for j in range(0, len(val_idx), 64):
            with runtime.autocast(dev, bf16):
                preds.append(head(features(val_idx[j : j + 64], False)).float().cpu())
    pred = torch.cat(preds) * std + mean
    return _finish(cfg, out_dir, evaluate(pred, y[val], mean), tr, val, None if cfg.finetune else feats)


def fit_ridge(
    x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, eps: torch.Tensor, seed: int
) -> tuple[torch.Tensor, float]:
    """Ridge regression ``y ~ x`` fitted on ``train`` rows; the penalty (relative to the mean feature
    energy) is chosen on 25% of the training episodes held out, then refitted on all training rows.
    Returns predictions for every row and the chosen penalty."""
    x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    y = y.double()
    train_eps = torch.unique(eps[train])
    g = torch.Generator().manual_seed(seed + 1)
    held = set(train_eps[torch.randperm(len(train_eps), generator=g)[: max(1, len(train_eps) // 4)]].tolist())
    inner_val = train & torch.tensor([int(e) in held for e in eps])
    inner_tr = train & ~inner_val
    if not inner_tr.any():
        inner_tr = inner_val = train

    def solve(rows: torch.Tensor, lam: float) -> torch.Tensor:
        a = x[rows]
        gram = a.T @ a
        reg = lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        return torch.linalg.solve(gram + reg, a.T @ y[rows])

    lams = [10.0**k for k in range(-4, 3)]
    errs = [float(((x[inner_val] @ solve(inner_tr, lam) - y[inner_val]) ** 2).mean()) for lam in lams]
    lam = lams[int(np.argmin(errs))]
    return (x @ solve(train, lam)).float(), lam


def _finish(cfg, out_dir, res, tr, val, feats, **extra) -> dict[str, Any]:
    res.update(
        head=cfg.head,
        finetune=cfg.finetune,
        encoder_checkpoint=cfg.encoder_checkpoint or "(random init)",
        targets=list(cfg.targets),
        train_clips=int(tr.sum()),
        val_clips=int(val.sum()),
        emb_std=runtime.embedding_std(feats) if feats is not None else None,
        **extra,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    tmp = out_dir / "probe_results.json.tmp"
    tmp.write_text(json.dumps(res, indent=2))
    tmp.replace(out_dir / "probe_results.json")
    return res


def evaluate(pred: torch.Tensor, y: torch.Tensor, const: torch.Tensor) -> dict[str, Any]:
    """R² and MAE per dim of ``pred`` vs ``y`` ``[M, P]``, and of the constant predictor ``const [P]``."""
    sst = ((y - y.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    r2 = 1 - ((pred - y) ** 2).sum(0) / sst
    r2_c = 1 - ((const - y) ** 2).sum(0) / sst
    return {
        "r2": r2.tolist(),
        "mae": (pred - y).abs().mean(0).tolist(),
        "r2_const": r2_c.tolist(),
        "mae_const": (const - y).abs().mean(0).tolist(),
        "r2_mean": float(r2.mean()),
        "mae_mean": float((pred - y).abs().mean()),
        "mae_const_mean": float((const - y).abs().mean()),
    }


def format_results(res: dict[str, Any]) -> str:
    """A small table of the validation metrics."""
    lines = [
        f"probe ({res['head']}, {'fine-tuned' if res['finetune'] else 'frozen'} encoder "
        f"{res['encoder_checkpoint']}), {res['train_clips']} train / {res['val_clips']} val clips",
        "dim | R2 probe | R2 const | MAE probe | MAE const",
    ]
    for i, (a, b, c, d) in enumerate(zip(res["r2"], res["r2_const"], res["mae"], res["mae_const"])):
        lines.append(f"{i:3d} | {a:8.3f} | {b:8.3f} | {c:9.4f} | {d:9.4f}")
    return "\n".join(lines)
