"""``vjepa2-ac bench video``: DROID clip loading throughput (clips/s) of the raw, RLDS and LeRobot readers.

Writes synthetic DROID-like episodes (15 Hz, H.264, keyframe every 15 frames) at 180×320 (RLDS size)
and 720×1280 (raw DROID HD), converts them to RLDS (JPEG 95) and to LeRobot v3 (AV1, keyframe every 2
frames, all episodes in one MP4, as LeRobot writes), then loads clips through :class:`RawDroidDataset`,
:class:`RLDSDroidDataset` and :class:`LeRobotClipDataset` (8 frames at 4 fps, DROID crop, resized to
256, ImageNet-normalised) with 0 and 2 DataLoader workers. Baseline in the same run: a naive loader
that decodes the raw video from its first frame up to the clip's last frame (no seek), as a plain
"iterate the container" PyAV reader does.

The default run takes about 1-2 minutes on 2 idle cores. Wall-clock clips/s depend on the machine's
load; the CPU time per clip (without workers) is printed too, as it depends much less on other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolutions", default="180x320,720x1280", help="comma-separated HxW list")
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per resolution")
    parser.add_argument("--episode-seconds", type=float, default=12.0, help="episode length at 15 Hz")
    parser.add_argument(
        "--clips", type=int, default=16, help="clips timed per configuration (after 1 warm-up)"
    )
    parser.add_argument("--image-size", type=int, default=256, help="model input size")
    parser.add_argument("--dir", help="where to write/reuse the synthetic episodes (default: a temp dir)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the naive decode-from-start baseline"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--formats", default="raw,rlds,lerobot", help="comma-separated readers: raw, rlds, lerobot"
    )


def _frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """Smooth moving texture, a moving blob and fixed sensor noise: compresses like camera video, not like
    pure noise or flat colour. Computed at 1/4 resolution and upsampled, so 720p episodes are quick."""
    rng = np.random.default_rng(seed)
    hs, ws = -(-h // 4), -(-w // 4)
    yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float32)
    noise = rng.integers(-4, 5, (h, w + t, 1), dtype=np.int16)  # sliding window = moving sensor noise
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        base = 128 + 60 * np.sin(xx / (ws / 7) + i * 0.15) * np.cos(yy / (hs / 5) - i * 0.1)
        cx, cy = ws * (0.3 + 0.4 * np.sin(i / 25)), hs * (0.5 + 0.3 * np.cos(i / 19))
        blob = 90 * np.exp(-(((xx - cx) / (ws / 10)) ** 2 + ((yy - cy) / (hs / 8)) ** 2))
        small = np.clip(np.stack([base + blob, base * 0.8 + 30, 255 - base], -1), 4, 251).astype(np.int16)
        big = small.repeat(4, 0).repeat(4, 1)[:h, :w]
        big += noise[:, i : i + w]
        out[i] = big
    return out


def _make_episodes(root: Path, h: int, w: int, n: int, seconds: float) -> Path:
    from vjepa2_ac.datasets.writer import write_raw_episode

    res_dir = root / f"{h}x{w}"
    t = int(round(seconds * 15))
    for k in range(n):
        ep = res_dir / f"ep{k:03d}"
        if ep.exists():
            continue
        rng = np.random.default_rng(k)
        cart = np.cumsum(rng.normal(0, 0.005, (t, 6)), 0) + np.array([0.5, 0, 0.3, 3.0, 0.0, -1.5])
        write_raw_episode(
            ep, {"cam": _frames(t, h, w, k)}, cart, np.linspace(0, 1, t), camera_roles={"left": "cam"}
        )
    return res_dir


def _time_loader(ds, workers: int, clips: int) -> tuple[float, float | None]:
    """``(clips per wall second, CPU seconds per clip or None)``; CPU time (all threads of this
    process) is only meaningful without workers, and is far less sensitive to a busy machine."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    g = torch.Generator().manual_seed(0)
    # Warm-up: worker start-up, first opens, and the clips the workers prefetch meanwhile (2 each);
    # timing from a full prefetch queue would count those clips as free.
    warm = 1 + 2 * workers
    sampler = RandomSampler(ds, replacement=True, num_samples=clips + warm + 2 * workers, generator=g)
    loader = DataLoader(ds, batch_size=1, sampler=sampler, num_workers=workers, persistent_workers=False)
    it = iter(loader)
    for _ in range(warm):
        next(it)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(clips):
        next(it)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    del it
    return clips / elapsed, (cpu / clips if workers == 0 else None)


def _naive_rate(ds, clips: int) -> tuple[float, float]:
    import av
    import torch

    torch.manual_seed(0)
    plans = []
    for i in range(clips):
        s = ds.get_clip(i % len(ds))
        plans.append((ds.episodes[i % len(ds)].video_path()[0], s["frame_indices"].tolist()))
    start, cpu = time.perf_counter(), time.process_time()
    for path, idx in plans:
        wanted, last, got = set(idx), max(idx), []
        with av.open(str(path)) as c:
            c.streams.video[0].thread_count = 1
            for k, frame in enumerate(c.decode(video=0)):
                if k in wanted:
                    got.append(frame.to_ndarray(format="rgb24"))
                if k >= last:
                    break
        ds.transform(np.stack(got))
    return clips / (time.perf_counter() - start), (time.process_time() - cpu) / clips


def _format_dataset(fmt: str, res_dir: Path, image_size: int):
    """The clip dataset of ``fmt`` over the raw episodes in ``res_dir`` (converted once, next to it)."""
    from vjepa2_ac.datasets.dataset import RawDroidDataset, RLDSDroidDataset

    if fmt == "raw":
        return RawDroidDataset(res_dir, image_size=image_size), "RawDroidDataset (seek)"
    out = res_dir.parent / f"{res_dir.name}-{fmt}"
    if fmt == "rlds":
        from vjepa2_ac.datasets.rlds import raw_to_rlds

        if not out.exists():
            raw_to_rlds(res_dir, out)
        return RLDSDroidDataset(out, image_size=image_size), "RLDSDroidDataset (JPEG)"
    from vjepa2_ac.datasets.lerobot import LeRobotClipDataset
    from vjepa2_ac.datasets.lerobot_convert import raw_to_lerobot

    if not out.exists():
        raw_to_lerobot(res_dir, out)
    return LeRobotClipDataset(out, image_size=image_size), "LeRobotClipDataset (AV1)"


def run(args: argparse.Namespace) -> int:
    import torch

    from vjepa2_ac.datasets.dataset import RawDroidDataset

    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - {"raw", "rlds", "lerobot"})
    if unknown:
        print(f"vjepa2-ac bench video: --formats: unknown reader(s) {unknown}; expected raw, rlds, lerobot")
        return 2
    resolutions = [tuple(int(v) for v in r.lower().split("x")) for r in args.resolutions.split(",") if r]
    workers = [int(w) for w in args.workers.split(",") if w]
    tmp = None
    if args.dir:
        root = Path(args.dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vjepa2ac-bench-video-")
        root = Path(tmp.name)
    rows = []
    try:
        for h, w in resolutions:
            t0 = time.perf_counter()
            res_dir = _make_episodes(root, h, w, args.episodes, args.episode_seconds)
            print(
                f"{h}x{w}: {args.episodes} episodes of {args.episode_seconds:g} s ready "
                f"({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
            ds = RawDroidDataset(res_dir, image_size=args.image_size)
            if not args.no_baseline:
                rate, cpu = _naive_rate(ds, max(4, args.clips // 4))
                rows.append(
                    {
                        "resolution": f"{h}x{w}",
                        "loader": "naive decode-from-start",
                        "workers": 0,
                        "clips_per_s": rate,
                        "cpu_s_per_clip": cpu,
                    }
                )
                print(f"  naive decode-from-start, 0 workers: {rate:.2f} clips/s", flush=True)
            for fmt in formats:
                fds, loader = _format_dataset(fmt, res_dir, args.image_size)
                for nw in workers:
                    rate, cpu = _time_loader(fds, nw, args.clips)
                    rows.append(
                        {
                            "resolution": f"{h}x{w}",
                            "loader": loader,
                            "workers": nw,
                            "clips_per_s": rate,
                            "cpu_s_per_clip": cpu,
                        }
                    )
                    print(f"  {loader}, {nw} workers: {rate:.2f} clips/s", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    clip = f"8 frames @ 4 fps -> [3, 8, {args.image_size}, {args.image_size}]"
    print()
    load = os.getloadavg()[0]
    print(
        f"DROID clip loading ({clip}; torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} during the run)"
    )
    print("| resolution | loader | workers | clips/s (wall) | CPU ms per clip |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        cpu = "-" if r["cpu_s_per_clip"] is None else f"{1000 * r['cpu_s_per_clip']:.0f}"
        print(f"| {r['resolution']} | {r['loader']} | {r['workers']} | {r['clips_per_s']:.2f} | {cpu} |")
    if args.json:
        out = {
            "clip": clip,
            "episodes": args.episodes,
            "episode_seconds": args.episode_seconds,
            "clips": args.clips,
            "load_average": load,
            "cpus": os.cpu_count(),
            "rows": rows,
        }
        tmp_json = f"{args.json}.tmp-{os.getpid()}"
        with open(tmp_json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        os.replace(tmp_json, args.json)
    return 0
