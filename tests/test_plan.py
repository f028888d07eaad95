"""Smoke and bad-input tests of `vjepa2-ac plan` (tiny untrained WorldModel, a few MPC steps)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from vjepa2_ac.experiments.results import EPISODE_FIELDS, wilson_interval
from vjepa2_ac.world_model import WorldModel

SIGNALS = ["frames", "ee_state", "actions"]


def tiny_world_model(alignment: str = "subsample", size: int = 32, **metadata) -> WorldModel:
    """An untrained Strategy A model: 32 px, patch 16 (4 tokens), predictor for 4 token steps."""
    torch.manual_seed(0)
    enc = dict(img_size=size, patch_size=16, num_frames=2, tubelet_size=2, embed_dim=32, depth=1, num_heads=4)
    pred = dict(img_size=size, patch_size=16, num_frames=8, tubelet_size=2, embed_dim=32)
    pred.update(predictor_embed_dim=32, depth=1, num_heads=4, use_rope=True)
    meta = {"training_signals": SIGNALS, "camera": "left", **metadata}
    config = {"encoder": {**enc, "use_rope": True}, "predictor": pred, "alignment": alignment}
    return WorldModel.from_config({**config, "residual": True, "metadata": meta})


def _inproc(*args: str) -> None:
    """Run a `vjepa2-ac` command in this process (cheaper than a subprocess); a failure raises
    SystemExit with the one-line message the command printed."""
    import contextlib
    import io

    from vjepa2_ac.experiments.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(args))
    if code != 0:
        raise SystemExit(f"exit {code}: {err.getvalue().strip()}")


_cli = run_cli


def plan_args(**kw) -> argparse.Namespace:
    """A `vjepa2-ac plan` namespace with its defaults, overridden by ``kw``."""
    from vjepa2_ac.experiments import plan

    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    args = parser.parse_args(["--task", kw.pop("task"), "--out", str(kw.pop("out"))])
    for k, v in kw.items():
        assert hasattr(args, k), k
        setattr(args, k, v)
    return args


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    tiny_world_model().save(path)
    return str(path)


PLAN_TINY = ["--samples", "6", "--topk", "2", "--iterations", "1", "--max-steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def push_run(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "push"
    proc = _cli(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--episodes", "2", "--out", str(out),
        *PLAN_TINY,
    )  # fmt: skip
    out.joinpath("stdout.txt").write_text(proc.stdout)
    return out


def test_plan_writes_episode_files_and_summary(push_run):
    eps = sorted((push_run / "episodes").glob("ep_*.json"))
    assert [p.name for p in eps] == ["ep_0000.json", "ep_0001.json"]
    for i, p in enumerate(eps):
        rec = json.loads(p.read_text())
        assert set(EPISODE_FIELDS) <= set(rec)
        assert rec["episode"] == i and rec["seed"] == i and rec["method"] == "world_model_cem"
        assert isinstance(rec["success"], bool)
        # 2 planned token steps of 2 control steps each: 5 control-step observations.
        assert rec["steps"] == 2 and rec["control_steps"] == 4
        assert len(rec["distance_trace"]) == 5 and len(rec["energy_trace"]) == 2
        assert rec["final_distance"] == rec["distance_trace"][-1] >= 0
        assert rec["planning_time_per_step_s"] > 0
        assert len(rec["block_trajectory"]) == 5 and len(rec["goal_block"]) == 2
    summary = json.loads((push_run / "summary.json").read_text())
    (row,) = summary["rows"]
    assert row["n"] == 2 and 0.0 <= row["success_rate"] <= 1.0
    assert row["success_ci_lo"] <= row["success_rate"] <= row["success_ci_hi"]
    assert summary["settings"]["training_signals"] == SIGNALS
    assert summary["settings"]["frames_per_step"] == 2 and summary["settings"]["max_steps"] == 2
    assert (push_run / "episodes.csv").read_text().count("\n") == 3
    assert "world_model_cem" in (push_run / "summary.md").read_text()
    assert "world model trained on: frames, ee_state, actions" in (push_run / "stdout.txt").read_text()
    frames = np.load(push_run / "episodes" / "ep_0000_frames.npz")
    assert frames["frames"].shape == (5, 32, 32, 3) and frames["goal"].shape == (32, 32, 3)
    land = np.load(push_run / "landscape_ep0000.npz")
    assert land["energy"].shape == land["true_energy"].shape == (11, 11)


def test_plan_resumes_and_keeps_finished_episodes(push_run, tiny_checkpoint):
    ep0 = push_run / "episodes" / "ep_0000.json"
    before = ep0.read_text()
    (push_run / "episodes" / "ep_0001.json").unlink()  # as if interrupted during episode 1
    _cli("plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--episodes", "3", "--out", str(push_run),
         *PLAN_TINY)  # fmt: skip
    assert ep0.read_text() == before  # finished episode untouched
    assert (push_run / "episodes" / "ep_0001.json").exists() and (
        push_run / "episodes" / "ep_0002.json"
    ).exists()
    assert json.loads((push_run / "summary.json").read_text())["rows"][0]["n"] == 3
    # Different settings into the same folder are refused, not mixed: the horizon, and the batch size.
    for extra in (["--max-steps", "4"], ["--max-steps", "2", "--batch-episodes", "7"]):
        with pytest.raises(SystemExit, match="different settings"):
            _inproc(
                "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--episodes", "3",
                "--out", str(push_run), *PLAN_TINY[:-3], *extra, "--no-progress",
            )  # fmt: skip


def test_plan_random_and_oracle_baselines(tiny_checkpoint, tmp_path):
    _cli("plan", "--task", "reach", "--baseline", "random", "--episodes", "2", "--out", str(tmp_path / "r"),
         *PLAN_TINY)  # fmt: skip
    rec = json.loads((tmp_path / "r" / "episodes" / "ep_0001.json").read_text())
    assert rec["method"] == "random" and rec["energy_trace"] == []
    _inproc(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--baseline", "oracle", "--episodes", "1",
        "--out", str(tmp_path / "o"), *PLAN_TINY,
    )  # fmt: skip
    rec = json.loads((tmp_path / "o" / "episodes" / "ep_0000.json").read_text())
    assert rec["method"] == "oracle_cem" and len(rec["energy_trace"]) == 2
    # Oracle planning must leave the episode itself untouched: the same seed gives the same start.
    rnd = json.loads((tmp_path / "r" / "episodes" / "ep_0000.json").read_text())
    assert rec["distance_trace"][0] == pytest.approx(rnd["distance_trace"][0])


def test_plan_subgoals_follow_the_expert_then_the_goal(tiny_checkpoint, tmp_path):
    out = tmp_path / "sub"
    _inproc(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--push-start", "env", "--subgoals", "3",
        "--episodes", "1", "--samples", "6", "--topk", "2", "--iterations", "1", "--max-steps", "12",
        "--landscapes", "0", "--save-frames", "0", "--no-progress", "--out", str(out),
    )  # fmt: skip
    rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
    trace = rec["subgoal_trace"]
    assert trace[0] == 0 and trace == sorted(trace) and trace[-1] == 2, trace
    assert json.loads((out / "run_config.json").read_text())["subgoal_rounding"] == "each"
    # The rounding changes the schedule, so a run continued with the other one is refused.
    with pytest.raises(SystemExit, match="subgoal_rounding"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--push-start", "env",
            "--subgoals", "3", "--episodes", "1", "--samples", "6", "--topk", "2", "--iterations", "1",
            "--max-steps", "12", "--subgoal-rounding", "cumulative", "--no-progress", "--out", str(out),
        )  # fmt: skip
    with pytest.raises(SystemExit, match="--subgoals must be >= 1"):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--subgoals", "0",
                "--out", str(tmp_path / "x"))  # fmt: skip


def test_plan_subgoal_refresh_redraws_from_the_current_scene(tiny_checkpoint, tmp_path):
    out = tmp_path / "refresh"
    _inproc(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--push-start", "env", "--subgoals", "4",
        "--subgoal-refresh", "3", "--episodes", "1", "--samples", "6", "--topk", "2", "--iterations", "1",
        "--max-steps", "9", "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert json.loads((out / "run_config.json").read_text())["subgoal_refresh"] == 3
    trace = json.loads((out / "episodes" / "ep_0000.json").read_text())["subgoal_trace"]
    # Each redraw (after planned steps 3 and 6) starts a fresh list: the steps after it pursue its first.
    assert len(trace) == 9 and trace[3] == 0 and trace[6] == 0, trace
    with pytest.raises(SystemExit, match="--subgoal-refresh redraws sub-goals"):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--subgoal-refresh", "2",
                "--out", str(tmp_path / "x"))  # fmt: skip
    with pytest.raises(SystemExit, match="--subgoal-refresh must be >= 0"):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--subgoals", "3",
                "--subgoal-refresh", "-1", "--out", str(tmp_path / "y"))  # fmt: skip


def test_subgoal_pace_stretches_the_expert_schedule():
    from vjepa2_ac.envs.starts import make_env, reset_episode
    from vjepa2_ac.envs.subgoals import expert_subgoals

    env = make_env("push", 32)
    obs, info = reset_episode(env, "push", 3, "env")
    plain = expert_subgoals(env, "push", obs, info, 4, 400, 2)
    slow = expert_subgoals(env, "push", obs, info, 4, 400, 2, pace=2.0)  # the cap (80 %) is far
    env.close()
    assert [s for _, s in plain][-1] is None and [s for _, s in slow][-1] is None
    for (img_a, a), (img_b, b) in zip(plain[:-1], slow[:-1]):
        np.testing.assert_array_equal(img_a, img_b)  # the same expert frames ...
        assert 2 * a - 1 <= b <= 2 * a  # ... each pursued about twice as long
    # In a short episode the pace is lowered so that the sub-goals leave 20 % of it to the goal image.
    env = make_env("push", 32)
    obs, info = reset_episode(env, "push", 3, "env")
    expert_tokens = sum(s for _, s in plain[:-1])
    budget = 8 * expert_tokens  # control steps: room for the expert, and a pace of 10 would not fit
    capped = sum(s for _, s in expert_subgoals(env, "push", obs, info, 4, budget, 2, pace=10.0)[:-1])
    env.close()
    assert 2 * expert_tokens < capped <= 0.8 * budget / 2 + 1, (expert_tokens, capped)
    # Sub-goals about 1.5 token steps apart in an episode the expert's run fills to 80 %: rounding each
    # one's time up overruns the sub-goals' share; rounding the switch times keeps it.
    env = make_env("push", 32)
    obs, info = reset_episode(env, "push", 3, "env")
    budget = round(1.25 * 2 * expert_tokens) + 2  # control steps
    count = max(3, expert_tokens * 2 // 3)
    each = expert_subgoals(env, "push", obs, info, count, budget, 2, pace=3.0)
    cumulative = expert_subgoals(env, "push", obs, info, count, budget, 2, pace=3.0, rounding="cumulative")
    env.close()
    share = 0.8 * budget / 2
    assert [img.tobytes() for img, _ in each] == [img.tobytes() for img, _ in cumulative]
    assert len(cumulative) == count and cumulative[-1][1] is None and min(s for _, s in cumulative[:-1]) >= 1
    assert sum(s for _, s in cumulative[:-1]) <= share + 1 < sum(s for _, s in each[:-1]), (each, budget)
    with pytest.raises(ValueError, match="rounding must be one of"):
        expert_subgoals(env, "push", obs, info, 2, 80, 2, rounding="floor")
    with pytest.raises(ValueError, match="pace > 0"):
        expert_subgoals(env, "push", obs, info, 2, 80, 2, pace=0.0)


def test_plan_bad_inputs_fail_fast(tiny_checkpoint, tmp_path):
    with pytest.raises(
        SystemExit, match=r"unknown task 'stack'; valid: reach, push, FetchReach-v4, FetchPush-v4, droid"
    ):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "stack", "--out", str(tmp_path / "a"))
    bad_goal = tmp_path / "goal.npy"
    np.save(bad_goal, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(SystemExit, match=r"32x32x3 RGB image .* shape \(64, 64, 3\)"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--goal-image", str(bad_goal),
            "--out", str(tmp_path / "b"),
        )  # fmt: skip
    # A checkpoint whose weights do not match its config.
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["config"]["encoder"]["embed_dim"] = 64
    ckpt.pop("sha256")  # as a file saved without a content hash (else the hash check refuses it first)
    mismatched = tmp_path / "mismatch.pt"
    torch.save(ckpt, mismatched)
    with pytest.raises(SystemExit, match="not a loadable world model checkpoint"):
        _inproc("plan", "--checkpoint", str(mismatched), "--task", "reach", "--out", str(tmp_path / "c"))
    with pytest.raises(SystemExit, match=r"--horizon 9: the checkpoint's predictor handles at most 3"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--horizon", "9",
            "--out", str(tmp_path / "e"),
        )  # fmt: skip
    with pytest.raises(SystemExit, match="--checkpoint is required"):
        _inproc("plan", "--task", "reach", "--out", str(tmp_path / "d"))
    with pytest.raises(SystemExit, match="--save-frames must be >= 0"):
        _inproc("plan", "--task", "reach", "--baseline", "random", "--save-frames", "-1",
                "--out", str(tmp_path / "f"))  # fmt: skip
    assert not any((tmp_path / d).exists() for d in "abcdef")  # failed before writing anything


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-3) and hi == pytest.approx(0.9448, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 3)


def test_plan_droid_offline_one_step(shared, tmp_path):
    """Offline planning on the real Franka example clip with a tiny (untrained) WorldModel."""
    from vjepa2_ac.world_model import WorldModel

    torch.manual_seed(0)
    enc = dict(img_size=32, patch_size=16, num_frames=2, tubelet_size=2, embed_dim=32, depth=1, num_heads=4)
    enc["use_rope"] = True
    pred = dict(img_size=32, patch_size=16, num_frames=4, tubelet_size=2, embed_dim=32)
    pred.update(predictor_embed_dim=32, depth=1, num_heads=4, use_rope=True)
    model = WorldModel.from_config({"encoder": enc, "predictor": pred, "alignment": "duplicate"})
    ckpt = tmp_path / "wm.pt"
    model.save(ckpt)
    data = shared / "data" / "franka_example_traj.npz"
    args = ["plan", "--task", "droid", "--checkpoint", str(ckpt), "--droid", str(data), "--samples", "8"]
    args += ["--topk", "2", "--iterations", "2", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match=r"frames are 256x256 but the model's encoder takes 32x32"):
        _inproc(*args)
    _inproc(*args, "--resize")
    out = json.loads((tmp_path / "o" / "droid_plan.json").read_text())
    (clip,) = out["clips"]
    # The recorded action of the example (README of the shared data): +9.2 cm x, +3.1 cm y, +8.4 cm z.
    assert clip["recorded_action"][:3] == pytest.approx([0.09237, 0.03099, 0.08428], abs=1e-4)
    assert all(abs(v) <= 0.075 + 1e-6 for v in clip["planned_action"][:3]) and clip["xyz_error_cm"] >= 0
    assert np.load(tmp_path / "o" / "landscape_clip0.npz")["energy"].shape == (5, 5)


def test_plan_stop_energy_holds_still(tiny_checkpoint, tmp_path):
    """With a threshold above any energy the arm never moves; the observed energy is logged per step."""
    _inproc(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--episodes", "1", "--stop-energy", "100",
        "--out", str(tmp_path / "s"), "--landscapes", "0", "--save-frames", "0", *PLAN_TINY,
    )  # fmt: skip
    rec = json.loads((tmp_path / "s" / "episodes" / "ep_0000.json").read_text())
    assert rec["actions"] == [[0.0, 0.0, 0.0]] * 2
    assert len(rec["observed_energy_trace"]) == 2 and all(e > 0 for e in rec["observed_energy_trace"])
    ee = np.asarray(rec["ee_trajectory"])
    assert np.abs(ee - ee[0]).max() < 2e-3  # held still (up to the weld settling)


def test_plan_action_cost_shrinks_the_planned_actions(tiny_checkpoint, tmp_path):
    """A control cost far above any energy difference makes CEM prefer the smallest actions."""
    sizes = {}
    for cost in ("0", "1000"):
        out = tmp_path / f"c{cost}"
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--episodes", "2",
            "--action-cost", cost, "--out", str(out), "--landscapes", "0", "--save-frames", "0", *PLAN_TINY,
            "--samples", "40",
        )  # fmt: skip
        recs = [json.loads((out / "episodes" / f"ep_000{i}.json").read_text()) for i in range(2)]
        sizes[cost] = np.abs(np.asarray([r["actions"] for r in recs])).mean()
        assert json.loads((out / "run_config.json").read_text())["action_cost"] == float(cost)
    assert sizes["1000"] < 0.5 * sizes["0"]
    with pytest.raises(SystemExit, match=r"--action-cost must be a finite number >= 0, got -1.0"):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--action-cost", "-1",
                "--out", str(tmp_path / "x"), *PLAN_TINY)  # fmt: skip
    with pytest.raises(SystemExit, match="--action-cost is used by the world model's batched CEM only"):
        _inproc("plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--action-cost", "0.1",
                "--planner", "mppi", "--out", str(tmp_path / "x"), *PLAN_TINY)  # fmt: skip


def test_plan_stop_distance_uses_the_checkpoint_calibration(tiny_checkpoint, tmp_path):
    """--stop-distance needs the checkpoint's energy-per-metre calibration and scales it by the distance."""
    with pytest.raises(SystemExit, match=r"--stop-distance: checkpoint .* has no energy calibration"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--stop-distance", "0.02",
            "--out", str(tmp_path / "a"), *PLAN_TINY,
        )  # fmt: skip
    with pytest.raises(SystemExit, match="alternatives"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "reach", "--stop-distance", "0.02",
            "--stop-energy", "0.1", "--out", str(tmp_path / "b"), *PLAN_TINY,
        )  # fmt: skip
    calibrated = tmp_path / "calibrated.pt"
    tiny_world_model(energy_per_metre=1e4).save(calibrated)  # 2 cm -> 200: above any energy
    _inproc(
        "plan", "--checkpoint", str(calibrated), "--task", "reach", "--episodes", "1",
        "--stop-distance", "0.02", "--out", str(tmp_path / "s"), "--landscapes", "0", "--save-frames", "0",
        *PLAN_TINY,
    )  # fmt: skip
    rec = json.loads((tmp_path / "s" / "episodes" / "ep_0000.json").read_text())
    assert rec["actions"] == [[0.0, 0.0, 0.0]] * 2


def test_energy_per_metre_recovers_a_linear_energy():
    """Embeddings that move linearly with the end-effector position give back their energy per metre."""
    from vjepa2_ac.training.calibration import energy_per_metre

    g = torch.Generator().manual_seed(0)
    pos = (torch.randn(20, 4, 3, generator=g) * 0.01).cumsum(1)  # ~1.7 cm per step
    states = torch.cat([pos, torch.zeros(20, 4, 4)], dim=-1)
    z = torch.zeros(20, 4, 4, 6)
    z[..., :3] = 5.0 * pos[:, :, None, :]  # energy = 5/(N*D) * |dx|_1 per pair
    k = energy_per_metre(z, states)
    e = (z[:, 1:] - z[:, :-1]).abs().mean(dim=(-2, -1)).flatten()
    d = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1).flatten()
    assert 0.5 * float((e / d).median()) < k < 2.0 * float((e / d).median())
    with pytest.raises(ValueError, match="step pairs are"):
        energy_per_metre(z, states * 100)


def _tracker(n: int, size: int = 32):
    from vjepa2_ac.planners.execution import TokenTracker

    rng = np.random.default_rng(0)
    tracker = TokenTracker(n, 2)
    for i in range(n):
        tracker.observe_reset(
            i,
            {
                "image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "state": np.zeros(7, np.float32),
            },
        )
    return tracker


@pytest.mark.parametrize("warm", [False, True])
def test_world_model_cem_starts_from_zero_or_the_shifted_previous_plan(monkeypatch, warm):
    from vjepa2_ac.planners import lockstep
    from vjepa2_ac.planners.cem import CEMConfig, shift_plans

    model = tiny_world_model().eval()
    calls = []  # (init, plans) of every batched CEM call
    original = lockstep.CEM.plan_batch

    def spy(self, fn, num_problems, horizon, init=None, *args, **kw):
        results = original(self, fn, num_problems, horizon, init, *args, **kw)
        calls.append((None if init is None else init.clone(), torch.stack([r.actions for r in results])))
        return results

    monkeypatch.setattr(lockstep.CEM, "plan_batch", spy)
    cfg = CEMConfig.mpc(maxnorm=0.02, samples=6, iterations=1, topk=2)
    policy = lockstep.WorldModelCEM(model, cfg, horizon=3, warm_start=warm)
    tracker = _tracker(3)
    policy.reset([0, 1, 2])
    policy.goals.set([0, 1, 2], [tracker.frames(i)[-1] for i in range(3)])
    policy.act([0, 1, 2], tracker)
    policy.act([0, 2], tracker)  # episode 1 has ended
    assert calls[0][0] is None
    if warm:
        expected = shift_plans(calls[0][1][[0, 2]])
        assert calls[1][0] is not None and torch.equal(calls[1][0], expected)
        assert expected.abs().sum() > 0 and torch.equal(expected[:, -1], torch.zeros(2, 7))
    else:
        assert calls[1][0] is None


def test_plan_records_the_warm_start_and_refuses_unknown_ones(tiny_checkpoint, tmp_path):
    for warm, task in (("previous", "push"), ("none", "reach")):
        out = tmp_path / warm
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", task, "--episodes", "1", "--warm-start", warm,
            "--out", str(out), "--landscapes", "0", "--save-frames", "0", *PLAN_TINY,
        )  # fmt: skip
        assert json.loads((out / "run_config.json").read_text())["warm_start"] == warm
    out = tmp_path / "random"
    _inproc(
        "plan", "--task", "reach", "--baseline", "random", "--episodes", "1", "--out", str(out), *PLAN_TINY
    )
    assert json.loads((out / "run_config.json").read_text())["warm_start"] is None
    proc = _cli("plan", "--task", "reach", "--warm-start", "mean", "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode != 0 and "--warm-start: invalid choice: 'mean'" in proc.stderr


def test_task_defaults_scale_with_the_token_step(tiny_checkpoint, tmp_path):
    from vjepa2_ac.experiments.plan import PlanError, load_world_model, run_settings, validate_args

    model = load_world_model(tiny_checkpoint)
    for task, topk, steps, maxnorm in (("reach", 10, 15, 0.05), ("push", 30, 20, 0.03)):
        args = plan_args(task=task, out=tmp_path / task, checkpoint=tiny_checkpoint)
        validate_args(args)
        settings = run_settings(args, model)
        assert settings["topk"] == topk and settings["warm_start"] == "none"
        assert settings["max_steps"] == steps and settings["maxnorm"] == pytest.approx(maxnorm)
    args = plan_args(task="push", out=tmp_path / "few", checkpoint=tiny_checkpoint, samples=20)
    with pytest.raises(PlanError, match=r"--topk must be in \[2, --samples=20\], got 30"):
        validate_args(args)


def test_warm_start_changes_nothing_at_horizon_one():
    """Reach plans one step ahead: the shifted previous plan is all zeros, the same start as none."""
    from vjepa2_ac.planners.cem import CEMConfig
    from vjepa2_ac.planners.lockstep import WorldModelCEM

    model = tiny_world_model().eval()
    actions = {}
    for warm in (False, True):
        tracker = _tracker(1)
        policy = WorldModelCEM(model, CEMConfig.mpc(samples=8, iterations=2, topk=3), 1, warm_start=warm)
        policy.reset([5])
        policy.goals.set([0], [np.zeros((32, 32, 3), np.uint8)])
        actions[warm] = np.stack([policy.act([0], tracker)[0] for _ in range(3)])
    assert np.abs(actions[False]).sum() > 0
    np.testing.assert_array_equal(actions[False], actions[True])


def test_plan_runs_an_official_format_checkpoint_with_duplicate_tubelets(tmp_path):
    """Official weights (module./backbone. prefixes, encoder + predictor) assembled into a WorldModel."""
    from vjepa2_ac.checkpoint import load_official_checkpoint

    src = tiny_world_model("duplicate")
    official = {
        "encoder": {f"module.backbone.{k}": v for k, v in src.encoder.state_dict().items()},
        "predictor": {f"module.backbone.{k}": v for k, v in src.predictor.state_dict().items()},
    }
    torch.save(official, tmp_path / "official.pt")
    wm = tiny_world_model("duplicate")
    for p in wm.parameters():
        torch.nn.init.zeros_(p)
    load_official_checkpoint(tmp_path / "official.pt", encoder=wm.encoder, predictor=wm.predictor)
    for k, v in src.state_dict().items():
        assert torch.equal(v, wm.state_dict()[k]), k
    wm.save(tmp_path / "wm.pt")
    out = tmp_path / "o"
    _inproc("plan", "--checkpoint", str(tmp_path / "wm.pt"), "--task", "reach", "--episodes", "1",
            "--out", str(out), "--landscapes", "0", *PLAN_TINY)  # fmt: skip
    rec = json.loads((out / "episodes" / "ep_0000.json").read_text())
    assert rec["steps"] == 2 and rec["control_steps"] == 2  # one frame, one control step per token
    assert json.loads((out / "run_config.json").read_text())["frames_per_step"] == 1


def test_reach_holds_still_near_the_goal_by_default_when_calibrated(tiny_checkpoint, tmp_path):
    """Reach's default hold-still distance applies to calibrated checkpoints only; 0 turns it off."""
    from vjepa2_ac.experiments.plan import load_world_model, resolve_stop_energy, validate_args

    calibrated = tmp_path / "calibrated.pt"
    tiny_world_model(energy_per_metre=2.0).save(calibrated)
    for ckpt, extra, expected in (
        (str(calibrated), {}, 2.0 * 0.015),
        (str(calibrated), {"stop_distance": 0.0}, None),
        (tiny_checkpoint, {}, None),  # no calibration: the default is not used
    ):
        args = plan_args(task="reach", out=tmp_path / "x", checkpoint=ckpt, **extra)
        validate_args(args)
        energy = resolve_stop_energy(args, load_world_model(ckpt))
        assert energy == (pytest.approx(expected) if expected else None)
    args = plan_args(task="push", out=tmp_path / "y", checkpoint=str(calibrated))
    validate_args(args)
    assert resolve_stop_energy(args, load_world_model(str(calibrated))) is None  # push: no default


def test_plan_recompute_rollout_gives_the_cached_plans(tiny_checkpoint, tmp_path):
    runs = {}
    for mode in ("cached", "recompute"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--horizon", "3", "--episodes", "2",
            "--rollout", mode, "--landscapes", "0", "--save-frames", "0", *PLAN_TINY,
            "--out", str(tmp_path / mode),
        )  # fmt: skip
        runs[mode] = [
            json.loads((tmp_path / mode / "episodes" / f"ep_{i:04d}.json").read_text()) for i in (0, 1)
        ]
        assert json.loads((tmp_path / mode / "run_config.json").read_text())["rollout"] == mode
    for a, b in zip(runs["cached"], runs["recompute"]):
        np.testing.assert_allclose(a["actions"], b["actions"], atol=1e-6)
        np.testing.assert_allclose(a["energy_trace"], b["energy_trace"], rtol=1e-4)


def test_bench_plan_prints_cached_and_recompute_times(tiny_checkpoint, tmp_path):
    rows_path = tmp_path / "rows.json"
    proc = _cli(
        "bench", "plan", "--checkpoint", tiny_checkpoint, "--tasks", "reach", "--episodes", "1",
        "--max-steps", "2", "--json", str(rows_path),
    )  # fmt: skip
    assert "| reach | 1 | 100 x 3 | 1 |" in proc.stdout and "fp32 matmul peak" in proc.stdout
    (row,) = json.loads(rows_path.read_text())
    assert row["same_actions"] and row["cached_ms_per_step"] > 0 and row["recompute_ms_per_step"] > 0
