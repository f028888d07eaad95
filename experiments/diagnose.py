"""``vjepa2-ac diagnose``: does a world model's predictor move the push block the way the simulator does?

    vjepa2-ac diagnose --checkpoint pretrained --episodes 60 --out runs/diag    # fresh held-out episodes
    vjepa2-ac diagnose --checkpoint C --data data/push_heldout --out runs/diag

Push planning depends on something the energy cannot show by itself: whether the predictor moves the block
when the gripper pushes it, and in which direction. This measures it without planning, in seconds.

Data: push episodes as ``vjepa2-ac collect --task push`` writes them (``--data``), or ``--episodes`` fresh
ones collected into ``OUT/data`` on a seed stream apart from training and evaluation. Frames and states
come through the DROID loader; the block position from each episode's ``sim.npz``, a simulator quantity
that is fine in an evaluation tool (the model never sees it). Episodes are cut into token steps (tubelet
``j`` = frames ``j*k .. j*k+k-1``, ``k = model.frames_per_step``; state and block at frame ``j*k``; action
the pose change to frame ``(j+1)*k``). The model is trained label-free and carries no block probe, so a
closed-form ridge probe from the embedding to the block's xy is fitted on the first half of the episodes
(penalty by cross-validation); everything else is measured on the other half:

* one step: where the true block moves more than ``--min-motion``, the probe's reading of the predictor's
  one-step prediction minus its reading of the current step, split along the action's xy direction
  (forward) and across it (sideways), against the true motion: mean sizes and correlations. The row
  ``encoded next step`` probes the true next step's embedding: the ceiling the probe allows.
* rollout: the predictor's own rollout of the executed actions over ``--horizon`` token steps, the
  block's displacement after 1..H steps along and across the summed action.

Writes ``OUT/diagnose.json`` and ``OUT/diagnose.md`` and prints the markdown.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa2_ac.experiments.results import atomic_write_json, atomic_write_text

# Fresh episodes use a collect base seed apart from the training data's (demo: 1000, 1001) and from the
# evaluation env seeds of `plan` (SEED + i), so they are held out from every stage.
DIAGNOSE_SEED = 2_000_000


def motion_stats(true: np.ndarray, pred: np.ndarray, direction: np.ndarray) -> dict:
    """Compare block motions ``true[M, 2]`` and ``pred[M, 2]`` along and across ``direction[M, 2]``.

    Returns the mean forward motion (along the unit direction), the mean absolute sideways motion, for
    both (``None`` when ``M = 0``), and their correlations (``None`` with fewer than 3 samples or no
    variation).
    """
    u = direction / np.linalg.norm(direction, axis=-1, keepdims=True).clip(1e-12)
    v = np.stack([-u[:, 1], u[:, 0]], axis=-1)
    tf, pf = (true * u).sum(-1), (pred * u).sum(-1)
    ts, ps = (true * v).sum(-1), (pred * v).sum(-1)

    def mean(a: np.ndarray) -> float | None:
        return float(a.mean()) if len(a) else None

    def corr(a: np.ndarray, b: np.ndarray) -> float | None:
        if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
            return None
        return float(np.corrcoef(a, b)[0, 1])

    return {
        "forward_true_m": mean(tf),
        "forward_pred_m": mean(pf),
        "forward_corr": corr(tf, pf),
        "sideways_true_m": mean(np.abs(ts)),
        "sideways_pred_m": mean(np.abs(ps)),
        "sideways_corr": corr(ts, ps),
    }


@dataclass
class PushSteps:
    """One push episode at token-step resolution (``S`` steps)."""

    z: torch.Tensor  # [S, N, D] embedding of each tubelet
    states: torch.Tensor  # [S, 7] state at each tubelet's first frame
    actions: torch.Tensor  # [S-1, 7] pose change to the next tubelet's first frame
    block: np.ndarray  # [S, 2] block xy (m) at each tubelet's first frame


@torch.no_grad()
def load_push_steps(model, path: Path, camera: str = "left_mp4_path") -> PushSteps:
    """Reads one collected push episode directory through the DROID loader and encodes its token steps."""
    from vjepa2_ac.datasets import DataError, RawEpisode, align_to_tokens
    from vjepa2_ac.datasets.sim_labels import SIM_FILE, read_sim_array

    episode = RawEpisode(path, camera=camera)
    data = episode.load()
    size = model.image_size
    if tuple(data.frame_size) != (size, size):
        h, w = data.frame_size
        raise DataError(path, f"frames are {h}x{w}, the checkpoint's encoder takes {size}x{size}")
    k = model.frames_per_step
    steps = data.num_steps // k  # whole tubelets
    if steps < 2:
        raise DataError(path, f"{data.num_steps} frames make {steps} token step(s) of {k}; need 2 or more")
    block_pos = read_sim_array(path, "block_pos")  # [T, 3]: a push episode is needed
    first = np.arange(steps) * k  # first frame of every tubelet
    if block_pos.shape[1] != 3 or len(block_pos) <= first[-1]:
        raise DataError(
            path, f"{SIM_FILE} block_pos: expected [T >= {first[-1] + 1}, 3], got {block_pos.shape}"
        )
    frames = episode.read_frames(range(steps * k))  # uint8 [S*k, H, W, 3]
    z = model.encode_frames(torch.from_numpy(frames)[None])[0]  # [S, N, D]
    # States up to the last tubelet's first frame: S-1 actions between consecutive tubelets.
    states, actions, _ = align_to_tokens(data.states[: first[-1] + 1], model.alignment, model.tubelet_size)
    last = torch.from_numpy(data.states[first[-1]])[None]
    return PushSteps(
        z=z.float(),
        states=torch.cat([states, last]).float(),
        actions=actions.float(),
        block=block_pos[first, :2],
    )


PROBE_FEATURES = ("tokens", "mean")
RIDGE_GRID = tuple(10.0**e for e in range(-4, 3))  # relative penalties tried by cross-validation


def probe_features(z: torch.Tensor, kind: str = "tokens") -> np.ndarray:
    """Probe inputs of embeddings ``z[..., N, D]``: float64 ``[..., N*D]`` (``tokens``: every token, so
    the probe may weigh image regions) or ``[..., D]`` (``mean``: the token mean)."""
    z = z.float()
    return (z.flatten(-2) if kind == "tokens" else z.mean(dim=-2)).double().numpy()


def ridge_solutions(x: np.ndarray, y: np.ndarray, ridges) -> list[tuple[np.ndarray, np.ndarray]]:
    """Closed-form ridge fits ``(weight[F, 2], bias[2])`` of ``y[M, 2]`` on ``x[M, F]``, one per relative
    penalty, from one SVD of the centred features (cheap when ``F >> M``). A penalty is relative to the
    features' mean sum of squares, so it does not depend on their scale; the bias is not penalised."""
    mx, my = x.mean(0), y.mean(0)
    u, sv, vt = np.linalg.svd(x - mx, full_matrices=False)  # [M, r], [r], [r, F]
    uty = u.T @ (y - my)  # [r, 2]
    scale = (sv**2).sum() / x.shape[1] + 1e-12
    fits = []
    for r in ridges:
        weight = vt.T @ ((sv / (sv**2 + r * scale))[:, None] * uty)
        fits.append((weight, my - mx @ weight))
    return fits


@dataclass
class BlockProbe:
    """Linear read-out of the block's xy from embeddings (see :func:`probe_features`)."""

    features: str
    ridge: float
    weight: np.ndarray  # [F, 2]
    bias: np.ndarray  # [2]

    @classmethod
    def fit(cls, zs: list[torch.Tensor], blocks: list[np.ndarray], features: str = "tokens", ridge=None):
        """Fits on episodes ``zs[i][S_i, N, D]`` -> ``blocks[i][S_i, 2]``. ``ridge=None`` picks the penalty
        from :data:`RIDGE_GRID` by cross-validation over whole episodes (up to 5 folds)."""
        xs = [probe_features(z, features) for z in zs]
        if ridge is None:
            folds = min(5, len(xs))
            if folds < 2:
                raise ValueError("--ridge: choosing it by cross-validation needs >= 2 fit episodes")
            sse = np.zeros(len(RIDGE_GRID))
            for f in range(folds):  # episode i validates in fold i % folds

                def pick(arrs: list[np.ndarray], val: bool, f: int = f) -> np.ndarray:
                    return np.concatenate([a for i, a in enumerate(arrs) if (i % folds == f) == val])

                fits = ridge_solutions(pick(xs, False), pick(blocks, False), RIDGE_GRID)
                sse += [((pick(xs, True) @ w + b - pick(blocks, True)) ** 2).sum() for w, b in fits]
            ridge = RIDGE_GRID[int(np.argmin(sse))]
        if sum(len(x) for x in xs) < 2:
            raise ValueError("the block probe needs at least 2 samples to fit")
        ((weight, bias),) = ridge_solutions(np.concatenate(xs), np.concatenate(blocks), [ridge])
        return cls(features, float(ridge), weight, bias)

    def __call__(self, z: torch.Tensor) -> np.ndarray:
        """Block xy ``[..., 2]`` read from embeddings ``z[..., N, D]``."""
        return probe_features(z, self.features) @ self.weight + self.bias

    def score(self, zs: list[torch.Tensor], blocks: list[np.ndarray]) -> dict:
        """Quality on (held-out) episodes: RMSE (m) and R^2 per axis."""
        y = np.concatenate(blocks)
        err = np.concatenate([self(z) for z in zs]) - y
        r2 = 1 - (err**2).sum(0) / ((y - y.mean(0)) ** 2).sum(0).clip(1e-12)
        return {"rmse_m": np.sqrt((err**2).mean(0)).tolist(), "r2": r2.tolist(), "samples": len(y)}


@torch.no_grad()
def block_spans(model, episodes: list[PushSteps], probe: BlockProbe, horizon: int) -> dict[int, tuple]:
    """The block's xy displacement after ``k = 1..horizon`` token steps from every step that has
    ``horizon`` executed actions after it: ``{k: (true, predicted, encoded, direction)}``, each ``[M, 2]``.

    ``predicted`` probes the predictor's own rollout of the executed actions (from the encoded start step
    alone, as ``plan`` runs), ``encoded`` the true step ``k`` later; ``direction`` is the summed action xy.
    """
    parts = {k: ([], [], [], []) for k in range(1, horizon + 1)}
    for ep in episodes:
        starts = len(ep.actions) - horizon + 1
        if starts < 1:
            continue
        acts = torch.stack([ep.actions[j : j + horizon] for j in range(starts)])  # [B, H, 7]
        z_pred, _ = model.rollout(ep.z[:starts, None], ep.states[:starts, None], acts)  # [B, H, N, D]
        now = probe(ep.z[:starts])  # [B, 2]
        pred = probe(z_pred) - now[:, None]  # [B, H, 2]
        for k, (true, p, e, d) in parts.items():
            true.append(ep.block[k : k + starts] - ep.block[:starts])
            p.append(pred[:, k - 1])
            e.append(probe(ep.z[k : k + starts]) - now)
            d.append(acts[:, :k, :2].sum(1).double().numpy())
    if not parts[1][0]:
        longest = max(len(ep.actions) for ep in episodes)
        raise ValueError(f"--horizon {horizon}: the longest evaluation episode has {longest} transitions")
    return {k: tuple(np.concatenate(a) for a in v) for k, v in parts.items()}


def _moving(true: np.ndarray, direction: np.ndarray, min_motion: float) -> np.ndarray:
    """Spans in which the block moves more than ``min_motion`` and the action has an xy direction."""
    return (np.linalg.norm(true, axis=-1) > min_motion) & (np.linalg.norm(direction, axis=-1) > 1e-4)


def one_step_fit(model, episodes: list[PushSteps], probe: BlockProbe, min_motion: float = 0.01) -> dict:
    """Table 1: predicted and encoded vs true block motion over one token step (see the module docstring)."""
    true, pred, enc, direction = block_spans(model, episodes, probe, 1)[1]
    keep = _moving(true, direction, min_motion)
    if not keep.any():
        raise ValueError(f"--min-motion: no transition in which the block moves more than {min_motion} m")
    t, d = true[keep], direction[keep]
    rows = [
        {"source": "predictor, one step"} | motion_stats(t, pred[keep], d),
        {"source": "encoded next step"} | motion_stats(t, enc[keep], d),
    ]
    return {"transitions": int(keep.sum()), "of_transitions": len(keep), "rows": rows}


def rollout_fit(
    model, episodes: list[PushSteps], probe: BlockProbe, horizon: int = 4, min_motion: float = 0.01
) -> dict:
    """Table 2: displacement after 1..``horizon`` rollout steps where the block moves ``k * min_motion``."""
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    rows = []
    for k, (true, pred, enc, direction) in block_spans(model, episodes, probe, horizon).items():
        keep = _moving(true, direction, k * min_motion)
        stats = motion_stats(true[keep], pred[keep], direction[keep])
        ceiling = motion_stats(true[keep], enc[keep], direction[keep])["forward_pred_m"]
        # A k without such spans gives an empty row (0 spans, no values) instead of failing the diagnosis.
        rows.append({"steps": k, "spans": int(keep.sum())} | stats | {"forward_encoded_m": ceiling})
    return {"horizon": horizon, "rows": rows}


def _cm(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} cm"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _motion_cells(r: dict) -> str:
    forward = f"{_cm(r['forward_true_m'])} | {_cm(r['forward_pred_m'])} | {_num(r['forward_corr'])}"
    return (
        f"{forward} | {_cm(r['sideways_true_m'])} | {_cm(r['sideways_pred_m'])} | {_num(r['sideways_corr'])}"
    )


def table_markdown(result: dict) -> str:
    probe, one = result["probe"], result["one_step"]
    header = "forward: true | predicted | corr. | sideways: true | predicted | corr."
    mm = _cm(result["min_motion_m"])
    lines = [
        f"Block probe (ridge {probe['ridge']:g} on {probe['features']}), fitted on {result['fit_episodes']} "
        f"episodes: held-out RMSE x/y {_cm(probe['rmse_m'][0])} / {_cm(probe['rmse_m'][1])}, R² "
        f"{_num(probe['r2'][0])} / {_num(probe['r2'][1])} over {probe['samples']} steps of "
        f"{result['eval_episodes']} evaluation episodes.",
        "",
        f"One token step ({result['frames_per_step']} frames): {one['transitions']} of "
        f"{one['of_transitions']} transitions in which the block moves more than {mm}.",
        "",
        f"| source | {header} |",
        "|---" * 7 + "|",
        *(f"| {r['source']} | {_motion_cells(r)} |" for r in one["rows"]),
    ]
    roll = result.get("rollout")
    if roll is not None:
        lines += [
            "",
            f"Predictor rollouts over {roll['horizon']} token steps: block displacement after k steps "
            "(encoded: the probe on the true step k later; ratio: predicted / true forward).",
            "",
            f"| steps | spans | {header} | encoded forward | ratio |",
            "|---" * 10 + "|",
        ]
        for r in roll["rows"]:
            ratio = r["forward_pred_m"] / r["forward_true_m"] if r["spans"] and r["forward_true_m"] else None
            lines.append(
                f"| {r['steps']} | {r['spans']} | {_motion_cells(r)} | {_cm(r['forward_encoded_m'])} "
                f"| {_num(ratio)} |"
            )
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", required=True, help="a world model checkpoint, or `pretrained`")
    add("--data", default=None, help="directory of push episodes written by `vjepa2-ac collect --task push`")
    add(
        "--episodes",
        type=int,
        default=None,
        help=f"without --data: collect this many fresh push episodes into OUT/data (default 60, collect "
        f"seed {DIAGNOSE_SEED}); with --data: use its first N episodes",
    )
    add("--max-steps", type=int, default=None, help="without --data: control steps per episode (default 20)")
    add("--camera", default="left_mp4_path", help="camera metadata key or serial")
    add("--min-motion", type=float, default=0.01, help="block motion threshold per token step (m)")
    add("--horizon", type=int, default=4, help="rollout token steps (0: skip that table)")
    add("--probe-features", default="tokens", choices=PROBE_FEATURES, help="block probe input")
    add("--ridge", type=float, default=None, help="relative ridge penalty of the probe (default: by CV)")
    add("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    add("--out", required=True, help="output directory")
    add("--no-progress", action="store_true")


def _episode_dirs(args, model, out: Path) -> list[Path]:
    from vjepa2_ac.datasets import list_raw_episodes

    if args.episodes is not None and args.episodes < 2:
        raise ValueError(
            f"--episodes must be >= 2 (half fit the probe, half are evaluated), got {args.episodes}"
        )
    if args.data is None:
        from vjepa2_ac.envs.collect import CollectConfig, collect

        n = 60 if args.episodes is None else args.episodes
        steps = 20 if args.max_steps is None else args.max_steps  # as long as `demo`'s training episodes
        fresh = dict(task="push", push_start="aligned", seed=DIAGNOSE_SEED, max_steps=steps)
        collect(CollectConfig(**fresh, image_size=model.image_size), out / "data", n)
        return list_raw_episodes(out / "data")[:n]
    if args.max_steps is not None:
        raise ValueError("--max-steps applies to freshly collected episodes only (without --data)")
    dirs = list_raw_episodes(args.data)[: args.episodes]
    if len(dirs) < 2:
        raise ValueError(f"--data {args.data}: {len(dirs)} episode(s); need 2 or more")
    return dirs


def diagnose(model, dirs: list[Path], args) -> dict:
    """Encodes the episodes, fits the block probe on the first half, measures on the second half."""
    from tqdm import tqdm

    episodes = [
        load_push_steps(model, d, args.camera) for d in tqdm(dirs, desc="encode", disable=args.no_progress)
    ]
    n_fit = len(episodes) // 2
    fit, held = episodes[:n_fit], episodes[n_fit:]
    probe = BlockProbe.fit([e.z for e in fit], [e.block for e in fit], args.probe_features, args.ridge)
    result = {
        "frames_per_step": model.frames_per_step,
        "fit_episodes": n_fit,
        "eval_episodes": len(held),
        "min_motion_m": args.min_motion,
        "probe": {"features": probe.features, "ridge": probe.ridge, "ridge_by_cv": args.ridge is None}
        | probe.score([e.z for e in held], [e.block for e in held]),
        "one_step": one_step_fit(model, held, probe, args.min_motion),
    }
    if args.horizon:
        result["rollout"] = rollout_fit(model, held, probe, args.horizon, args.min_motion)
    return result


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.experiments.plan import PlanError, load_world_model
    from vjepa2_ac.experiments.pretrained import resolve_checkpoint

    torch.set_num_threads(max(1, args.threads))
    for bad, what in (
        (args.horizon < 0, f"--horizon must be >= 0, got {args.horizon}"),
        (args.min_motion < 0, f"--min-motion must be >= 0 metres, got {args.min_motion}"),
        (args.ridge is not None and args.ridge <= 0, f"--ridge must be > 0, got {args.ridge}"),
    ):
        if bad:
            raise SystemExit(f"vjepa2-ac diagnose: {what}")
    out = Path(args.out)
    try:
        path = resolve_checkpoint(args.checkpoint)
        try:
            model = load_world_model(path)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:  # not a torch file at all
            raise ValueError(f"--checkpoint {path}: not a loadable world model checkpoint: {e}") from None
        result = diagnose(model, _episode_dirs(args, model, out), args)
    except (PlanError, ValueError, FileNotFoundError) as e:  # DataError is a ValueError
        raise SystemExit(f"vjepa2-ac diagnose: {e}") from None
    result["checkpoint"] = str(args.checkpoint)
    result["data"] = args.data if args.data is not None else str(out / "data")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "diagnose.json", result)
    text = table_markdown(result)
    atomic_write_text(out / "diagnose.md", text)
    print(text)
    return 0
