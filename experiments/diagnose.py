"""``vjepa2-ac diagnose``: how well a simulated world model's predictor moves the push block.

    vjepa2-ac diagnose --checkpoint pretrained --episodes 60 --out runs/diag       # fresh held-out episodes
    vjepa2-ac diagnose --checkpoint C --data runs/demo/train/data_push.npz --last 60 --out runs/diag

Push planning depends on one thing the energy cannot show by itself: whether the predictor moves the
block when the gripper pushes it, and in which direction. This command measures that without planning
(seconds instead of the tens of minutes a 100-episode ``plan`` run takes), so predictor variants can be
compared before they are planned with.

For every transition ``t -> t+1`` of the episodes in which the block moves more than ``--min-motion``
metres, the predictor's one-step prediction from frame ``t`` (with the ``K`` observed frames before it
as block-causal context, as ``plan --context-frames K``) is read out with the checkpoint's linear
position probe. Its block motion is split along the action's xy direction (forward) and across it
(sideways) and compared with the true motion: mean size and correlation. The row ``encoded next frame``
reads the probe from the *true* next frame's embedding: the ceiling that the probe allows.

Planning scores whole rollouts, in which an under-predicted push compounds, so a second table follows
the predictor's own autoregressive rollout from each frame over ``--horizon`` steps (the executed
actions, no context) and compares the block's displacement after 1..H steps with the true one, along
and across the summed action (only where the block moves more than ``--min-motion`` per step on average).
Writes ``OUT/diagnose.json`` and ``OUT/diagnose.md``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from vjepa2_ac.experiments.results import atomic_write_json, atomic_write_text

# Fresh episodes for this command use env seeds apart from evaluation (0...), training (1,000,000...)
# and contact (1,500,000...) episodes, so they are held out from every stage.
DIAGNOSE_SEED_OFFSET = 2_000_000
EPISODE_KEYS = ("images", "states", "actions", "positions")


def motion_stats(true: np.ndarray, pred: np.ndarray, direction: np.ndarray) -> dict:
    """Compare block motions ``true[M, 2]`` and ``pred[M, 2]`` along and across ``direction[M, 2]``.

    Returns the mean forward motion (along the unit direction), the mean absolute sideways motion, for
    both, and their correlations (``None`` when undefined: fewer than 3 samples or no variation).
    """
    u = direction / np.linalg.norm(direction, axis=-1, keepdims=True).clip(1e-12)
    v = np.stack([-u[:, 1], u[:, 0]], axis=-1)
    tf, pf = (true * u).sum(-1), (pred * u).sum(-1)
    ts, ps = (true * v).sum(-1), (pred * v).sum(-1)

    def corr(a: np.ndarray, b: np.ndarray) -> float | None:
        if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
            return None
        return float(np.corrcoef(a, b)[0, 1])

    return {
        "forward_true_m": float(tf.mean()),
        "forward_pred_m": float(pf.mean()),
        "forward_corr": corr(tf, pf),
        "sideways_true_m": float(np.abs(ts).mean()),
        "sideways_pred_m": float(np.abs(ps).mean()),
        "sideways_corr": corr(ts, ps),
    }


def check_episodes(episodes: dict, image_size: int, what: str) -> None:
    """Clear errors for push episodes that this diagnosis cannot use."""
    missing = [k for k in EPISODE_KEYS if k not in episodes]
    if missing:
        raise ValueError(f"{what}: missing arrays {missing}; expected {list(EPISODE_KEYS)}")
    imgs, states, actions, pos = (episodes[k] for k in EPISODE_KEYS)
    if imgs.ndim != 5 or imgs.shape[-1] != 3:
        raise ValueError(f"{what}: images must be [E, T+1, H, W, 3], got {imgs.shape}")
    e, t1 = imgs.shape[:2]
    if imgs.shape[2:4] != (image_size, image_size):
        raise ValueError(
            f"{what}: images are {imgs.shape[2]}x{imgs.shape[3]}, the checkpoint's encoder takes "
            f"{image_size}x{image_size}"
        )
    for name, arr, shape in (
        ("states", states, (e, t1, 7)),
        ("actions", actions, (e, t1 - 1, 7)),
        ("positions", pos, (e, t1, 6)),
    ):
        if arr.shape != shape:
            raise ValueError(f"{what}: {name} must have shape {shape} (from images), got {arr.shape}")
    if not np.isfinite(pos[..., 3:]).all():
        raise ValueError(f"{what}: positions[..., 3:6] (block xyz) must be finite: push episodes are needed")


@torch.no_grad()
def encode_push_episodes(model, episodes: dict, progress: bool = False) -> tuple:
    """Embeddings ``z[E, T+1, N, D]`` and probed positions ``[E, T+1, 6]`` of push episodes, with their
    states and actions as tensors and true positions in float64."""
    from vjepa2_ac.experiments.recipe import embed_all

    check_episodes(episodes, model.cfg.image_size, "episodes")
    z = embed_all(model, {"push": episodes}, progress=progress)["push"]
    probed = model.probe_positions(z).numpy()
    states = torch.from_numpy(np.asarray(episodes["states"], np.float32))
    actions = torch.from_numpy(np.asarray(episodes["actions"], np.float32))
    return z, probed, states, actions, np.asarray(episodes["positions"], np.float64)


@torch.no_grad()
def block_motion_fit(
    model,
    episodes: dict,
    context_frames: tuple[int, ...] = (0, 1, 2, 3),
    min_motion: float = 0.01,
    progress: bool = False,
    encoded: tuple | None = None,
) -> dict:
    """One-step block motion of ``model``'s predictor against the truth (see the module docstring).

    ``encoded``: the episodes' ``encode_push_episodes`` result, when the caller already has it.

    ``episodes``: ``images uint8[E, T+1, H, W, 3]``, ``states [E, T+1, 7]``, ``actions [E, T, 7]``,
    ``positions [E, T+1, 6]`` (EE xyz, block xyz), as the recipe's ``data_push.npz``. All rows use the
    same transitions: steps ``max(context_frames) .. T-1`` where the block moves more than
    ``min_motion`` and the action has an xy direction.
    """
    check_episodes(episodes, model.cfg.image_size, "episodes")
    kmax = max(context_frames)
    if min(context_frames) < 0:
        raise ValueError(f"context_frames must be >= 0, got {context_frames}")
    if kmax + 1 > model.cfg.max_steps:
        raise ValueError(
            f"context_frames up to {kmax} need max_steps >= {kmax + 1}; the model has {model.cfg.max_steps}"
        )
    t_steps = episodes["actions"].shape[1]
    if t_steps <= kmax:
        raise ValueError(f"episodes have {t_steps} steps; context_frames up to {kmax} need more")

    z, probed, states, actions, pos = encoded or encode_push_episodes(model, episodes, progress)

    steps = np.arange(kmax, t_steps)
    true = pos[:, steps + 1, 3:5] - pos[:, steps, 3:5]  # [E, S, 2]
    direction = episodes["actions"][:, steps, :2].astype(np.float64)
    keep = (np.linalg.norm(true, axis=-1) > min_motion) & (np.linalg.norm(direction, axis=-1) > 1e-4)
    if not keep.any():
        raise ValueError(f"episodes: no transition in which the block moves more than {min_motion} m")

    rows = []
    for k in context_frames:
        pred = np.zeros_like(true)
        for j, t in enumerate(steps):
            hist = (z[:, t - k : t], states[:, t - k : t], actions[:, t - k : t]) if k else None
            z_next = model.rollout(z[:, t], states[:, t], actions[:, t : t + 1], history=hist)[:, 0]
            pred[:, j] = model.probe_positions(z_next).numpy()[:, 3:5] - probed[:, t, 3:5]
        rows.append(
            {"source": f"predictor, {k} past frames", "context_frames": k}
            | motion_stats(true[keep], pred[keep], direction[keep])
        )
    encoded = probed[:, steps + 1, 3:5] - probed[:, steps, 3:5]
    rows.append(
        {"source": "encoded next frame", "context_frames": None}
        | motion_stats(true[keep], encoded[keep], direction[keep])
    )
    return {
        "transitions": int(keep.sum()),
        "episodes": int(keep.shape[0]),
        "min_motion_m": min_motion,
        "rows": rows,
    }


@torch.no_grad()
def rollout_block_fit(
    model, episodes: dict, horizon: int = 4, min_motion: float = 0.01, encoded: tuple | None = None
) -> dict:
    """Block displacement after 1..``horizon`` steps of the predictor's rollout from every frame that
    has ``horizon`` actions after it, against the truth (``motion_stats`` along the summed action).

    Rollouts start from the encoded frame alone, as ``plan`` runs by default. ``encoded``: as in
    :func:`block_motion_fit`.
    """
    check_episodes(episodes, model.cfg.image_size, "episodes")
    if not 1 <= horizon <= model.cfg.max_steps:
        raise ValueError(
            f"horizon must be in 1..{model.cfg.max_steps} (the model's max_steps), got {horizon}"
        )
    t_steps = episodes["actions"].shape[1]
    if t_steps < horizon:
        raise ValueError(f"episodes have {t_steps} steps; a rollout over {horizon} needs as many")
    z, probed, states, actions, pos = encoded or encode_push_episodes(model, episodes)
    t0 = np.arange(t_steps - horizon + 1)  # rollout starts
    pred = np.zeros((pos.shape[0], len(t0), horizon, 2))  # [E, S, H, 2]
    for j, t in enumerate(t0):
        roll = model.rollout(z[:, t], states[:, t], actions[:, t : t + horizon])  # [E, H, N, D]
        pred[:, j] = model.probe_positions(roll).numpy()[..., 3:5] - probed[:, t, None, 3:5]
    xy = episodes["actions"][..., :2]  # [E, T, 2]
    rows = []
    for k in range(1, horizon + 1):
        true = pos[:, t0 + k, 3:5] - pos[:, t0, 3:5]  # [E, S, 2]
        # The summed action of each span t0 .. t0 + k: its direction splits forward from sideways.
        direction = np.lib.stride_tricks.sliding_window_view(xy, k, axis=1)[:, t0].sum(-1)  # [E, S, 2]
        p = pred[:, :, k - 1]  # [E, S, 2]
        keep = (np.linalg.norm(true, axis=-1) > k * min_motion) & (np.linalg.norm(direction, axis=-1) > 1e-4)
        if not keep.any():  # no such span: an empty row says so instead of failing the diagnosis
            nan = float("nan")
            empty = {"forward_true_m": nan, "forward_pred_m": nan, "forward_corr": None}
            empty |= {"sideways_true_m": nan, "sideways_pred_m": nan, "sideways_corr": None}
            rows.append({"steps": k, "spans": 0} | empty)
            continue
        rows.append(
            {"steps": k, "spans": int(keep.sum())} | motion_stats(true[keep], p[keep], direction[keep])
        )
    return {"horizon": horizon, "min_motion_m": min_motion, "rows": rows}


def table_markdown(result: dict) -> str:
    def cm(x: float) -> str:
        return f"{100 * x:.2f} cm"

    def c(x: float | None) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"

    lines = [
        f"Block motion over {result['transitions']} transitions of {result['episodes']} episodes in which "
        f"the block moves more than {cm(result['min_motion_m'])}.",
        "",
        "| source | forward: true | predicted | corr. | sideways: true | predicted | corr. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        forward = f"{cm(r['forward_true_m'])} | {cm(r['forward_pred_m'])} | {c(r['forward_corr'])}"
        sideways = f"{cm(r['sideways_true_m'])} | {cm(r['sideways_pred_m'])} | {c(r['sideways_corr'])}"
        lines.append(f"| {r['source']} | {forward} | {sideways} |")
    roll = result.get("rollout")
    if roll is not None:
        lines += [
            "",
            f"Predictor rollouts over {roll['horizon']} steps (no context): block displacement after k "
            "steps.",
            "",
            "| steps | spans | forward: true | predicted | ratio | corr. | sideways: true | predicted "
            "| corr. |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in roll["rows"]:
            ratio = r["forward_pred_m"] / r["forward_true_m"] if r["spans"] else float("nan")
            lines.append(
                f"| {r['steps']} | {r['spans']} | {cm(r['forward_true_m'])} | {cm(r['forward_pred_m'])} | "
                f"{c(ratio)} | {c(r['forward_corr'])} | {cm(r['sideways_true_m'])} | "
                f"{cm(r['sideways_pred_m'])} | {c(r['sideways_corr'])} |"
            )
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="simulated world model checkpoint, or `pretrained`"
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data", help="push episodes .npz (images, states, actions, positions), e.g. data_push.npz"
    )
    src.add_argument(
        "--episodes",
        type=int,
        help=f"collect this many fresh push episodes (env seeds {DIAGNOSE_SEED_OFFSET} + i) with the "
        "checkpoint's recipe",
    )
    parser.add_argument("--last", type=int, default=None, help="--data: use only its last N episodes")
    parser.add_argument(
        "--context-frames", default="0,1,2,3", help="comma-separated numbers of past frames given as context"
    )
    parser.add_argument("--min-motion", type=float, default=0.01, help="block motion threshold (m)")
    parser.add_argument(
        "--horizon", type=int, default=4, help="rollout length of the second table (0: skip it)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-progress", action="store_true")


def _parse_context(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"--context-frames: expected comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 0:
        raise SystemExit(f"--context-frames: expected integers >= 0, got {text!r}")
    return ks


def _load_episodes(args, model, config: dict) -> dict:
    if args.data is not None:
        path = Path(args.data)
        if not path.is_file():
            raise SystemExit(f"--data: {path} does not exist")
        with np.load(path) as f:
            episodes = {k: f[k] for k in f.files}
        check_episodes(episodes, model.cfg.image_size, str(path))
        if args.last is not None:
            if args.last < 1:
                raise SystemExit(f"--last must be >= 1, got {args.last}")
            episodes = {k: v[-args.last :] for k, v in episodes.items()}
        return episodes
    if args.last is not None:
        raise SystemExit("--last applies to --data only")
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    import dataclasses

    from vjepa2_ac.experiments.episodes import collect_task
    from vjepa2_ac.experiments.recipe import RecipeConfig

    recipe = RecipeConfig.from_dict(config["recipe"]) if "recipe" in config else RecipeConfig()
    cfg = dataclasses.replace(recipe.collect, episodes=args.episodes)
    return collect_task(
        "push", cfg, DIAGNOSE_SEED_OFFSET, model.cfg.image_size, recipe.camera, progress=not args.no_progress
    )


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.experiments.pretrained import resolve_checkpoint
    from vjepa2_ac.experiments.recipe import load_sim_checkpoint

    ks = _parse_context(args.context_frames)
    model, config = load_sim_checkpoint(resolve_checkpoint(args.checkpoint))
    if not 0 <= args.horizon <= model.cfg.max_steps:
        raise SystemExit(f"--horizon must be in 0..{model.cfg.max_steps} (the checkpoint's max_steps)")
    if max(ks) + 1 > model.cfg.max_steps:
        raise SystemExit(
            f"--context-frames up to {max(ks)} need max_steps >= {max(ks) + 1}; "
            f"the checkpoint has {model.cfg.max_steps}"
        )
    try:
        episodes = _load_episodes(args, model, config)
        encoded = encode_push_episodes(model, episodes, progress=not args.no_progress)
        result = block_motion_fit(model, episodes, ks, args.min_motion, encoded=encoded)
        if args.horizon:
            result["rollout"] = rollout_block_fit(model, episodes, args.horizon, args.min_motion, encoded)
    except ValueError as e:
        raise SystemExit(f"vjepa2-ac diagnose: {e}") from None
    result["checkpoint"] = str(args.checkpoint)
    result["data"] = args.data if args.data is not None else f"{args.episodes} fresh push episodes"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "diagnose.json", result)
    text = table_markdown(result)
    atomic_write_text(out / "diagnose.md", text)
    print(text)
    return 0
