"""Batched CEM (``CEM.plan_batch``): equality with single-problem runs, own minima, keep_still."""

import pytest
import torch

from vjepa2_ac.planners.base import ActionSpace
from vjepa2_ac.planners.cem import CEM, CEMConfig, shift_plans

E, H = 3, 2
# One quadratic minimum per problem, inside the ±0.05 xyz box (gripper within ±0.75).
TARGETS = torch.tensor(
    [
        [[0.02, -0.01, 0.03, 0, 0, 0, 0.5], [-0.03, 0.01, 0.0, 0, 0, 0, -0.4]],
        [[-0.04, 0.02, -0.01, 0, 0, 0, 0.0], [0.01, 0.03, -0.02, 0, 0, 0, 0.6]],
        [[0.0, -0.03, 0.02, 0, 0, 0, -0.5], [0.04, -0.02, 0.01, 0, 0, 0, 0.3]],
    ]
)  # [E, H, 7]


def batch_energy(actions: torch.Tensor) -> torch.Tensor:
    """``[E, S, H, 7] -> [E, S]``: squared distance to each problem's own target."""
    return ((actions - TARGETS[:, None]) ** 2).sum(dim=(-2, -1))


def single_energy(i: int):
    return lambda a: batch_energy(a[None].expand(E, *a.shape))[i]


def gens(seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(E)]


@pytest.mark.parametrize("keep_still", [False, True])
def test_plan_batch_equals_single_runs(keep_still):
    cem = CEM(CEMConfig(samples=60, iterations=8, topk=6, keep_still=keep_still, min_std=0.001))
    init = 0.01 * torch.ones(E, H, 7)
    batch = cem.plan_batch(batch_energy, E, H, init=init, generators=gens(5))
    for i, got in enumerate(batch):
        ref = cem.plan(single_energy(i), H, init=init[i], generator=torch.Generator().manual_seed(5 + i))
        # Same noise stream and the same refit code: bit-identical, not merely close.
        assert torch.equal(got.actions, ref.actions)
        assert torch.equal(got.best_actions, ref.best_actions)
        assert torch.equal(got.elites, ref.elites)
        assert got.energy == ref.energy and got.trace == ref.trace
        assert got.evaluations == ref.evaluations


def test_plan_batch_default_seeds_match_config_seed():
    cem = CEM(CEMConfig(samples=30, iterations=3, topk=4, seed=11))
    batch = cem.plan_batch(batch_energy, E, H)
    for i, got in enumerate(batch):
        ref = cem.plan(single_energy(i), H, generator=torch.Generator().manual_seed(11 + i))
        assert torch.equal(got.actions, ref.actions)


def test_plan_batch_finds_each_problems_minimum():
    cem = CEM(CEMConfig(samples=200, iterations=30, topk=20, momentum_std=0.5, gripper_round=0.0))
    batch = cem.plan_batch(batch_energy, E, H, score_plan=True)
    for i, got in enumerate(batch):
        err = (got.actions - TARGETS[i]).abs()
        assert float(err[:, :3].max()) < 5e-3, (i, got.actions)
        assert float(err[:, 6].max()) < 5e-2, (i, got.actions)
        # The other problems' targets are far from this plan.
        for j in range(E):
            if j != i:
                assert float((got.actions - TARGETS[j]).abs().max()) > 0.02
        assert got.plan_energy == pytest.approx(float(((got.actions - TARGETS[i]) ** 2).sum()), rel=1e-5)


def test_keep_still_zero_candidate_every_iteration():
    seen = []

    def fn(actions):  # [E, S, H, 7] -> [E, S]; zero is the minimum of problem 0 only
        seen.append(actions.clone())
        offset = torch.tensor([0.0, 0.04])[:, None]
        return ((actions[..., 0] - offset[..., None]) ** 2).sum(-1) + 0.0 * actions.sum((-2, -1))

    cfg = CEMConfig.mpc(samples=20, iterations=3, topk=4, keep_still=True)
    res = CEM(cfg).plan_batch(fn, 2, 1, init=torch.full((2, 1, 7), 0.03))
    assert len(seen) == 3
    for cand in seen:
        assert torch.equal(cand[:, 0], torch.zeros(2, 1, 7))  # candidate 0 of every problem
        assert not torch.equal(cand[:, 1], torch.zeros(2, 1, 7))
        assert torch.all(cand[..., 3:] == 0)  # rotation and (pinned) gripper stay 0
    # Problem 0's exact minimum is "stay": the zero candidate is its best sample.
    assert res[0].energy == 0.0 and torch.equal(res[0].best_actions, torch.zeros(1, 7))
    assert res[1].energy > 0.0
    # Without keep_still the zero sequence is (almost surely) never sampled exactly.
    seen.clear()
    CEM(CEMConfig.mpc(samples=20, iterations=3, topk=4, keep_still=False)).plan_batch(fn, 2, 1)
    assert all(not torch.equal(c[:, 0], torch.zeros(2, 1, 7)) for c in seen)


def test_min_std_floor_keeps_searching():
    cfg = CEMConfig(samples=20, iterations=40, topk=4, min_std=0.004, space=ActionSpace(fixed={6: 0.0}))
    res = CEM(cfg).plan_batch(batch_energy, E, 1)
    # With a 4 mm floor the last elites still spread out instead of collapsing onto one point.
    for r in res:
        assert float(r.elites[:, 0, :3].std(0).min()) > 1e-3


def test_plan_batch_bad_inputs():
    cem = CEM(CEMConfig(samples=10, iterations=1, topk=2))
    with pytest.raises(ValueError, match="init must have shape"):
        cem.plan_batch(batch_energy, E, H, init=torch.zeros(E, H + 1, 7))
    with pytest.raises(ValueError, match="generators"):
        cem.plan_batch(batch_energy, E, H, generators=gens(0)[:2])
    with pytest.raises(ValueError, match=r"expected \(3, 10\)"):
        cem.plan_batch(lambda a: batch_energy(a).T, E, H)
    with pytest.raises(ValueError, match="non-finite"):
        cem.plan_batch(lambda a: batch_energy(a) * float("nan"), E, H)
    with pytest.raises(ValueError, match="min_std"):
        CEMConfig(min_std=-1.0)


def test_shift_plans_zero_pads():
    plans = torch.arange(2 * 3 * 7, dtype=torch.float32).view(2, 3, 7)
    out = shift_plans(plans)
    assert torch.equal(out[:, :2], plans[:, 1:]) and torch.equal(out[:, 2], torch.zeros(2, 7))
    assert torch.equal(shift_plans(plans[:, :1]), torch.zeros(2, 1, 7))
