"""Figures of training runs: loss curves from ``metrics.csv`` and the throughput bar chart of the bench."""

from __future__ import annotations

import csv
from pathlib import Path


def read_metrics(run_dir: str | Path) -> dict[str, list[float]]:
    """Columns of a run's ``metrics.csv`` as float lists (empty cells skipped per column)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for k in rows[0] if rows else []:
        cols[k] = [float(r[k]) for r in rows if r.get(k) not in (None, "")]
    return cols


def _smooth(v: list[float], k: int) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(v):
        acc += x
        if i >= k:
            acc -= v[i - k]
        out.append(acc / min(i + 1, k))
    return out


def plot_runs(panels: list[tuple[str, str | Path, list[str]]], out_png: str | Path, smooth: int = 10) -> None:
    """One panel per ``(title, run_dir, metric columns)``: raw values faint, a running mean on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, run_dir, keys) in zip(axes[0], panels):
        m = read_metrics(run_dir)
        steps = m["step"]
        for k in keys:
            (line,) = ax.plot(steps[: len(m[k])], m[k], alpha=0.25, lw=0.8)
            ax.plot(steps[: len(m[k])], _smooth(m[k], smooth), color=line.get_color(), lw=1.6, label=k)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def plot_throughput(rows: list[dict], out_png: str | Path, title: str) -> None:
    """Bar chart of clips/s per bench variant, annotated with the fraction of matmul throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    names = [f"{r['name']}\n[{r['dtype']}]" for r in rows]
    vals = [r["clips_per_s"] for r in rows]
    bars = ax.barh(names, vals, color="#4C72B0")
    for b, r in zip(bars, rows):
        ax.text(
            b.get_width(),
            b.get_y() + b.get_height() / 2,
            f" {r['clips_per_s']:.1f} clips/s, {r['fraction']:.1%} of matmul",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("clips / s")
    ax.set_xlim(0, max(vals) * 1.8)
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
