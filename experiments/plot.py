"""``vjepa2-ac plot``: figures from planning runs and training logs.

Sub-commands (each writes PNGs; ``run`` writes every figure a planning run directory supports)::

    vjepa2-ac plot run RUN_DIR [--out DIR]          # all of the below for one `plan` output dir
    vjepa2-ac plot success RUN_DIR [RUN_DIR ...] --out success.png
    vjepa2-ac plot filmstrip EPISODE_frames.npz --out film.png
    vjepa2-ac plot energy RUN_DIR --out energy.png
    vjepa2-ac plot trajectories RUN_DIR --out traj.png
    vjepa2-ac plot landscape LANDSCAPE.npz --out landscape.png
    vjepa2-ac plot curves TRAIN.csv [TRAIN.csv ...] --out curves.png

Inputs are the files `vjepa2-ac plan` writes (``episodes/ep_*.json``, ``episodes/ep_*_frames.npz``,
``landscape_*.npz``) and CSV training logs with a ``step`` column.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vjepa2_ac.experiments.results import aggregate, load_episode_records

# Consistent colours per method family across every figure.
_METHOD_COLOURS = {"world_model": "tab:blue", "oracle": "tab:green", "random": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(method: str) -> str:
    if "stop" in method:
        return "tab:purple"
    for key, colour in _METHOD_COLOURS.items():
        if method.startswith(key) or key in method:
            return colour
    return "tab:orange"


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(out)
    _plt().close(fig)
    return out


# --------------------------------------------------------------------------------------------- success
def plot_success(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Bar chart of success rate (with 95 % Wilson intervals) per task and method over run dirs."""
    records = []
    for d in run_dirs:
        records += load_episode_records(d)
    if not records:
        raise ValueError(f"plot success: no finished episodes in {list(map(str, run_dirs))}")
    rows = aggregate(records)
    tasks = sorted({r["task"] for r in rows})
    methods = sorted({r["method"] for r in rows}, key=lambda m: (not m.startswith("world_model"), m))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(tasks) * max(1, len(methods)) / 2, 3.6))
    width = 0.8 / max(1, len(methods))
    labelled: set[str] = set()
    for j, method in enumerate(methods):
        for i, task in enumerate(tasks):
            row = next((r for r in rows if r["task"] == task and r["method"] == method), None)
            if row is None:
                continue
            x = i + (j - (len(methods) - 1) / 2) * width
            p = row["success_rate"]
            # Clipped at 0: at 0 % or 100 % the Wilson bound equals p up to rounding and can fall past it.
            err = [[max(0.0, p - row["success_ci_lo"])], [max(0.0, row["success_ci_hi"] - p)]]
            label = None if method in labelled else method
            labelled.add(method)
            ax.bar(x, 100 * p, width * 0.9, color=_colour(method), label=label)
            ax.errorbar(x, 100 * p, yerr=100 * np.asarray(err), color="black", capsize=3, lw=1)
            top = 100 * max(p, row["success_ci_hi"])  # above the error bar
            ax.text(x, top + 2, f"{100 * p:.0f}%\nn={row['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 135)  # headroom for the labels of 100 % bars and the legend above them
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("success rate (%)  [95% Wilson CI]")
    ax.set_title("Planning success per task and method")
    ax.legend(fontsize=8, loc="upper center", ncol=min(3, len(methods)), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------- filmstrip
def plot_filmstrip(frames_npz: str | Path, out: str | Path, max_frames: int = 12) -> Path:
    """Executed frames (subsampled to ``max_frames``) next to the goal image, with distance/energy."""
    data = np.load(frames_npz)
    for key in ("frames", "goal"):
        if key not in data:
            raise ValueError(f"{frames_npz}: missing array {key!r} (expected a plan '*_frames.npz' file)")
    frames = data["frames"]  # [T+1, H, W, 3] uint8
    goal = data["goal"]  # [H, W, 3] uint8
    if frames.ndim != 4 or frames.shape[-1] != 3 or goal.shape != frames.shape[1:]:
        raise ValueError(
            f"{frames_npz}: frames {frames.shape} / goal {goal.shape} are not [T,H,W,3] / [H,W,3]"
        )
    dist = data["distance"] if "distance" in data else None
    energy = data["energy"] if "energy" in data else None
    t = frames.shape[0]
    idx = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    plt = _plt()
    fig, axes = plt.subplots(1, len(idx) + 1, figsize=(1.5 * (len(idx) + 1), 2.0))
    for ax, i in zip(axes[:-1], idx):
        ax.imshow(frames[i])
        label = f"step {i}"
        if dist is not None and i < len(dist):
            label += f"\n{100 * float(dist[i]):.1f} cm"
        if energy is not None and 0 < i <= len(energy):
            label += f"\nE={float(energy[i - 1]):.3f}"
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    axes[-1].imshow(goal)
    axes[-1].set_title("GOAL", fontsize=8, color="tab:red", fontweight="bold")
    axes[-1].axis("off")
    for spine in axes[-1].spines.values():
        spine.set_edgecolor("tab:red")
    title = str(data["title"]) if "title" in data else Path(frames_npz).stem
    fig.suptitle(title, fontsize=9, y=1.12)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------- traces
def plot_energy(run_dir: str | Path, out: str | Path, max_episodes: int = 30) -> Path:
    """Energy (predicted, of the executed plan) and true goal distance per MPC step, per episode."""
    records = load_episode_records(run_dir)
    if not records:
        raise ValueError(f"plot energy: no finished episodes in {run_dir}")
    plt = _plt()
    fig, (ax_e, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    thr = None
    for rec in records[:max_episodes]:
        c = "tab:green" if rec["success"] else "tab:red"
        if rec["energy_trace"]:
            ax_e.plot(range(1, len(rec["energy_trace"]) + 1), rec["energy_trace"], color=c, alpha=0.5, lw=1)
        ax_d.plot(100 * np.asarray(rec["distance_trace"]), color=c, alpha=0.5, lw=1)
        thr = rec.get("success_threshold", thr)
    ax_e.set_xlabel("MPC step")
    ax_e.set_ylabel("energy of chosen action (L1 to goal embedding)")
    ax_e.set_title("planner energy (green = success, red = failure)")
    ax_d.set_xlabel("MPC step")
    ax_d.set_ylabel("true distance to goal (cm)")
    ax_d.set_title("true goal distance")
    if thr is not None:
        ax_d.axhline(100 * thr, color="black", ls="--", lw=1, label=f"success threshold {100 * thr:.0f} cm")
        ax_d.legend(fontsize=8)
    for ax in (ax_e, ax_d):
        ax.grid(alpha=0.3)
    methods = sorted({r["method"] for r in records})
    fig.suptitle(f"{records[0]['task']} / {', '.join(methods)}: {min(len(records), max_episodes)} episodes")
    return _save(fig, out)


def plot_trajectories(run_dir: str | Path, out: str | Path, max_episodes: int = 9) -> Path:
    """Top-down (x, y) end-effector and block paths against their goals, one panel per episode."""
    records = [r for r in load_episode_records(run_dir) if r.get("ee_trajectory")]
    if not records:
        raise ValueError(f"plot trajectories: no episode in {run_dir} has an 'ee_trajectory'")
    records = records[:max_episodes]
    n = len(records)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    plt = _plt()
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.3 * cols, 3.2 * rows), squeeze=False, layout="constrained"
    )
    for ax, rec in zip(axes.flat, records):
        ee = np.asarray(rec["ee_trajectory"])
        ax.plot(ee[:, 0] * 100, ee[:, 1] * 100, "-o", ms=2, color="tab:blue", label="end effector")
        ax.plot(ee[0, 0] * 100, ee[0, 1] * 100, "s", color="tab:blue", ms=6)
        if rec.get("goal_ee") is not None:
            g = rec["goal_ee"]
            ax.plot(g[0] * 100, g[1] * 100, "*", color="tab:blue", ms=14, mec="black", label="EE goal")
        if rec.get("block_trajectory"):
            bl = np.asarray(rec["block_trajectory"])
            ax.plot(bl[:, 0] * 100, bl[:, 1] * 100, "-o", ms=2, color="tab:orange", label="block")
            ax.plot(bl[0, 0] * 100, bl[0, 1] * 100, "s", color="tab:orange", ms=6)
        if rec.get("goal_block") is not None:
            g = rec["goal_block"]
            ax.plot(g[0] * 100, g[1] * 100, "*", color="tab:orange", ms=14, mec="black", label="block goal")
            thr = rec.get("success_threshold")
            if thr:
                ax.add_patch(plt.Circle((g[0] * 100, g[1] * 100), thr * 100, fill=False, ls="--", color="k"))
        elif rec.get("goal_ee") is not None and rec.get("success_threshold"):
            g = rec["goal_ee"]
            ax.add_patch(
                plt.Circle((g[0] * 100, g[1] * 100), rec["success_threshold"] * 100, fill=False, ls="--")
            )
        ok = "success" if rec["success"] else "failure"
        ax.set_title(f"ep {rec['episode']} ({ok}), final {100 * rec['final_distance']:.1f} cm", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        ax.set_xlabel("x (cm)", fontsize=8)
        ax.set_ylabel("y (cm)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="best")
    fig.suptitle(
        f"{records[0]['task']} / {records[0]['method']}: top-down paths (square = start, star = goal)"
    )
    return _save(fig, out)


# --------------------------------------------------------------------------------------------- landscape
def plot_landscape(npz: str | Path, out: str | Path) -> Path:
    """Energy over a 2-D grid of actions (dx, dy) around the chosen action, with the true best action."""
    data = np.load(npz)
    for key in ("grid_x", "grid_y", "energy"):
        if key not in data:
            raise ValueError(f"{npz}: missing array {key!r} (expected a plan 'landscape_*.npz' file)")
    gx, gy, e = data["grid_x"], data["grid_y"], data["energy"]
    if e.shape != (len(gy), len(gx)):
        raise ValueError(f"{npz}: energy shape {e.shape} does not match grid ({len(gy)}, {len(gx)})")
    panels = [("world-model energy", e)]
    if "true_energy" in data:
        panels.append(("simulator (rendered) energy", data["true_energy"]))
    if "distance" in data:
        panels.append(("true distance to goal after the action (cm)", 100 * data["distance"]))
    plt = _plt()
    # constrained layout keeps each colorbar clear of the next panel's axis label
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False, layout="constrained"
    )
    for ax, (title, values) in zip(axes[0], panels):
        im = ax.imshow(
            values,
            origin="lower",
            extent=[gx[0] * 100, gx[-1] * 100, gy[0] * 100, gy[-1] * 100],
            cmap="viridis",
            aspect="auto",
        )
        fig.colorbar(im, ax=ax, fraction=0.046)
        iy, ix = np.unravel_index(np.argmin(values), values.shape)
        ax.plot(gx[ix] * 100, gy[iy] * 100, "wx", ms=10, mew=2, label="grid minimum")
        if "chosen" in data:
            ch = data["chosen"]
            ax.plot(
                ch[0] * 100, ch[1] * 100, "o", mfc="none", mec="red", ms=11, mew=2, label="planner's action"
            )
        if "optimal" in data:
            op = data["optimal"]
            ax.plot(op[0] * 100, op[1] * 100, "*", color="white", mec="black", ms=13, label="ideal action")
        ax.set_xlabel("action dx (cm)")
        ax.set_ylabel("action dy (cm)")
        ax.set_title(title, fontsize=9)
    axes[0][0].legend(fontsize=7, loc="lower left")
    title = str(data["title"]) if "title" in data else Path(npz).stem
    fig.suptitle(title, fontsize=9)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------- curves
def read_training_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a training CSV (must have a ``step`` column); non-numeric cells become NaN."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise ValueError(
                f"{path}: training CSV needs a header with a 'step' column, got {reader.fieldnames}"
            )
        cols: dict[str, list[float]] = {k: [] for k in reader.fieldnames}
        for row in reader:
            for k in cols:
                try:
                    cols[k].append(float(row[k]))
                except (TypeError, ValueError):
                    cols[k].append(float("nan"))
    out = {k: np.asarray(v) for k, v in cols.items()}
    return {k: v for k, v in out.items() if v.size and not np.all(np.isnan(v))}


def plot_curves(csv_paths: Sequence[str | Path], out: str | Path) -> Path:
    """Training curves: one panel per CSV, every numeric column except step/time/lr against step."""
    plt = _plt()
    fig, axes = plt.subplots(
        1, len(csv_paths), figsize=(5 * len(csv_paths), 3.5), squeeze=False, layout="constrained"
    )
    for ax, path in zip(axes[0], csv_paths):
        cols = read_training_csv(path)
        step = cols.pop("step")
        skip = {"time", "time_s", "elapsed_s", "lr", "epoch", "wall_s"}
        ys = {k: v for k, v in cols.items() if k not in skip}
        if not ys:
            raise ValueError(f"{path}: no numeric column to plot besides {sorted(cols)}")
        for name, values in ys.items():
            ok = ~np.isnan(values)
            ax.plot(step[ok], values[ok], lw=1.2, label=name, marker="o" if ok.sum() < 30 else None, ms=3)
        positive = all(np.nanmin(v) > 0 for v in ys.values())
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(Path(path).name, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("training curves")
    return _save(fig, out)


# --------------------------------------------------------------------------------------------- run dir
def plot_run(
    run_dir: str | Path, out_dir: str | Path | None = None, max_filmstrips: int = 3, success: bool = True
) -> list[Path]:
    """Every figure one planning run directory supports; returns the written PNG paths.

    ``success=False`` skips the single-run success bar (the demo draws one chart for all runs).
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    records = load_episode_records(run_dir)
    if not records:
        raise ValueError(f"plot run: no finished episodes in {run_dir}")
    written = [plot_success([run_dir], out_dir / "success.png")] if success else []
    written.append(plot_energy(run_dir, out_dir / "energy.png"))
    if any(r.get("ee_trajectory") for r in records):
        written.append(plot_trajectories(run_dir, out_dir / "trajectories.png"))
    for npz in sorted((run_dir / "episodes").glob("ep_*_frames.npz"))[:max_filmstrips]:
        written.append(plot_filmstrip(npz, out_dir / f"filmstrip_{npz.stem.replace('_frames', '')}.png"))
    for npz in sorted(run_dir.glob("landscape_*.npz")):
        written.append(plot_landscape(npz, out_dir / f"{npz.stem}.png"))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = sub.add_parser("run", help="every figure for one `vjepa2-ac plan` output directory")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/plots)")
    p = sub.add_parser("success", help="success-rate bars per task and method")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True)
    p = sub.add_parser("filmstrip", help="executed frames next to the goal image")
    p.add_argument("frames_npz")
    p.add_argument("--out", required=True)
    p.add_argument("--max-frames", type=int, default=12)
    p = sub.add_parser("energy", help="energy and goal-distance traces")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True)
    p = sub.add_parser("trajectories", help="end-effector / block paths against the goal")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True)
    p = sub.add_parser("landscape", help="energy landscape around the chosen action")
    p.add_argument("npz")
    p.add_argument("--out", required=True)
    p = sub.add_parser("curves", help="training curves from training CSV logs")
    p.add_argument("csv", nargs="+")
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    for attr in ("run_dir", "frames_npz", "npz"):
        path = getattr(args, attr, None)
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{attr.replace('_', ' ')} {path!r} does not exist")
    for path in getattr(args, "csv", None) or getattr(args, "run_dirs", None) or []:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path!r} does not exist")
    if args.what == "run":
        written = plot_run(args.run_dir, args.out)
    elif args.what == "success":
        written = [plot_success(args.run_dirs, args.out)]
    elif args.what == "filmstrip":
        written = [plot_filmstrip(args.frames_npz, args.out, args.max_frames)]
    elif args.what == "energy":
        written = [plot_energy(args.run_dir, args.out)]
    elif args.what == "trajectories":
        written = [plot_trajectories(args.run_dir, args.out)]
    elif args.what == "landscape":
        written = [plot_landscape(args.npz, args.out)]
    else:
        written = [plot_curves(args.csv, args.out)]
    print(json.dumps({"written": [str(p) for p in written]}, indent=1))
    return 0
