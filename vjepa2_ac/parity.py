"""Prints the max-abs errors of this implementation against the official parity fixtures.

Run ``python -m vjepa2_ac.parity [--fixtures DIR]``. ``DIR`` defaults to
``tests/fixtures/official_parity`` of the repository (or ``$VJEPA2_AC_PARITY_FIXTURES``).
Each row compares one stored output of Meta's official code with ours, in float32 and under
bf16 autocast; the exit code is 1 if a float32 error exceeds ``--atol`` (default 1e-4).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vjepa2_ac.encoder import build_encoder
from vjepa2_ac.predictor import build_predictor
from vjepa2_ac.world_model import WorldModel


def default_fixture_dir() -> Path:
    """``$VJEPA2_AC_PARITY_FIXTURES``, else the repository's ``tests/fixtures/official_parity``."""
    env = os.environ.get("VJEPA2_AC_PARITY_FIXTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_parity"


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@torch.no_grad()
def parity_errors(fixture_dir: Path) -> list[tuple[str, float, float]]:
    """``(name, fp32 max-abs error, bf16-autocast max-abs error)`` for every fixture output."""
    for name in ("encoder_tiny.pt", "ac_predictor_tiny.pt"):
        if not (fixture_dir / name).is_file():
            raise FileNotFoundError(
                f"parity fixture {fixture_dir / name} not found "
                "(pass --fixtures DIR or set VJEPA2_AC_PARITY_FIXTURES)"
            )
    rows = []
    fx = torch.load(fixture_dir / "encoder_tiny.pt", weights_only=True)
    enc = build_encoder(**fx["kwargs"]).eval()
    enc.load_state_dict(fx["state_dict"], strict=True)
    i, o = fx["inputs"], fx["outputs"]
    enc_calls = {
        "encoder tokens": (lambda: enc(i["video"]), o["tokens"]),
        "encoder tokens_masked": (lambda: enc(i["video"], masks=i["masks"]), o["tokens_masked"]),
        "encoder tokens_dup_frame0": (
            lambda: enc(i["video"][:, :, :1].repeat(1, 1, 2, 1, 1)),
            o["tokens_dup_frame0"],
        ),
    }
    fx = torch.load(fixture_dir / "ac_predictor_tiny.pt", weights_only=True)
    pred = build_predictor(**fx["kwargs"]).eval()
    pred.load_state_dict(fx["state_dict"], strict=True)
    pi, po = fx["inputs"], fx["outputs"]
    hw, d = pred.tokens_per_frame, pred.embed_dim
    wm = WorldModel(
        build_encoder(
            img_size=pred.img_size,
            patch_size=pred.patch_size,
            num_frames=2,
            embed_dim=d,
            depth=1,
            num_heads=pred.num_heads,
            use_rope=True,
        ),
        pred,
        alignment="duplicate",
    ).eval()
    z = pi["x"].view(pi["x"].shape[0], -1, hw, d)
    ref_roll = po["rollout_reps"].view(z.shape[0], -1, hw, d)[:, 1:]
    calls = dict(enc_calls)
    calls["predictor out"] = (lambda: pred(pi["x"], pi["actions"], pi["states"]), po["out"])
    for k in (1, 2, 3):
        calls[f"predictor out_T{k}"] = (
            lambda k=k: pred(pi["x"][:, : k * hw], pi["actions"][:, :k], pi["states"][:, :k]),
            po[f"out_T{k}"],
        )
    calls["predictor out, KV-cache step by step"] = (
        lambda: torch.cat(_stepwise(pred, pi, hw), dim=1),
        po["out"],
    )
    calls["predict (teacher forcing, normed)"] = (
        lambda: wm.predict(z, pi["actions"], pi["states"]),
        F.layer_norm(po["out"], (d,)).view_as(z),
    )
    for uc in (True, False):
        tag = "cached" if uc else "uncached"
        calls[f"rollout_reps ({tag})"] = (
            lambda uc=uc: wm.rollout(z[:, :1], pi["states"][:, :1], pi["rollout_actions"], use_cache=uc)[0],
            ref_roll,
        )
        calls[f"rollout_poses ({tag})"] = (
            lambda uc=uc: wm.rollout(z[:, :1], pi["states"][:, :1], pi["rollout_actions"], use_cache=uc)[1],
            po["rollout_poses"],
        )
    for name, (fn, ref) in calls.items():
        e32 = _err(fn(), ref)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            e16 = _err(fn(), ref)
        rows.append((name, e32, e16))
    return rows


def _stepwise(pred, inputs, hw):
    cache, outs = None, []
    for t in range(inputs["actions"].shape[1]):
        y, cache = pred.forward_steps(
            inputs["x"][:, t * hw : (t + 1) * hw],
            inputs["actions"][:, t : t + 1],
            inputs["states"][:, t : t + 1],
            cache=cache,
        )
        outs.append(y)
    return outs


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa2_ac.parity``: prints the table, exit 1 if a float32 error exceeds ``--atol``."""
    parser = argparse.ArgumentParser(prog="python -m vjepa2_ac.parity", description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=None, help="official_parity fixture directory")
    parser.add_argument("--atol", type=float, default=1e-4, help="float32 tolerance (max abs)")
    args = parser.parse_args(argv)
    rows = parity_errors(args.fixtures or default_fixture_dir())
    width = max(len(r[0]) for r in rows)
    print(f"{'output':<{width}} | {'fp32 max|err|':>13} | {'bf16 max|err|':>13}")
    for name, e32, e16 in rows:
        print(f"{name:<{width}} | {e32:>13.2e} | {e16:>13.2e}")
    bad = [r[0] for r in rows if not r[1] <= args.atol]
    if bad:
        print(f"FAILED (> {args.atol}): {', '.join(bad)}")
        return 1
    print(f"all {len(rows)} float32 outputs within {args.atol}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
