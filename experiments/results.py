"""Episode records, atomic files and aggregate tables (with confidence intervals) for planning runs.

A planning run directory holds one ``episodes/ep_<idx>.json`` per finished episode (written atomically,
so an interrupted run keeps every finished episode) plus the aggregate files written from them:
``episodes.csv``, ``summary.json``, ``summary.csv`` and ``summary.md``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

# Re-exported: planning and plotting write their files through these.
from vjepa2_ac.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: F401

# Fields every per-episode JSON must carry; the smoke tests and `plot` rely on them.
EPISODE_FIELDS: tuple[str, ...] = (
    "task",
    "method",
    "episode",
    "seed",
    "success",
    "ever_success",
    "initial_distance",
    "final_distance",
    "steps",
    "planning_time_per_step_s",
    "energy_trace",
    "distance_trace",
)

# Columns of episodes.csv (scalars only; traces stay in the JSON files).
EPISODE_CSV_COLUMNS: tuple[str, ...] = (
    "task",
    "method",
    "episode",
    "seed",
    "success",
    "ever_success",
    "initial_distance",
    "final_distance",
    "min_distance",
    "steps",
    "planning_time_per_step_s",
    "final_energy",
)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % for ``z=1.96``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 % and 100 %,
    which is exactly where planning success rates live.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """Mean and normal-approximation 95 % interval ``(mean, lo, hi)`` of a sample."""
    vals = [float(v) for v in values]
    if not vals:
        return (float("nan"), float("nan"), float("nan"))
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return (m, m, m)
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    half = z * math.sqrt(var / len(vals))
    return (m, m - half, m + half)


def validate_episode_record(rec: dict, source: str = "episode record") -> dict:
    """Check that a per-episode dict has every field of ``EPISODE_FIELDS`` with sane values."""
    missing = [k for k in EPISODE_FIELDS if k not in rec]
    if missing:
        raise ValueError(f"{source}: missing fields {missing}")
    if not isinstance(rec["success"], bool):
        raise ValueError(f"{source}: field 'success' must be a bool, got {rec['success']!r}")
    if not isinstance(rec["energy_trace"], list) or not isinstance(rec["distance_trace"], list):
        raise ValueError(f"{source}: 'energy_trace' and 'distance_trace' must be lists")
    return rec


EPISODE_FILE = re.compile(r"ep_(\d+)\.json")


def episode_path(run_dir: str | os.PathLike, index: int) -> Path:
    """Path of the JSON file of episode ``index`` inside ``run_dir``."""
    return Path(run_dir) / "episodes" / f"ep_{index:04d}.json"


def load_episode_records(
    run_dir: str | os.PathLike, episodes: int | None = None, run: dict | None = None
) -> list[dict]:
    """The finished episode records of a run directory, sorted by episode index.

    Every ``episodes/ep_*.json`` must be ``ep_<index>.json`` holding a valid record of episode
    ``<index>`` (and, given ``run`` settings, of that run's task and method); anything else is a
    :class:`~vjepa2_ac.datasets.errors.DataError` naming the file, never counted or skipped.
    ``episodes=N`` keeps episodes ``0..N-1`` (a folder may hold more from a longer run).
    """
    from vjepa2_ac.datasets.errors import DataError

    ep_dir = Path(run_dir) / "episodes"
    if not ep_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no 'episodes/' folder (is this a `vjepa2-ac plan` output dir?)")
    records = []
    for p in sorted(ep_dir.glob("ep_*.json")):
        m = EPISODE_FILE.fullmatch(p.name)
        if m is None:
            raise DataError(p, "stray file in episodes/: expected ep_<index>.json (e.g. ep_0003.json)")
        index = int(m.group(1))
        if episodes is not None and index >= episodes:
            continue
        try:
            rec = validate_episode_record(json.loads(p.read_text(encoding="utf-8")), source=str(p))
        except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
            problem = str(e).removeprefix(f"{p}: ")
            raise DataError(p, f"not a valid episode record ({problem})") from None
        if rec["episode"] != index:
            raise DataError(p, f"holds episode {rec['episode']!r}, its name says {index}")
        for key in ("task", "method"):
            if run is not None and key in run and rec[key] != run[key]:
                raise DataError(p, f"belongs to another run ({key} {rec[key]!r}, this run's is {run[key]!r})")
        records.append(rec)
    records.sort(key=lambda r: (r["method"], r["episode"]))
    return records


def _episode_row(rec: dict) -> dict:
    dist = rec.get("distance_trace") or [rec["final_distance"]]
    energy = rec.get("energy_trace") or []
    return {
        "task": rec["task"],
        "method": rec["method"],
        "episode": rec["episode"],
        "seed": rec["seed"],
        "success": int(rec["success"]),
        "ever_success": int(rec["ever_success"]),
        "initial_distance": f"{rec['initial_distance']:.5f}",
        "final_distance": f"{rec['final_distance']:.5f}",
        "min_distance": f"{min(dist):.5f}",
        "steps": rec["steps"],
        "planning_time_per_step_s": f"{rec['planning_time_per_step_s']:.5f}",
        "final_energy": f"{energy[-1]:.6f}" if energy else "",
    }


def aggregate(records: Iterable[dict]) -> list[dict]:
    """Group records by (task, method) and compute success rates with Wilson intervals.

    Returns one dict per group: ``task, method, n, successes, success_rate, success_ci_lo/hi,
    ever_success_rate, final_distance_mean/ci_lo/ci_hi, final_distance_median, initial_distance_median,
    planning_time_per_step_s`` (mean over episodes), ``steps_mean``.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    rows = []
    for (task, method), recs in sorted(groups.items()):
        n = len(recs)
        k = sum(bool(r["success"]) for r in recs)
        ever = sum(bool(r["ever_success"]) for r in recs)
        lo, hi = wilson_interval(k, n)
        fd = [r["final_distance"] for r in recs]
        fd_m, fd_lo, fd_hi = mean_ci(fd)
        pt = mean_ci([r["planning_time_per_step_s"] for r in recs])[0]
        rows.append(
            {
                "task": task,
                "method": method,
                "n": n,
                "successes": k,
                "success_rate": k / n,
                "success_ci_lo": lo,
                "success_ci_hi": hi,
                "ever_success_rate": ever / n,
                "final_distance_mean": fd_m,
                "final_distance_ci_lo": fd_lo,
                "final_distance_ci_hi": fd_hi,
                "final_distance_median": _median(fd),
                "initial_distance_median": _median([r["initial_distance"] for r in recs]),
                "planning_time_per_step_s": pt,
                "steps_mean": sum(r["steps"] for r in recs) / n,
            }
        )
    return rows


def _median(vals: Sequence[float]) -> float:
    s = sorted(float(v) for v in vals)
    if not s:
        return float("nan")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


def markdown_table(rows: Sequence[dict]) -> str:
    """The aggregate rows as a markdown table (success % with 95 % Wilson interval, distances in cm)."""
    lines = [
        "| task | method | n | success (95% CI) | ever within threshold | final dist. median (cm) "
        "| start dist. median (cm) | planning time / step (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} | {r['n']} | {100 * r['success_rate']:.0f}% "
            f"[{100 * r['success_ci_lo']:.0f}, {100 * r['success_ci_hi']:.0f}] "
            f"| {100 * r['ever_success_rate']:.0f}% | {100 * r['final_distance_median']:.1f} "
            f"| {100 * r['initial_distance_median']:.1f} | {r['planning_time_per_step_s']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(
    run_dir: str | os.PathLike, extra: dict | None = None, episodes: int | None = None
) -> list[dict]:
    """(Re)write ``episodes.csv``, ``summary.json``, ``summary.csv`` and ``summary.md`` of a run dir.

    Counts episodes ``0..episodes-1`` (``episodes``, else ``extra["settings"]["episodes"]``, else all);
    ``extra["settings"]``' task and method must match every record's."""
    run_dir = Path(run_dir)
    settings = (extra or {}).get("settings") or {}
    if episodes is None:
        episodes = settings.get("episodes")
    records = load_episode_records(run_dir, episodes=episodes, run=settings)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EPISODE_CSV_COLUMNS))
    w.writeheader()
    for r in records:
        w.writerow(_episode_row(r))
    atomic_write_text(run_dir / "episodes.csv", buf.getvalue())
    rows = aggregate(records)
    atomic_write_json(run_dir / "summary.json", {"rows": rows, **(extra or {})})
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(r)
    atomic_write_text(run_dir / "summary.csv", buf.getvalue())
    atomic_write_text(run_dir / "summary.md", markdown_table(rows))
    return rows
