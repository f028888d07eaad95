"""Figures of the simulated tasks: start image, the arm mid-way, the final image and the goal image.

``python -m vjepa2_ac.envs.figures --out docs`` writes ``envs_reach.png`` and ``envs_push.png``: one
clean-expert episode per task (fixed seed), rendered at a large size (top row) and at the 64 px the world
model is trained on (bottom row).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def expert_episode_frames(task: str, seed: int, image_size: int) -> dict:
    """Run the clean expert on ``task``/``seed``; returns frames, goal image, success and distances."""
    import vjepa2_ac.envs  # noqa: F401
    from vjepa2_ac.envs.policies import make_policy
    from vjepa2_ac.envs.tasks import MAX_EPISODE_STEPS, TASKS

    env = TASKS[task](image_size=image_size)
    policy = make_policy(task, "expert", noise=0.0)
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    frames, success_step = [obs["image"]], None
    for t in range(MAX_EPISODE_STEPS[task]):
        obs, _, _, _, info = env.step(policy.act(obs, info))
        frames.append(obs["image"])
        if info["success"] and success_step is None:
            success_step = t + 1
        if success_step is not None and t + 1 >= success_step + 3:
            break
    out = {
        "frames": frames,
        "goal": env.goal_image(),
        "success": bool(info["success"]),
        "success_step": success_step,
        "distance": float(info["distance"]),
    }
    env.close()
    return out


def task_figure(
    task: str, path: str | os.PathLike, seed: int = 0, sizes: tuple[int, int] = (256, 64)
) -> Path:
    """Write the figure of ``task`` to ``path`` (PNG, atomically) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [expert_episode_frames(task, seed, s) for s in sizes]
    fig, axes = plt.subplots(len(sizes), 4, figsize=(12, 3.2 * len(sizes)))
    for r, (ep, size) in enumerate(zip(rows, sizes)):
        n = len(ep["frames"])
        mid = (ep["success_step"] or n - 1) // 2
        panels = [
            (ep["frames"][0], "start (t=0)"),
            (ep["frames"][mid], f"mid-way (t={mid})"),
            (ep["frames"][-1], f"final (t={n - 1}, {'success' if ep['success'] else 'failure'})"),
            (ep["goal"], "goal image"),
        ]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_title(f"{title}, {size}px", fontsize=9)
            ax.axis("off")
    what = "TCP within 4 cm of the goal" if task == "reach" else "block within 5 cm of the goal"
    fig.suptitle(f"{task}: scripted expert, seed {seed} (success = {what})", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vjepa2_ac.envs.figures", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default="docs", help="output directory (default: docs)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed")
    args = parser.parse_args(argv)
    for task in ("reach", "push"):
        print(task_figure(task, Path(args.out) / f"envs_{task}.png", seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
