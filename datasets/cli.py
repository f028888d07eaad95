"""``vjepa2-ac data``: dataset tools.

``vjepa2-ac data check DIR [--json FILE] [--fast]`` validates every episode of a raw DROID, RLDS or
LeRobot v3 directory (every RLDS record's CRC, every video frame decoded; ``--fast`` decodes the first
and last frame only), prints episode count, total duration, cameras and each bad episode with its
problem, and exits 1 when any episode is bad (4, a DataError, when DIR is not a dataset at all).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = sub.add_parser("check", help="validate every episode of a raw DROID, RLDS or LeRobot directory")
    p.add_argument(
        "path", metavar="DIR", help="raw DROID tree, episode-list file, RLDS or LeRobot dataset directory"
    )
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    p.add_argument("--frames", type=int, default=8, help="clip frames an episode must hold (default 8)")
    p.add_argument(
        "--fps", type=float, default=4.0, help="clip fps (default 4); with --frames sets the minimum"
    )
    p.add_argument("--no-clip-check", action="store_true", help="do not require one clip's duration")
    p.add_argument(
        "--frame-tolerance", type=int, default=1, help="allowed video vs h5 frame-count difference"
    )
    p.add_argument("--split", default="train", help="RLDS split (default train)")
    p.add_argument(
        "--fast", action="store_true", help="decode only each video's first and last frame (default: all)"
    )


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.datasets.check import check_dataset

    if args.data_command != "check":  # pragma: no cover - argparse restricts the choices
        raise ValueError(f"unknown data command {args.data_command!r}")
    if args.frames < 1 or not args.fps > 0:
        print("vjepa2-ac data check: --frames must be >= 1 and --fps > 0", file=sys.stderr)
        return 2
    clip_s = None if args.no_clip_check else args.frames / args.fps
    report = check_dataset(
        args.path,
        clip_seconds=clip_s,
        frame_count_tolerance=args.frame_tolerance,
        split=args.split,
        fast=args.fast,
    )
    _print_report(report)
    if args.json:
        from vjepa2_ac.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 1 if report["bad"] else 0


def _print_report(r: dict) -> None:
    hours = r["total_duration_s"] / 3600
    print(f"{r['format']} dataset {r['path']}")
    print(f"  episodes: {r['episodes']} ({r['good']} good, {len(r['bad'])} bad)")
    print(f"  total duration (good episodes): {r['total_duration_s']:.1f} s ({hours:.2f} h)")
    cams = ", ".join(f"{k} x{v}" for k, v in sorted(r["cameras"].items())) or "-"
    print(f"  cameras: {cams}")
    sizes = ", ".join(f"{k} x{v}" for k, v in sorted(r["frame_sizes"].items())) or "-"
    print(f"  frame sizes: {sizes}")
    if r["warnings"]:
        print(f"  warnings: {len(r['warnings'])}")
        for w in r["warnings"][:20]:
            print(f"    {w}")
    for b in r["bad"]:
        print(f"  BAD {b['episode']}: {b['problem']}")
