"""The learning recipe of the simulated world model: collect -> encoder (+ probe) -> frozen embeddings ->
residual AC predictor -> checkpoint. Used by ``vjepa2-ac demo``; each stage is cached in the work dir
(atomic files), so an interrupted run resumes at the first unfinished stage.

Stage 1, encoder: the ViT is trained with a per-token linear **probe** of the EE and block positions
(standardised MSE, every token must decode them, so position information is global) plus an
**energy-distance** term that asks the planning energy itself, ``mean |z_i - z_j|``, to grow linearly
with the physical distance between the two scenes (EE distance + ``block_weight`` x block distance).
Both target the failure measured in ``reach_feasibility.md``: a patch-local energy with a ~6 cm basin.

Stage 2, predictor: embeddings of all frames are precomputed with the frozen encoder; the AC predictor
(residual output) is trained with teacher forcing over ``context`` steps plus an autoregressive rollout
loss over ``rollout`` steps (L1, as V-JEPA 2-AC).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vjepa2_ac.experiments.episodes import CollectConfig, collect_task
from vjepa2_ac.experiments.results import atomic_write_json
from vjepa2_ac.experiments.sim_model import (
    SimModelConfig,
    SimWorldModel,
    config_dict,
    cosine_lr,
    layer_norm_tokens,
)

CHECKPOINT_KIND = "vjepa2_ac.sim_world_model"


@dataclass
class TrainConfig:
    """Optimisation settings of the two training stages.

    Attributes:
        encoder_steps / encoder_batch / encoder_lr: stage 1.
        probe_weight / distance_weight / manifold_weight: weights of the probe, energy-distance and
            position-manifold losses.
        block_weight: weight of the block distance in the energy-distance target (push).
        fixed_manifold: the position-manifold decoder is a frozen random linear map of the positions in
            decimetres (block axes times ``block_weight``) instead of a learned map of the standardised
            positions (a learned one lets the embedding's variation with position shrink over training).
        predictor_steps / predictor_batch / predictor_lr: stage 2.
        context: teacher-forcing steps per training clip.
        rollout: autoregressive steps of the rollout loss (0 disables it).
        contact_oversample: sampling weight of predictor clips in which the block moves (push), against
            1 for the others: contacts are rare in the data and are what push planning depends on.
        motion_probe_weight: weight of the probe loss on the positions' motion (``consecutive``
            tubelets only): enough to make the motion decodable, small enough that it does not swamp
            the positions in the embedding.
        threads: torch CPU threads (1 is ~10x faster than 2 on a CPU shared with other jobs: OpenMP
            threads spin-wait for each other when cores are oversubscribed).
        bf16: bfloat16 autocast for forward passes (AMX on recent Xeons).
    """

    encoder_steps: int = 8000
    encoder_batch: int = 32
    encoder_lr: float = 1e-3
    probe_weight: float = 1.0
    distance_weight: float = 0.0
    manifold_weight: float = 1.0
    block_weight: float = 2.0
    fixed_manifold: bool = False
    predictor_steps: int = 2000
    predictor_batch: int = 64
    predictor_lr: float = 1e-3
    context: int = 3
    rollout: int = 2
    contact_oversample: float = 4.0
    motion_probe_weight: float = 0.1
    threads: int = 1
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in (
            "encoder_steps",
            "encoder_batch",
            "predictor_steps",
            "predictor_batch",
            "context",
            "threads",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {v!r}")
        if not self.contact_oversample >= 1.0:
            raise ValueError(f"TrainConfig.contact_oversample must be >= 1, got {self.contact_oversample}")
        if self.rollout < 0:
            raise ValueError(f"TrainConfig.rollout must be >= 0, got {self.rollout}")


@dataclass
class RecipeConfig:
    """Everything that defines a trained simulated world model (stored in its checkpoint)."""

    model: SimModelConfig = field(default_factory=SimModelConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tasks: tuple[str, ...] = ("reach", "push")
    camera: str = "exterior_1"
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RecipeConfig:
        """Inverse of :meth:`to_dict` (a checkpoint's ``config["recipe"]``).

        Unknown keys are an error; keys missing from an older checkpoint take their defaults, and a field
        is only ever added with a default that reproduces the recipe as it was before.
        """
        parts = {"model": SimModelConfig, "collect": CollectConfig, "train": TrainConfig}
        known = set(parts) | {"tasks", "camera", "seed"}
        unknown = sorted(set(d) - known)
        for name, part in parts.items():
            fields_ = set(part.__dataclass_fields__)
            unknown += [f"{name}.{k}" for k in sorted(set(d.get(name, {})) - fields_)]
        if unknown:
            raise ValueError(f"RecipeConfig: unknown keys {unknown}")
        kwargs = {name: part(**d[name]) for name, part in parts.items() if name in d}
        if "tasks" in d:
            kwargs["tasks"] = tuple(d["tasks"])
        kwargs.update({k: d[k] for k in ("camera", "seed") if k in d})
        return cls(**kwargs)


# Training episodes use env seeds far from the evaluation seeds (plan uses seed, seed+1, ...).
TRAIN_SEED_OFFSET = 1_000_000
CONTACT_SEED_OFFSET = 1_500_000


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def _log_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


# ------------------------------------------------------------------------------------------- stage 0
def _cached_episodes(path: Path, what: str, collect) -> dict[str, np.ndarray]:
    """The arrays cached at ``path``, or ``collect()``'s, written there atomically first."""
    if path.exists():
        with np.load(path) as f:
            return {key: f[key] for key in f.files}
    t0 = time.time()
    arrays = collect()
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    print(f"collected {what} in {time.time() - t0:.1f} s")
    return arrays


def collect_data(cfg: RecipeConfig, work: Path, progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Collect (or load the cached) training episodes of every task: ``{task: arrays}``."""
    c, size = cfg.collect, cfg.model.image_size
    return {
        task: _cached_episodes(
            work / f"data_{task}.npz",
            f"{c.episodes} {task} episodes",
            lambda task=task, k=k: collect_task(
                task, c, TRAIN_SEED_OFFSET + 100_000 * k + cfg.seed, size, cfg.camera, progress
            ),
        )
        for k, task in enumerate(cfg.tasks)
    }


def collect_contact_data(
    cfg: RecipeConfig, work: Path, progress: bool = True
) -> dict[str, np.ndarray] | None:
    """Collect (or load the cached) contact-rich push episodes of the predictor stage, or None when the
    recipe has none (no push task or ``collect.contact_episodes == 0``)."""
    c = cfg.collect
    if "push" not in cfg.tasks or c.contact_episodes == 0:
        return None
    return _cached_episodes(
        work / "data_push_contact.npz",
        f"{c.contact_episodes} contact push episodes",
        lambda: collect_task(
            "push", c, CONTACT_SEED_OFFSET + cfg.seed, cfg.model.image_size, cfg.camera, progress, True
        ),
    )


def with_contact_episodes(data: dict, contact: dict[str, np.ndarray] | None) -> dict:
    """The predictor stage's data: ``data`` with the contact episodes appended to push's episodes."""
    if contact is None:
        return data
    out = dict(data)
    out["push"] = {k: np.concatenate([data["push"][k], contact[k]]) for k in data["push"]}
    return out


# ------------------------------------------------------------------------------------------- stage 1
def _frame_table(data: dict[str, dict[str, np.ndarray]]):
    """Flatten all frames: images [F,H,W,3], positions [F,6], task id [F], episode id [F], time [F]."""
    imgs, pos, tid, eid, tt = [], [], [], [], []
    for k, (_task, d) in enumerate(data.items()):
        e, t1 = d["images"].shape[:2]
        imgs.append(d["images"].reshape(e * t1, *d["images"].shape[2:]))
        pos.append(d["positions"].reshape(e * t1, -1))
        tid.append(np.full(e * t1, k))
        eid.append(np.repeat(np.arange(e) + 10_000 * k, t1))
        tt.append(np.tile(np.arange(t1), e))
    return (
        np.concatenate(imgs),
        np.concatenate(pos),
        np.concatenate(tid),
        np.concatenate(eid),
        np.concatenate(tt),
    )


def _physical_distance(p: torch.Tensor, q: torch.Tensor, block_weight: float) -> torch.Tensor:
    """EE distance + block_weight x block distance (block term only where both have a block).

    ``p[..., 6]``, ``q[..., 6]`` (broadcasting) -> ``[...]`` metres.
    """
    d = (p[..., :3] - q[..., :3]).norm(dim=-1)
    has_block = ~(torch.isnan(p[..., 3]) | torch.isnan(q[..., 3]))
    db = (torch.nan_to_num(p[..., 3:5]) - torch.nan_to_num(q[..., 3:5])).norm(dim=-1)
    return d + block_weight * torch.where(has_block, db, torch.zeros_like(db))


def pairwise_energy(z: torch.Tensor) -> torch.Tensor:
    """Planning energy between every pair of a batch: ``z[B, N, D] -> [B, B]``."""
    flat = z.flatten(1)
    return torch.cdist(flat, flat, p=1) / flat.shape[1]


def _encoder_batch(n: int, batch: int, eid: np.ndarray, g: torch.Generator) -> torch.Tensor:
    """Half random anchor frames, half frames 1-3 steps away in the same episode as an anchor.

    The near pairs give the energy-distance loss small distances, which shape the bottom of the basin.
    """
    half = batch // 2
    anchors = torch.randint(0, n, (batch - half,), generator=g)
    shift = torch.randint(1, 4, (half,), generator=g) * (torch.randint(0, 2, (half,), generator=g) * 2 - 1)
    src = anchors[:half]
    cand = (src + shift).clamp(0, n - 1)
    same = torch.from_numpy(eid[cand.numpy()] == eid[src.numpy()])
    near = torch.where(same, cand, (src - shift).clamp(0, n - 1))
    return torch.cat([anchors, near])


def train_encoder(model: SimWorldModel, data, cfg: RecipeConfig, work: Path, progress: bool = True) -> None:
    """Stage 1: encoder + probe head with the probe and energy-distance losses (logs encoder.csv).

    The energy-distance loss uses every same-task pair of the batch: ``E_ij = mean |z_i - z_j|`` should
    equal ``s * d_ij`` (``d`` = EE distance + block_weight x block distance, ``s`` the batch's
    least-squares scale), with the residual measured in metres and normalised by 5 cm.
    """
    tc = cfg.train
    images, pos, tid, eid, tt = _frame_table(data)
    # Each frame's predecessor in its episode (an episode's first frame: itself, a still scene).
    prev_of = np.arange(len(images)) - (tt > 0)
    consecutive = cfg.model.tubelet == "consecutive"
    n_pos = cfg.model.probe_dims
    if consecutive:
        # Probe targets: the positions and their change since the previous frame.
        pos = np.concatenate([pos, pos - pos[prev_of]], axis=1)
    pos_t = torch.from_numpy(pos)
    mean = torch.from_numpy(np.nan_to_num(np.nanmean(pos, axis=0))).float()
    std = torch.from_numpy(np.nan_to_num(np.nanstd(pos, axis=0), nan=1.0)).float().clamp_min(1e-3)
    model.probe_mean.copy_(mean)
    model.probe_std.copy_(std)
    tid_t = torch.from_numpy(tid)
    n = len(images)
    g = torch.Generator().manual_seed(cfg.seed)
    n_tok = model.tokens_per_frame
    # Position manifold: a linear map from the standardised positions (+ a "has block" flag) to every
    # token; z is pulled towards LN(decoder(p)), so that most of the embedding varies linearly with the
    # EE/block positions and the L1 energy grows with distance. Training-only (not in the checkpoint).
    # The manifold maps the positions alone: with consecutive tubelets the motion is decodable by the
    # probe but is not part of the energy's geometry (a still goal must not make every moving scene look
    # far away; with motion in the manifold a 2 cm step weighed as much as a 10 cm displacement).
    decoder = torch.nn.Linear(n_pos + 1, n_tok * cfg.model.embed_dim)
    # Probe loss weight per output: 1 for the positions, motion_probe_weight for their motion.
    probe_w = torch.ones(cfg.model.probe_outputs)
    probe_w[n_pos:] = tc.motion_probe_weight
    if tc.fixed_manifold:
        # A frozen random map: with a learned one the decoder's bias grows until LN(decoder(p)) hardly
        # depends on p, and the embedding's variation with position shrinks with training (energy per
        # metre fell from 0.99 to 0.30 between 3k and 8k steps, docs/experiments.md). Fixed, unit-variance
        # weights make the position term dominate the bias, so the target geometry cannot shrink.
        gen = torch.Generator().manual_seed(cfg.seed + 7)
        with torch.no_grad():
            decoder.weight.copy_(torch.randn(decoder.weight.shape, generator=gen))
            decoder.bias.copy_(torch.randn(decoder.bias.shape, generator=gen))
        decoder.requires_grad_(False)
    params = list(model.encoder.parameters()) + list(model.probe.parameters())
    params += [p for p in decoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.encoder_lr, weight_decay=0.04)
    model.train()
    log = work / "encoder.csv"
    log.unlink(missing_ok=True)
    t0 = time.time()
    bar = tqdm(range(tc.encoder_steps), desc="encoder", disable=not progress, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, tc.encoder_steps, tc.encoder_lr, warmup=50)
        idx = _encoder_batch(n, tc.encoder_batch, eid, g)
        x = torch.from_numpy(images[idx.numpy()])
        x_prev = torch.from_numpy(images[prev_of[idx.numpy()]]) if consecutive else None
        p = pos_t[idx]
        target = (p - model.probe_mean) / model.probe_std  # [B, P]
        with _autocast(tc.bf16):
            z = model.encoder_tokens(x, x_prev)
        z = layer_norm_tokens(z.float())  # [B, N, D]
        pred = model.probe_tokens(z)  # [B, N, 6]
        valid = torch.isfinite(target)
        err = (pred - torch.nan_to_num(target)[:, None]) ** 2 * probe_w
        probe_loss = (err * valid[:, None]).sum() / (valid.sum() * pred.shape[1]).clamp_min(1)
        e_pair = pairwise_energy(z)  # [B, B]
        d_pair = _physical_distance(p[:, None, :n_pos], p[None, :, :n_pos], tc.block_weight)  # [B, B]
        mask = (tid_t[idx][:, None] == tid_t[idx][None, :]) & torch.ones_like(e_pair, dtype=torch.bool).triu(
            1
        )
        # Energy per metre: the least-squares scale of this batch (detached), so that only the *shape*
        # of the energy (linear in distance) is trained, not its overall size.
        ev, dv = e_pair[mask], d_pair[mask]
        scale = ((ev * dv).sum() / (dv * dv).sum().clamp_min(1e-9)).detach().clamp_min(1e-6)
        resid = (e_pair / scale - d_pair) / 0.05
        dist_loss = (resid[mask] ** 2).mean()
        if tc.fixed_manifold:
            # Metric input: decimetres from the data mean, the block's axes scaled by block_weight, so the
            # energy is isotropic in the EE position and weighs the block's distance block_weight times.
            rel = torch.nan_to_num((p[:, :n_pos] - model.probe_mean[:n_pos]) / 0.1)
            rel = torch.cat([rel[:, :3], tc.block_weight * rel[:, 3:]], dim=1)
        else:
            rel = torch.nan_to_num(target[:, :n_pos])
        p_in = torch.cat([rel, valid[:, 3:4].float()], dim=1)  # [B, 7]
        recon = layer_norm_tokens(decoder(p_in).view(-1, n_tok, cfg.model.embed_dim))
        manifold_loss = (z - recon).abs().mean()
        loss = (
            tc.probe_weight * probe_loss + tc.distance_weight * dist_loss + tc.manifold_weight * manifold_loss
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == tc.encoder_steps - 1:
            with torch.no_grad():
                pe = model.probe_positions(z)[:, :3] - p[:, :3]
                rank = _spearman(ev.detach(), dv)
            row = {
                "step": step,
                "loss": float(loss.detach()),
                "probe_loss": float(probe_loss.detach()),
                "distance_loss": float(dist_loss.detach()),
                "manifold_l1": float(manifold_loss.detach()),
                "ee_probe_error_cm": float(pe.norm(dim=-1).mean() * 100),
                "energy_distance_spearman": float(rank),
                "energy_per_metre": float(scale),
                "elapsed_s": round(time.time() - t0, 1),
            }
            _log_row(log, row)
            bar.set_postfix(
                loss=f"{row['loss']:.3f}", ee_cm=f"{row['ee_probe_error_cm']:.1f}", rho=f"{rank:.2f}"
            )
    model.eval()


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (no ties handling needed for continuous values)."""
    if a.numel() < 3:
        return float("nan")
    ra = a.argsort().argsort().float()
    rb = b.argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


# ------------------------------------------------------------------------------------------- stage 2
@torch.no_grad()
def embed_all(model: SimWorldModel, data, batch: int = 256, progress: bool = True) -> dict[str, torch.Tensor]:
    """Frozen-encoder embeddings of every frame: ``{task: z[E, T+1, N, D]}`` (float32)."""
    out = {}
    for task, d in data.items():
        imgs = torch.from_numpy(d["images"])
        # Episodes in chunks, so that consecutive tubelets find each frame's predecessor.
        per = max(1, batch // imgs.shape[1])
        chunks = range(0, len(imgs), per)
        zs = [
            model.encode_episodes(imgs[i : i + per], batch)
            for i in tqdm(chunks, desc=f"embed {task}", disable=not progress, leave=False)
        ]
        out[task] = torch.cat(zs)
    return out


def contact_clip_weights(positions: np.ndarray, span: int, oversample: float) -> torch.Tensor:
    """Sampling weight of every training clip ``[E, T+1-span]``: ``oversample`` where the block moves by
    more than 5 mm within the clip, 1 elsewhere (and everywhere for tasks without a block).

    In the push data only ~13 % of transitions move the block by more than 1 cm; sampled uniformly, the
    predictor learns free EE motion well and under-predicts pushes (1.7 cm predicted for 2.7 cm moved).
    """
    e, t1 = positions.shape[:2]
    w = torch.ones(e, t1 - span)
    block = positions[..., 3:5]
    if np.isnan(block).all() or oversample == 1.0:
        return w
    for t in range(t1 - span):
        moved = np.linalg.norm(block[:, t + 1 : t + span + 1] - block[:, t : t + 1], axis=-1).max(axis=1)
        w[:, t] = torch.from_numpy(np.where(np.nan_to_num(moved) > 0.005, oversample, 1.0))
    return w


def train_predictor(
    model: SimWorldModel, data, z_all, cfg: RecipeConfig, work: Path, progress: bool = True
) -> None:
    """Stage 2: the residual AC predictor on frozen embeddings (logs predictor.csv)."""
    tc = cfg.train
    c, r = tc.context, tc.rollout
    span = max(c, r)
    tasks = list(z_all)
    clip_weights = {t: contact_clip_weights(data[t]["positions"], span, tc.contact_oversample) for t in tasks}
    g = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.AdamW(model.predictor.parameters(), lr=tc.predictor_lr, weight_decay=0.04)
    model.predictor.train()
    log = work / "predictor.csv"
    if log.exists():
        log.unlink()
    t0 = time.time()
    bar = tqdm(range(tc.predictor_steps), desc="predictor", disable=not progress, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, tc.predictor_steps, tc.predictor_lr, warmup=100)
        zs, acts, sts = [], [], []
        per = [tc.predictor_batch // len(tasks)] * len(tasks)
        per[0] += tc.predictor_batch - sum(per)
        for task, m in zip(tasks, per):
            z = z_all[task]
            pick = torch.multinomial(clip_weights[task].flatten(), m, replacement=True, generator=g)
            ei, ti = pick // clip_weights[task].shape[1], pick % clip_weights[task].shape[1]
            steps = ti[:, None] + torch.arange(span + 1)
            zs.append(z[ei[:, None], steps])  # [m, span+1, N, D]
            acts.append(torch.from_numpy(data[task]["actions"])[ei[:, None], steps[:, :span]])
            sts.append(torch.from_numpy(data[task]["states"])[ei[:, None], steps])
        z = torch.cat(zs)
        a = torch.cat(acts)
        s = torch.cat(sts)
        with _autocast(tc.bf16):
            pred = model.predict(z[:, :c], a[:, :c], s[:, :c])  # [B, c, N, D]
            tf_loss = (pred.float() - z[:, 1 : c + 1]).abs().mean()
            ro_loss = torch.zeros(())
            if r > 1:
                # States along the rollout come from the data; the rollout's own state propagation
                # (apply_action) is exact, so only the embedding error compounds.
                roll = model.rollout(z[:, 0], s[:, 0], a[:, :r])
                ro_loss = (roll.float() - z[:, 1 : r + 1]).abs().mean()
        loss = tf_loss + ro_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.predictor.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == tc.predictor_steps - 1:
            copy = (z[:, :c] - z[:, 1 : c + 1]).abs().mean()
            row = {
                "step": step,
                "loss": float(loss.detach()),
                "teacher_forcing_l1": float(tf_loss.detach()),
                "rollout_l1": float(ro_loss.detach()),
                "copy_baseline_l1": float(copy.detach()),
                "elapsed_s": round(time.time() - t0, 1),
            }
            _log_row(log, row)
            bar.set_postfix(tf=f"{row['teacher_forcing_l1']:.4f}", copy=f"{row['copy_baseline_l1']:.4f}")
    model.predictor.eval()


@torch.no_grad()
def calibrate_energy(data, z_all: dict[str, torch.Tensor], max_distance: float = 0.06) -> dict[str, float]:
    """Energy per metre of each task near the goal, so thresholds can be given as distances.

    Least-squares fit ``E = k d`` (through the origin) over frame pairs 1-3 steps apart in the same
    episode whose physical distance is 3 mm to ``max_distance`` (reach: EE distance; push: EE + block
    distance). Returns ``{task: k}``; ``plan --stop-distance`` turns a distance into an energy with it.
    """
    out = {}
    for task, z in z_all.items():
        pos = torch.from_numpy(data[task]["positions"]).float()  # [E, T+1, 6]
        es, ds = [], []
        for k in (1, 2, 3):
            es.append((z[:, k:] - z[:, :-k]).abs().mean(dim=(-2, -1)).flatten())
            d = (pos[:, k:, :3] - pos[:, :-k, :3]).norm(dim=-1)
            if task == "push":
                d = d + (pos[:, k:, 3:5] - pos[:, :-k, 3:5]).norm(dim=-1)
            ds.append(d.flatten())
        e, d = torch.cat(es), torch.cat(ds)
        m = (d > 0.003) & (d < max_distance)
        if int(m.sum()) < 10:
            raise ValueError(
                f"calibrate_energy: only {int(m.sum())} {task} frame pairs closer than {max_distance} m"
            )
        out[task] = float((e[m] * d[m]).sum() / (d[m] * d[m]).sum())
    return out


# ------------------------------------------------------------------------------------------- checkpoints
def save_sim_checkpoint(
    path: Path, model: SimWorldModel, cfg: RecipeConfig, energy_per_metre: dict | None = None, **extra
) -> Path:
    """Save weights + the full recipe config (``vjepa2_ac.checkpoint`` format) and the energy calibration."""
    from vjepa2_ac.checkpoint import save_checkpoint

    config = {"kind": CHECKPOINT_KIND, "model": config_dict(cfg.model), "recipe": cfg.to_dict()}
    if energy_per_metre is not None:
        config["energy_per_metre"] = energy_per_metre
    return save_checkpoint(path, model, config, **extra)


def load_sim_checkpoint(path: str | os.PathLike) -> tuple[SimWorldModel, dict]:
    """Load a simulated world model; raises a clear error if the file is not one or does not match."""
    from vjepa2_ac.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict

    ckpt = load_checkpoint(path)
    config = ckpt["config"]
    if config.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{path}: not a simulated-robot world model checkpoint (config kind={config.get('kind')!r}, "
            f"expected {CHECKPOINT_KIND!r}; train one with `vjepa2-ac demo`)"
        )
    try:
        cfg = SimModelConfig.from_dict(config["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model config: {e}") from None
    model = SimWorldModel(cfg)
    load_state_dict_strict(model, ckpt["state_dict"], what=f"simulated world model from {path}")
    model.eval()
    return model, config


def train_recipe(cfg: RecipeConfig, work: str | os.PathLike, progress: bool = True) -> Path:
    """Run (or resume) the whole recipe in ``work``; returns the final checkpoint path."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.train.threads)
    final = work / "world_model.pt"
    if final.exists():
        return final
    torch.manual_seed(cfg.seed)
    timings = {}
    t = time.time()
    data = collect_data(cfg, work, progress)
    timings["collect_s"] = time.time() - t
    model = SimWorldModel(cfg.model)
    enc_path = work / "encoder_stage.pt"
    t = time.time()
    if enc_path.exists():
        from vjepa2_ac.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(enc_path)["state_dict"])
    else:
        train_encoder(model, data, cfg, work, progress)
        save_sim_checkpoint(enc_path, model, cfg, stage="encoder")
    timings["encoder_s"] = time.time() - t
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    for p in model.probe.parameters():
        p.requires_grad_(False)
    t = time.time()
    contact = collect_contact_data(cfg, work, progress)
    timings["collect_s"] += time.time() - t
    pred_data = with_contact_episodes(data, contact)
    t = time.time()
    model.eval()
    z_all = embed_all(model, pred_data, progress=progress)
    timings["embed_s"] = time.time() - t
    t = time.time()
    train_predictor(model, pred_data, z_all, cfg, work, progress)
    timings["predictor_s"] = time.time() - t
    # Calibrated on the encoder's own data: the contact starts are not the evaluation distribution.
    calibration = calibrate_energy(data, {task: z[: len(data[task]["images"])] for task, z in z_all.items()})
    save_sim_checkpoint(final, model, cfg, energy_per_metre=calibration, stage="final", timings=timings)
    atomic_write_json(work / "train_timings.json", timings)
    print(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    return final
