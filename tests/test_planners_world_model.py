"""World-model energy, rollout parity, MPC loop, baselines and landscapes."""

import numpy as np
import pytest
import torch

from vjepa2_ac.encoder import build_encoder
from vjepa2_ac.planners.base import NonFiniteEnergyError
from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.energy import WorldModelEnergy, latent_distance
from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner
from vjepa2_ac.planners.landscape import energy_landscape, plot_landscape
from vjepa2_ac.planners.reference import NaiveWorldModel
from vjepa2_ac.predictor import build_predictor
from vjepa2_ac.world_model import WorldModel


def tiny_world_model(seed=0, embed=48, img=32):
    torch.manual_seed(seed)
    enc = build_encoder(
        img_size=img,
        patch_size=8,
        num_frames=2,
        tubelet_size=2,
        embed_dim=embed,
        depth=1,
        num_heads=2,
        use_rope=True,
    )
    pred = build_predictor(
        img_size=img,
        patch_size=8,
        num_frames=16,
        tubelet_size=2,
        embed_dim=embed,
        predictor_embed_dim=48,
        depth=2,
        num_heads=4,
    )
    return WorldModel(enc, pred).eval()


@pytest.fixture(scope="module")
def wm():
    return tiny_world_model()


@pytest.fixture(scope="module")
def problem(wm):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z = wm.encode(torch.randn(1, 3, 4, 32, 32, generator=g))  # [1, 2, 16, 48]
        goal = wm.encode_image(torch.randn(1, 3, 32, 32, generator=g))[0, 0]
    states = torch.tensor([[[0.5, 0.0, 0.2, 3.1, 0.1, -1.9, 0.0], [0.52, 0.01, 0.21, 3.1, 0.1, -1.9, 0.0]]])
    past = torch.tensor([[[0.02, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0]]])
    actions = (torch.rand(6, 3, 7, generator=g) - 0.5) * 0.1
    return z, states, goal, past, actions


@pytest.mark.parametrize("context_steps", [1, 2])
def test_cached_and_uncached_rollouts_agree(wm, problem, context_steps):
    z, states, goal, past, actions = problem
    kw = dict(z_context=z[:, :context_steps], states_context=states[:, :context_steps], z_goal=goal)
    if context_steps == 2:
        kw["past_actions"] = past
    fast = WorldModelEnergy(wm, use_cache=True, **kw)
    slow = WorldModelEnergy(wm, use_cache=False, **kw)
    with torch.no_grad():
        zf, sf = fast.rollout(actions)
        zs, ss = slow.rollout(actions)
    assert zf.shape == (6, 3, 16, 48) and sf.shape == (6, 4, 7)
    assert (zf - zs).abs().max() < 1e-4
    assert torch.allclose(sf, ss)
    assert (fast(actions) - slow(actions)).abs().max() < 1e-5
    # "all" steps and l2 variants are consistent with the rollout
    e_all = WorldModelEnergy(wm, steps="all", distance="l2", **kw)(actions)
    assert torch.allclose(e_all, latent_distance(zf, goal, "l2").mean(1), atol=1e-5)


def test_chunked_energy_matches_and_bf16_error_is_small(wm, problem):
    z, states, goal, _, actions = problem
    kw = dict(z_context=z[:, :1], states_context=states[:, :1], z_goal=goal)
    ref = WorldModelEnergy(wm, **kw)(actions)
    assert torch.allclose(WorldModelEnergy(wm, chunk_size=4, **kw)(actions), ref, atol=1e-6)
    bf16 = WorldModelEnergy(wm, bf16=True, **kw)(actions)
    rel = ((bf16 - ref).abs() / ref).max()
    assert rel < 0.05, f"bf16 energy relative error {rel:.4f}"
    # refine: the lowest bf16 energies are re-evaluated in float32 (context of 2 steps: fp32 cache too)
    kw2 = dict(z_context=z, states_context=states, z_goal=goal, past_actions=problem[3])
    ref2 = WorldModelEnergy(wm, **kw2)(actions)
    refined = WorldModelEnergy(wm, bf16=True, refine=3, **kw2)(actions)
    best = torch.topk(WorldModelEnergy(wm, bf16=True, **kw2)(actions), 3, largest=False).indices
    assert torch.allclose(refined[best], ref2[best], atol=1e-5)
    assert torch.allclose(WorldModelEnergy(wm, bf16=True, refine=6, **kw2)(actions), ref2, atol=1e-5)


def test_rollout_parity_fixture_through_energy_path(parity_dir):
    fx = torch.load(parity_dir / "ac_predictor_tiny.pt", weights_only=True)
    pred = build_predictor(**fx["kwargs"])
    pred.load_state_dict(fx["state_dict"])
    enc = build_encoder(
        img_size=64,
        patch_size=8,
        num_frames=2,
        tubelet_size=2,
        embed_dim=96,
        depth=1,
        num_heads=4,
        use_rope=True,
    )
    wm = WorldModel(enc, pred).eval()
    x, states, acts = fx["inputs"]["x"], fx["inputs"]["states"], fx["inputs"]["rollout_actions"]
    reps, poses = fx["outputs"]["rollout_reps"], fx["outputs"]["rollout_poses"]  # [2, 3*64, 96], [2, 3, 7]
    goal = torch.zeros(64, 96)
    naive = NaiveWorldModel(pred)
    for b in range(2):
        ctx = x[b : b + 1, :64].reshape(1, 1, 64, 96)
        want = reps[b, 64:].reshape(1, 2, 64, 96)
        for use_cache in (True, False):
            energy = WorldModelEnergy(wm, ctx, states[b, :1], goal, use_cache=use_cache)
            with torch.no_grad():
                z_pred, s_pred = energy.rollout(acts[b : b + 1])
                e = energy(acts[b : b + 1])
            assert (z_pred - want).abs().max() < 1e-4
            assert (s_pred - poses[b : b + 1]).abs().max() < 1e-5
            assert torch.allclose(e, want[:, -1].abs().mean((-1, -2)), atol=1e-5)
        z_naive, p_naive = naive.rollout(ctx, states[b : b + 1, :1], acts[b : b + 1])
        assert (z_naive - want).abs().max() < 1e-4 and (p_naive - poses[b : b + 1]).abs().max() < 1e-5


def test_cem_and_gradient_through_world_model(wm, problem):
    z, states, _, _, _ = problem
    target = torch.tensor([[0.03, -0.02, 0.01, 0, 0, 0, 0.0]])
    energy0 = WorldModelEnergy(wm, z[:, :1], states[:, :1], torch.zeros(16, 48))
    with torch.no_grad():
        goal = energy0.rollout(target[None])[0][0, -1]  # the goal is what the target action produces
    energy = WorldModelEnergy(wm, z[:, :1], states[:, :1], goal)
    cem = CEM(CEMConfig.paper(samples=32, iterations=4, topk=8))
    res_a = cem.plan(energy, 1, generator=torch.Generator().manual_seed(3))
    res_b = cem.plan(energy, 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(res_a.actions, res_b.actions)
    assert res_a.trace["elite_mean"][-1] < res_a.trace["elite_mean"][0]
    grad = GradientPlanner(GradientConfig(steps=8, restarts=2, lr=0.005)).plan(energy, 1)
    assert grad.energy < grad.trace["best"][0]
    nan_goal = torch.full((16, 48), float("nan"))
    with pytest.raises(NonFiniteEnergyError):
        CEM(CEMConfig(samples=8, iterations=1, topk=2)).plan(
            WorldModelEnergy(wm, z[:, :1], states[:, :1], nan_goal), 1
        )


def test_energy_rejects_bad_shapes(wm, problem):
    z, states, goal, _, _ = problem
    with pytest.raises(ValueError, match="past_actions"):
        WorldModelEnergy(wm, z, states, goal)
    with pytest.raises(ValueError, match="z_goal"):
        WorldModelEnergy(wm, z[:, :1], states[:, :1], torch.zeros(5, 48))
    with pytest.raises(ValueError, match="distance"):
        WorldModelEnergy(wm, z[:, :1], states[:, :1], goal, distance="cos")


def test_landscape_minimum_at_reference(tmp_path):
    ref = torch.tensor([0.0375, -0.0375, 0.0, 0, 0, 0, 0])

    def energy(a):
        return (a[:, 0] - ref).abs().sum(-1)

    land = energy_landscape(energy, reference=ref)
    assert land.energies.shape == (5, 5, 5) and land.best_error < 1e-6
    assert land.to_dict()["best_energy"] == pytest.approx(0.0, abs=1e-7)
    plot_landscape(land, tmp_path / "l.png")
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_simulated_candidates_leave_the_episode_untouched_and_the_oracle_beats_random():
    """The oracle simulates token steps from a snapshot and restores it; on reach it gets closer than
    random actions within a few planned steps."""
    import gymnasium as gym

    import vjepa2_ac.envs  # noqa: F401  (registers the ids)
    from vjepa2_ac.planners.lockstep import OracleCEM, RandomPolicy, SubGoal, run_lockstep, simulate_tokens

    env = gym.make("vjepa2_ac/Reach-v0", image_size=32)
    obs, info = env.reset(seed=3)
    qpos = env.unwrapped.data.qpos.copy()
    frames = np.stack([obs["image"]] * 2)
    cand = np.zeros((3, 2, 7), np.float32)
    cand[1, :, :3] = np.clip(info["goal_pos"] - obs["state"][:3], -0.05, 0.05)
    cand[2, :, :3] = -cand[1, :, :3]
    outs, d1 = simulate_tokens(env, cand, frames, obs["state"], obs["state"], render=True)
    _, d2 = simulate_tokens(env, cand, frames, obs["state"], obs["state"], render=False)
    assert d1 == d2 and np.array_equal(env.unwrapped.data.qpos, qpos)  # planning changes nothing
    assert d1[1] < d1[0] < d1[2]  # moving towards the goal lowers the simulated distance
    assert outs[0].shape == (2, 32, 32, 3)
    envs = [gym.make("vjepa2_ac/Reach-v0", image_size=32) for _ in range(2)]
    starts = [e.reset(seed=3) for e in envs]
    goals = [[SubGoal(e.unwrapped.goal_image())] for e in envs]
    cfg = CEMConfig.mpc(maxnorm=0.08, samples=24, iterations=2, topk=4)
    oracle = OracleCEM(None, cfg, 1, "distance", envs[:1])
    (tr,) = run_lockstep(oracle, envs[:1], [0], starts[:1], goals[:1], 5, 2)
    (rnd,) = run_lockstep(RandomPolicy(0.08), envs[1:], [0], starts[1:], goals[1:], 5, 2)
    assert tr.distance[-1] < info["distance"] - 0.1 and tr.distance[-1] < rnd.distance[-1]
    assert len(tr.distance) == 11 and tr.steps == 5  # 5 token steps of 2 control steps


class _GoalSpy:
    """A lockstep policy that plans zero actions and records the goal images each episode is given (as
    the first pixel's value)."""

    def __init__(self):
        self.seen = []
        spy = self

        class Goals:
            def set(self, episodes, images):
                spy.seen.append((list(episodes), [int(im[0, 0, 0]) for im in images]))

        self.goals = Goals()

    def reset(self, seeds):
        pass

    def act(self, active, tracker):
        return np.zeros((len(active), 7), np.float32), np.zeros(len(active)), None


def test_lockstep_switches_subgoals_after_their_steps():
    """Each episode pursues its sub-goals in order for their number of steps; the last until the end."""
    import gymnasium as gym

    import vjepa2_ac.envs  # noqa: F401
    from vjepa2_ac.planners.lockstep import SubGoal, run_lockstep

    envs = [gym.make("vjepa2_ac/Reach-v0", image_size=16) for _ in range(2)]
    starts = [e.reset(seed=i) for i, e in enumerate(envs)]
    img = [np.full((16, 16, 3), v, np.uint8) for v in (1, 2, 3)]
    goals = [[SubGoal(img[0], 2), SubGoal(img[1], 1), SubGoal(img[2])], [SubGoal(img[2])]]
    spy = _GoalSpy()
    traces = run_lockstep(spy, envs, [0, 1], starts, goals, 5, 1)
    assert spy.seen == [([0, 1], [1, 3]), ([0], [2]), ([0], [3])]
    assert traces[0].subgoal == [0, 0, 1, 2, 2] and traces[1].subgoal == [0] * 5


def test_lockstep_redraws_subgoals_every_n_steps():
    """With a redraw callback, every N-th token step replaces the episode's sub-goals with fresh ones
    (given the current observation and the control steps left) and pursues the first of them at once."""
    import gymnasium as gym

    import vjepa2_ac.envs  # noqa: F401
    from vjepa2_ac.planners.lockstep import SubGoal, run_lockstep

    env = gym.make("vjepa2_ac/Reach-v0", image_size=16)
    start = env.reset(seed=0)
    img = [np.full((16, 16, 3), v, np.uint8) for v in range(10)]
    calls = []

    def redraw(i, obs, info, left):
        calls.append((i, left, obs["image"].shape, "distance" in info))
        return [SubGoal(img[len(calls) + 4], 5), SubGoal(img[9])]

    goals = [[SubGoal(img[1], 1), SubGoal(img[2], 1), SubGoal(img[3])]]
    spy = _GoalSpy()
    (tr,) = run_lockstep(spy, [env], [0], [start], goals, 7, 2, redraw=redraw, redraw_every=3)
    # Steps 0-2 follow the drawn schedule; after steps 2 and 5 (12 and 6 control steps left) it is redrawn.
    assert calls == [(0, 8, (16, 16, 3), True), (0, 2, (16, 16, 3), True)]
    assert spy.seen == [([0], [1]), ([0], [2]), ([0], [3]), ([0], [5]), ([0], [6])]
    assert tr.subgoal == [0, 1, 2, 0, 0, 0, 0]
    assert [g.image[0, 0, 0] for g in goals[0]] == [1, 2, 3]  # the caller's list is left as given
    with pytest.raises(ValueError, match="redraw_every"):
        run_lockstep(spy, [env], [0], [start], goals, 2, 2, redraw_every=2)
