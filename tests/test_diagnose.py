"""`vjepa2-ac diagnose`: block motion of a world model's predictor against the simulator's."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from vjepa2_ac import WorldModel, build_encoder, build_predictor
from vjepa2_ac.datasets import DataError, RawEpisode
from vjepa2_ac.envs.collect import CollectConfig, collect
from vjepa2_ac.experiments import diagnose as diag
from vjepa2_ac.experiments.diagnose import BlockProbe, load_push_steps, motion_stats
from vjepa2_ac.pose import pose_difference

SIZE = 32


def tiny_model(size: int = SIZE) -> WorldModel:
    torch.manual_seed(0)
    common = dict(
        img_size=size, patch_size=16, tubelet_size=2, embed_dim=32, depth=1, num_heads=2, use_rope=True
    )
    encoder = build_encoder(num_frames=2, **common)
    predictor = build_predictor(num_frames=8, predictor_embed_dim=32, **common)
    return WorldModel(encoder, predictor).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny untrained checkpoint and 6 short collected push episodes (9 frames: 4 token steps)."""
    root = tmp_path_factory.mktemp("diagnose")
    model = tiny_model()
    ckpt = model.save(root / "tiny.pt")
    cfg = CollectConfig(
        task="push", policy="expert", push_start="aligned", image_size=SIZE, max_steps=8, seed=7
    )
    collect(cfg, root / "data", 6)
    return model, str(ckpt), root / "data"


def test_motion_stats_splits_along_and_across_the_action():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.01, (50, 2)) + np.array([0.02, 0.0])
    direction = np.tile([[1.0, 0.0]], (50, 1))
    same = motion_stats(true, true, direction)
    assert same["forward_pred_m"] == pytest.approx(same["forward_true_m"])
    assert same["forward_corr"] == pytest.approx(1.0) and same["sideways_corr"] == pytest.approx(1.0)
    half = motion_stats(true, 0.5 * true, direction)
    assert half["forward_pred_m"] == pytest.approx(0.5 * half["forward_true_m"])
    assert half["sideways_pred_m"] == pytest.approx(0.5 * half["sideways_true_m"])
    # Sideways is measured across the action: rotate the direction by 90 degrees and the parts swap.
    turned = motion_stats(true, true, np.tile([[0.0, 1.0]], (50, 1)))
    assert turned["forward_true_m"] == pytest.approx(true[:, 1].mean())
    assert turned["sideways_true_m"] == pytest.approx(np.abs(true[:, 0]).mean())
    assert motion_stats(true[:2], true[:2], direction[:2])["forward_corr"] is None


def test_ridge_solutions_solve_the_normal_equations():
    rng = np.random.default_rng(2)
    for m, f in ((50, 8), (20, 64)):  # more samples than features, and fewer
        x, y = rng.normal(size=(m, f)), rng.normal(size=(m, 2))
        ((w, b),) = diag.ridge_solutions(x, y, [0.5])
        xc = x - x.mean(0)
        lam = 0.5 * (xc**2).sum() / f
        np.testing.assert_allclose(w, np.linalg.solve(xc.T @ xc + lam * np.eye(f), xc.T @ (y - y.mean(0))))
        np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ w)


def test_block_probe_reads_a_linear_position_and_picks_its_penalty():
    rng = np.random.default_rng(1)
    n, d = 4, 8
    zs = [torch.from_numpy(rng.normal(size=(10, n, d))) for _ in range(30)]  # 30 episodes [S, N, D]
    w_true = rng.normal(size=(n * d, 2))
    blocks = [diag.probe_features(z) @ w_true + [0.5, -0.1] for z in zs]  # linear in the tokens
    probe = BlockProbe.fit(zs[:20], blocks[:20])
    assert probe.features == "tokens" and probe.ridge == min(diag.RIDGE_GRID)  # noiseless: least penalty
    np.testing.assert_allclose(probe(zs[25]), blocks[25], atol=2e-3)
    score = probe.score(zs[20:], blocks[20:])
    assert score["samples"] == 100 and min(score["r2"]) > 0.999 and max(score["rmse_m"]) < 2e-3
    # The token mean cannot see which token carries what: it explains little of this target.
    assert max(BlockProbe.fit(zs[:20], blocks[:20], "mean").score(zs[20:], blocks[20:])["r2"]) < 0.5
    # Targets unrelated to the embeddings: cross-validation picks the strongest penalty (the mean).
    noise = [rng.normal(size=(10, 2)) for _ in range(30)]
    assert BlockProbe.fit(zs[:20], noise[:20]).ridge == max(diag.RIDGE_GRID)
    assert BlockProbe.fit(zs[:20], noise[:20], ridge=0.3).ridge == 0.3
    with pytest.raises(ValueError, match="cross-validation needs >= 2 fit episodes"):
        BlockProbe.fit(zs[:1], blocks[:1])


def test_token_steps_follow_strategy_a_tubelets(setup):
    model, _, data = setup
    path = data / "episode_000002"
    ep = load_push_steps(model, path)
    raw = RawEpisode(path)
    states, frames = raw.load().states, raw.read_frames(range(8))
    block = np.load(path / "sim.npz")["block_pos"]
    assert ep.z.shape == (4, 4, 32) and ep.states.shape == (4, 7) and ep.actions.shape == (3, 7)
    for j in range(4):  # tubelet j: frames 2j, 2j+1; state and block at frame 2j
        tubelet = torch.from_numpy(frames[2 * j : 2 * j + 2])[None]
        torch.testing.assert_close(ep.z[j], model.encode_frames(tubelet)[0, 0])
        np.testing.assert_allclose(ep.states[j].numpy(), states[2 * j], atol=1e-6)
        np.testing.assert_allclose(ep.block[j], block[2 * j, :2], atol=1e-6)
    want = pose_difference(torch.from_numpy(states[0:6:2]), torch.from_numpy(states[2:8:2]))
    np.testing.assert_allclose(ep.actions.numpy(), want.numpy(), atol=1e-6)


def test_unusable_episodes_are_named(setup, tmp_path):
    model, _, data = setup
    with pytest.raises(DataError, match="frames are 32x32, the checkpoint's encoder takes 64x64"):
        load_push_steps(tiny_model(64), data / "episode_000000")
    reach = tmp_path / "episode_reach"
    shutil.copytree(data / "episode_000000", reach)
    sim = dict(np.load(reach / "sim.npz"))
    del sim["block_pos"]
    np.savez(reach / "sim.npz", **sim)
    with pytest.raises(DataError, match=r"episode_reach: sim.npz has no 'block_pos'"):
        load_push_steps(model, reach)
    (reach / "sim.npz").unlink()
    with pytest.raises(DataError, match="missing sim.npz"):
        load_push_steps(model, reach)


class _Oracle:
    """A predictor that knows the future: its rollout is the true encoded steps that follow."""

    def __init__(self, episodes):
        self.steps = [(ep.z[j], ep.z[j + 1 :]) for ep in episodes for j in range(len(ep.z))]

    def rollout(self, z_ctx, states_ctx, actions):
        out = []
        for z0 in z_ctx[:, 0]:
            (future,) = [f for z, f in self.steps if torch.equal(z, z0)]  # embeddings are distinct
            out.append(future[: actions.shape[1]])
        return torch.stack(out), None


class _Copy:
    """A predictor that never changes the scene."""

    def rollout(self, z_ctx, states_ctx, actions):
        return z_ctx.expand(-1, actions.shape[1], -1, -1), None


def test_predictor_rows_against_oracle_and_still_predictors(setup):
    model, _, data = setup
    episodes = [load_push_steps(model, data / f"episode_{i:06d}") for i in range(6)]
    probe = BlockProbe.fit([ep.z for ep in episodes], [ep.block for ep in episodes])
    one = diag.one_step_fit(_Oracle(episodes), episodes, probe, min_motion=0.0)
    assert 0 < one["transitions"] <= one["of_transitions"] == 6 * 3
    (pred, enc) = one["rows"]
    assert (pred["source"], enc["source"]) == ("predictor, one step", "encoded next step")
    assert pred == pytest.approx(enc | {"source": pred["source"]}, rel=1e-9)
    assert pred["forward_true_m"] > 0  # the expert pushes the block forward
    roll = diag.rollout_fit(_Oracle(episodes), episodes, probe, horizon=3, min_motion=0.0)
    assert [r["steps"] for r in roll["rows"]] == [1, 2, 3]
    assert [r["spans"] for r in roll["rows"]][0] <= 6 * 1  # 1 start per 4-step episode
    for r in roll["rows"]:
        assert r["forward_pred_m"] == pytest.approx(r["forward_encoded_m"])
    still = diag.one_step_fit(_Copy(), episodes, probe, min_motion=0.0)["rows"][0]
    assert abs(still["forward_pred_m"]) < 1e-12 and still["sideways_pred_m"] < 1e-12
    # Spans in which the block does not move enough are reported as empty rows, not as an error.
    empty = diag.rollout_fit(_Copy(), episodes, probe, horizon=2, min_motion=1.0)
    assert [r["spans"] for r in empty["rows"]] == [0, 0] and empty["rows"][0]["forward_true_m"] is None
    text = diag.table_markdown(
        {
            "probe": {
                "features": "tokens",
                "ridge": 1.0,
                "rmse_m": [0.01, 0.02],
                "r2": [0.5, 0.4],
                "samples": 9,
            }
        }
        | {"fit_episodes": 3, "eval_episodes": 3, "frames_per_step": 2, "min_motion_m": 1.0}
        | {"one_step": one, "rollout": empty}
    )
    assert "| 1 | 0 | – | – | – | – | – | – | – | – |" in text and "| predictor, one step |" in text
    with pytest.raises(ValueError, match="--horizon 4: the longest evaluation episode has 3 transitions"):
        diag.rollout_fit(_Copy(), episodes, probe, horizon=4)
    with pytest.raises(ValueError, match="no transition in which the block moves more than 1.0 m"):
        diag.one_step_fit(_Copy(), episodes, probe, min_motion=1.0)


def _args(ckpt: str, out, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    diag.add_arguments(parser)
    return parser.parse_args(["--checkpoint", ckpt, "--out", str(out), "--no-progress", *argv])


def test_diagnose_on_collected_data(setup, tmp_path, capsys):
    _, ckpt, data = setup
    out = tmp_path / "diag"
    assert diag.run(_args(ckpt, out, "--data", str(data), "--horizon", "2", "--min-motion", "0")) == 0
    result = json.loads((out / "diagnose.json").read_text())
    assert (result["fit_episodes"], result["eval_episodes"], result["frames_per_step"]) == (3, 3, 2)
    assert result["probe"]["samples"] == 3 * 4 and 0 < result["one_step"]["transitions"] <= 3 * 3
    assert [r["steps"] for r in result["rollout"]["rows"]] == [1, 2]
    md = (out / "diagnose.md").read_text()
    assert "| encoded next step |" in md and md in capsys.readouterr().out


def test_diagnose_cli_collects_fresh_episodes(setup, tmp_path):
    _, ckpt, _ = setup
    fresh = tmp_path / "fresh"
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "diagnose", "--checkpoint", ckpt]
    cmd += ["--episodes", "4", "--max-steps", "8", "--horizon", "0", "--no-progress", "--out", str(fresh)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((fresh / "diagnose.json").read_text())
    assert result["data"] == str(fresh / "data") and "rollout" not in result
    assert result["one_step"]["transitions"] > 0  # held-out pushes that move the block > 1 cm per step
    assert json.loads((fresh / "data" / "collect_config.json").read_text())["seed"] == diag.DIAGNOSE_SEED
    assert len(list((fresh / "data").glob("episode_*"))) == 4


def test_diagnose_errors_name_the_argument(setup, tmp_path):
    _, ckpt, data = setup

    def fails(*argv: str, checkpoint: str = ckpt) -> str:
        with pytest.raises(SystemExit) as e:
            diag.run(_args(checkpoint, tmp_path / "x", *argv))
        return str(e.value)

    assert "missing_dir: no such directory" in fails("--data", str(tmp_path / "missing_dir"))
    assert "--episodes must be >= 2" in fails("--data", str(data), "--episodes", "1")
    assert "--horizon must be >= 0" in fails("--data", str(data), "--horizon", "-1")
    assert "--max-steps applies to freshly collected" in fails("--data", str(data), "--max-steps", "8")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    msg = fails("--data", str(data), checkpoint=str(bad))
    assert "--checkpoint" in msg and "bad.pt: not a loadable world model checkpoint" in msg
