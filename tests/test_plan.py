"""Smoke and bad-input tests of `vjepa2-ac plan` (tiny untrained model, a few MPC steps)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vjepa2_ac.checkpoint import content_hash
from vjepa2_ac.experiments.recipe import RecipeConfig, save_sim_checkpoint
from vjepa2_ac.experiments.results import EPISODE_FIELDS, wilson_interval
from vjepa2_ac.experiments.sim_model import SimModelConfig, SimWorldModel

TINY = dict(image_size=32, patch_size=16, embed_dim=32, depth=1, pred_embed_dim=32, pred_depth=1)


def _inproc(*args: str) -> None:
    """Run a `vjepa2-ac` command in this process (cheaper than a subprocess; errors raise SystemExit)."""
    from vjepa2_ac.experiments.cli import main

    assert main(list(args)) == 0


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {args}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    cfg = RecipeConfig(model=SimModelConfig(**TINY))
    model = SimWorldModel(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_sim_checkpoint(path, model, cfg)
    return str(path)


PLAN_TINY = ["--samples", "6", "--topk", "2", "--iterations", "1", "--max-steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def push_run(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "push"
    _cli(
        "plan",
        "--checkpoint",
        tiny_checkpoint,
        "--task",
        "push",
        "--episodes",
        "2",
        "--out",
        str(out),
        *PLAN_TINY,
    )
    return out


def test_plan_writes_episode_files_and_summary(push_run):
    eps = sorted((push_run / "episodes").glob("ep_*.json"))
    assert [p.name for p in eps] == ["ep_0000.json", "ep_0001.json"]
    for i, p in enumerate(eps):
        rec = json.loads(p.read_text())
        assert set(EPISODE_FIELDS) <= set(rec)
        assert rec["episode"] == i and rec["seed"] == i and rec["method"] == "world_model_cem"
        assert isinstance(rec["success"], bool)
        assert rec["steps"] == 2 and len(rec["distance_trace"]) == 3 and len(rec["energy_trace"]) == 2
        assert rec["final_distance"] == rec["distance_trace"][-1] >= 0
        assert rec["planning_time_per_step_s"] > 0
        assert len(rec["block_trajectory"]) == 3 and len(rec["goal_block"]) == 2
    summary = json.loads((push_run / "summary.json").read_text())
    (row,) = summary["rows"]
    assert row["n"] == 2 and 0.0 <= row["success_rate"] <= 1.0
    assert row["success_ci_lo"] <= row["success_rate"] <= row["success_ci_hi"]
    assert (push_run / "episodes.csv").read_text().count("\n") == 3
    assert "world_model_cem" in (push_run / "summary.md").read_text()
    frames = np.load(push_run / "episodes" / "ep_0000_frames.npz")
    assert frames["frames"].shape == (3, 32, 32, 3) and frames["goal"].shape == (32, 32, 3)
    land = np.load(push_run / "landscape_ep0000.npz")
    assert land["energy"].shape == land["true_energy"].shape == (11, 11)


def test_plan_resumes_and_keeps_finished_episodes(push_run, tiny_checkpoint):
    ep0 = push_run / "episodes" / "ep_0000.json"
    before = ep0.read_text()
    (push_run / "episodes" / "ep_0001.json").unlink()  # as if interrupted during episode 1
    _cli(
        "plan",
        "--checkpoint",
        tiny_checkpoint,
        "--task",
        "push",
        "--episodes",
        "3",
        "--out",
        str(push_run),
        *PLAN_TINY,
    )
    assert ep0.read_text() == before  # finished episode untouched
    assert (push_run / "episodes" / "ep_0001.json").exists() and (
        push_run / "episodes" / "ep_0002.json"
    ).exists()
    assert json.loads((push_run / "summary.json").read_text())["rows"][0]["n"] == 3
    # Different settings into the same folder are refused, not mixed.
    with pytest.raises(SystemExit, match="different settings"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--episodes", "3",
            "--out", str(push_run), *PLAN_TINY[:-3], "--max-steps", "4", "--no-progress",
        )  # fmt: skip


def test_plan_random_and_oracle_baselines(tiny_checkpoint, tmp_path):
    _cli(
        "plan",
        "--task",
        "reach",
        "--baseline",
        "random",
        "--episodes",
        "2",
        "--out",
        str(tmp_path / "r"),
        *PLAN_TINY,
    )
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


def test_plan_bad_inputs_fail_fast(tiny_checkpoint, tmp_path):
    with pytest.raises(SystemExit, match=r"unknown task 'stack'; valid tasks: reach, push, droid"):
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
    ckpt["config"]["model"]["embed_dim"] = 64
    ckpt.pop("sha256")  # as a file saved without a content hash (else the hash check refuses it first)
    mismatched = tmp_path / "mismatch.pt"
    torch.save(ckpt, mismatched)
    with pytest.raises(SystemExit, match="wrong shapes"):
        _inproc("plan", "--checkpoint", str(mismatched), "--task", "reach", "--out", str(tmp_path / "c"))
    with pytest.raises(
        SystemExit, match=r"--horizon 9 \+ --context-frames 0: the checkpoint's predictor handles at most 6"
    ):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--horizon", "9",
            "--out", str(tmp_path / "e"),
        )  # fmt: skip
    with pytest.raises(SystemExit, match=r"--horizon 5 \+ --context-frames 2: .* at most 6"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--horizon", "5",
            "--context-frames", "2", "--out", str(tmp_path / "e"),
        )  # fmt: skip
    with pytest.raises(SystemExit, match="--context-frames is used by the world model's batched CEM only"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--context-frames", "1",
            "--baseline", "oracle", "--out", str(tmp_path / "e"),
        )  # fmt: skip
    with pytest.raises(SystemExit, match="--context-frames must be >= 0"):
        _inproc(
            "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--context-frames", "-1",
            "--out", str(tmp_path / "e"),
        )  # fmt: skip
    with pytest.raises(SystemExit, match="--checkpoint is required"):
        _inproc("plan", "--task", "reach", "--out", str(tmp_path / "d"))
    assert not any((tmp_path / d).exists() for d in "abcde")  # failed before writing anything


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
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["config"]["energy_per_metre"] = {"reach": 1e4, "push": 1e4}  # 2 cm -> 200: above any energy
    ckpt["sha256"] = content_hash(ckpt["config"], ckpt["state_dict"])  # edited on purpose: re-hashed
    calibrated = tmp_path / "calibrated.pt"
    torch.save(ckpt, calibrated)
    _inproc(
        "plan", "--checkpoint", str(calibrated), "--task", "reach", "--episodes", "1",
        "--stop-distance", "0.02", "--out", str(tmp_path / "s"), "--landscapes", "0", "--save-frames", "0",
        *PLAN_TINY,
    )  # fmt: skip
    rec = json.loads((tmp_path / "s" / "episodes" / "ep_0000.json").read_text())
    assert rec["actions"] == [[0.0, 0.0, 0.0]] * 2


def test_calibrate_energy_recovers_a_linear_energy():
    """Embeddings that move linearly with position give back their energy per metre."""
    from vjepa2_ac.experiments.recipe import calibrate_energy

    g = torch.Generator().manual_seed(0)
    steps = torch.randn(20, 8, 3, generator=g) * 0.01  # ~1.7 cm per step
    pos = torch.cat([steps.cumsum(1), torch.full((20, 8, 3), float("nan"))], dim=-1)  # reach: no block
    # z = a 3-D position written into one channel per axis of every token, times 5: an L1 energy of
    # 5/(N*D) * |dx|_1 per pair, which is a fixed multiple of the distance only on average.
    z = torch.zeros(20, 8, 4, 6)
    z[..., :3] = 5.0 * pos[..., None, :3]
    k = calibrate_energy({"reach": {"positions": pos.numpy()}}, {"reach": z})["reach"]
    e = (z[:, 1:] - z[:, :-1]).abs().mean(dim=(-2, -1)).flatten()
    d = (pos[:, 1:, :3] - pos[:, :-1, :3]).norm(dim=-1).flatten()
    assert 0.5 * float((e / d).median()) < k < 2.0 * float((e / d).median())
    with pytest.raises(ValueError, match="frame pairs closer than"):
        calibrate_energy({"reach": {"positions": (pos * 100).numpy()}}, {"reach": z})


def test_contact_clip_weights_mark_clips_where_the_block_moves():
    from vjepa2_ac.experiments.recipe import contact_clip_weights

    pos = np.zeros((2, 6, 6), np.float32)
    pos[1, 4:, 3] = 0.02  # episode 1: the block moves 2 cm between frames 3 and 4
    w = contact_clip_weights(pos, span=2, oversample=4.0)  # clips start at t = 0..3, cover t..t+2
    assert w.shape == (2, 4)
    assert w[0].tolist() == [1.0] * 4
    assert w[1].tolist() == [1.0, 1.0, 4.0, 4.0]
    reach = np.full((2, 6, 6), np.nan, np.float32)  # no block: uniform
    assert contact_clip_weights(reach, 2, 4.0).tolist() == [[1.0] * 4] * 2


def test_contact_episodes_are_directed_pushes_from_wider_side_offsets():
    from vjepa2_ac.experiments.episodes import CollectConfig, collect_task, push_aligned_options

    # The sideways start offset of the aligned push is bounded by side_offset (evaluations keep 1 cm).
    def side(opts):
        ee, blk, goal = (np.array(opts[k][:2]) for k in ("ee_start", "block_start", "goal"))
        u = (goal - blk) / np.linalg.norm(goal - blk)
        d = ee - blk
        return abs(float(u[0] * d[1] - u[1] * d[0]))

    rng = np.random.default_rng(0)
    narrow = [side(push_aligned_options(rng)) for _ in range(200)]
    wide = [side(push_aligned_options(rng, side_offset=0.03)) for _ in range(200)]
    assert max(narrow) <= 0.0101 and 0.02 < max(wide) <= 0.0301
    cfg = CollectConfig(episodes=3, steps=3, contact_episodes=2)
    data = collect_task("push", cfg, seed=5, image_size=32, progress=False, contact=True)
    assert data["images"].shape == (2, 4, 32, 32, 3) and data["actions"].shape == (2, 3, 7)
    # Directed: every first action heads towards the block (random actions would not, on average).
    to_block = data["positions"][:, 0, 3:5] - data["positions"][:, 0, :2]
    assert (np.sum(data["actions"][:, 0, :2] * to_block, axis=1) > 0).all()
    with pytest.raises(ValueError, match="only for push"):
        collect_task("reach", cfg, seed=5, image_size=32, progress=False, contact=True)
    with pytest.raises(ValueError, match="contact_episodes"):
        CollectConfig(contact_episodes=-1)
    with pytest.raises(ValueError, match="contact_side_offset"):
        CollectConfig(contact_side_offset=0.2)


def test_contact_episodes_join_push_for_the_predictor_only(tmp_path):
    from vjepa2_ac.experiments.episodes import CollectConfig
    from vjepa2_ac.experiments.recipe import collect_contact_data, with_contact_episodes

    cfg = RecipeConfig(model=SimModelConfig(**TINY), collect=CollectConfig(steps=2, contact_episodes=2))
    contact = collect_contact_data(cfg, tmp_path, progress=False)
    assert (tmp_path / "data_push_contact.npz").exists()
    again = collect_contact_data(cfg, tmp_path, progress=False)  # cached: the same arrays
    assert np.array_equal(contact["images"], again["images"])
    push = {k: v[:1] for k, v in contact.items()}
    data = {"reach": {"images": np.zeros(1)}, "push": push}
    merged = with_contact_episodes(data, contact)
    assert merged["push"]["images"].shape[0] == 3 and merged["reach"] is data["reach"]
    assert data["push"]["images"].shape[0] == 1  # the encoder's data is left as it was
    assert with_contact_episodes(data, None) is data
    none = RecipeConfig(model=SimModelConfig(**TINY), collect=CollectConfig(contact_episodes=0))
    assert collect_contact_data(none, tmp_path / "x", progress=False) is None


def test_rollout_with_history_equals_teacher_forcing():
    torch.manual_seed(0)
    model = SimWorldModel(SimModelConfig(**TINY)).eval()
    torch.nn.init.normal_(model.predictor.predictor_proj.weight, std=0.1)  # not the zero-init copy
    z = torch.nn.functional.layer_norm(torch.randn(3, 4, model.tokens_per_frame, 32), (32,))
    s, a = torch.randn(3, 4, 7), 0.02 * torch.randn(3, 4, 7)
    with torch.no_grad():
        tf = model.predict(z[:, :3], a[:, :3], s[:, :3])  # step t predicts t + 1 from frames <= t
        roll = model.rollout(z[:, 2], s[:, 2], a[:, 2:4], history=(z[:, :2], s[:, :2], a[:, :2]))
        plain = model.rollout(z[:, 2], s[:, 2], a[:, 2:4])
        one = model.rollout(z[:1, 2], s[:1, 2], a[:1, 2:3], history=(z[:1, :2], s[:1, :2], a[:1, :2]))
    assert torch.allclose(roll[:, 0], tf[:, 2], atol=1e-5)
    assert torch.allclose(one[:, 0], tf[:1, 2], atol=1e-5)
    assert not torch.allclose(roll[:, 0], plain[:, 0], atol=1e-4)  # the past frames are used


def test_plan_with_context_frames_runs(tiny_checkpoint, tmp_path):
    out = tmp_path / "ctx"
    _inproc(
        "plan", "--checkpoint", tiny_checkpoint, "--task", "push", "--episodes", "2", "--horizon", "2",
        "--context-frames", "2", "--out", str(out), *PLAN_TINY,
    )  # fmt: skip
    assert json.loads((out / "run_config.json").read_text())["context_frames"] == 2
    rec = json.loads((out / "episodes" / "ep_0001.json").read_text())
    assert rec["steps"] == 2 and len(rec["actions"]) == 2


@pytest.mark.parametrize("warm", [False, True])
def test_world_model_cem_starts_from_zero_or_the_shifted_previous_plan(tiny_checkpoint, monkeypatch, warm):
    from vjepa2_ac.experiments import plan
    from vjepa2_ac.experiments.recipe import load_sim_checkpoint
    from vjepa2_ac.planners.cem import CEMConfig, shift_plans

    model, _ = load_sim_checkpoint(tiny_checkpoint)
    calls = []  # (init, plans) of every batched CEM call
    original = plan.CEM.plan_batch

    def spy(self, fn, num_problems, horizon, init=None, *args, **kw):
        results = original(self, fn, num_problems, horizon, init, *args, **kw)
        calls.append((None if init is None else init.clone(), torch.stack([r.actions for r in results])))
        return results

    monkeypatch.setattr(plan.CEM, "plan_batch", spy)
    cfg = CEMConfig.mpc(maxnorm=0.02, samples=6, iterations=1, topk=2)
    policy = plan.WorldModelCEM(model, cfg, horizon=3, seed=0, warm_start=warm)
    rng = np.random.default_rng(0)
    obs = [
        {"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "state": np.zeros(7, np.float32)}
        for _ in range(3)
    ]
    policy.reset([o["image"] for o in obs])
    policy.act([0, 1, 2], obs)
    policy.act([0, 2], [obs[0], obs[2]])  # episode 1 has ended
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


def test_topk_defaults_per_task(tiny_checkpoint, tmp_path):
    from vjepa2_ac.experiments.demo import plan_namespace
    from vjepa2_ac.experiments.plan import PlanError, run_settings, validate_args

    for task, topk in (("reach", 10), ("push", 30)):
        args = plan_namespace(task=task, out=tmp_path / task, checkpoint=tiny_checkpoint)
        validate_args(args)
        settings = run_settings(args, 32)
        assert settings["topk"] == topk and settings["warm_start"] == "none"
    args = plan_namespace(task="push", out=tmp_path / "few", checkpoint=tiny_checkpoint, samples=20)
    with pytest.raises(PlanError, match=r"--topk must be in \[2, --samples=20\], got 30"):
        validate_args(args)


def test_warm_start_changes_nothing_at_horizon_one(tiny_checkpoint):
    """Reach plans one step ahead: the shifted previous plan is all zeros, the same start as none."""
    from vjepa2_ac.experiments import plan
    from vjepa2_ac.experiments.recipe import load_sim_checkpoint
    from vjepa2_ac.planners.cem import CEMConfig

    model, _ = load_sim_checkpoint(tiny_checkpoint)
    rng = np.random.default_rng(1)
    obs = [
        [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "state": np.zeros(7, np.float32)}]
        for _ in range(3)
    ]
    actions = {}
    for warm in (False, True):
        policy = plan.WorldModelCEM(
            model, CEMConfig.mpc(samples=8, iterations=2, topk=3), 1, 0, warm_start=warm
        )
        policy.reset([obs[0][0]["image"]])
        actions[warm] = np.stack([policy.act([0], o)[0] for o in obs])
    assert np.abs(actions[False]).sum() > 0
    np.testing.assert_array_equal(actions[False], actions[True])
