"""Planners on analytic energies: convergence, determinism, input validation."""

import pytest
import torch

from vjepa2_ac.planners.base import ActionSpace, NonFiniteEnergyError, shift_plan
from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner
from vjepa2_ac.planners.mppi import MPPI, MPPIConfig
from vjepa2_ac.planners.random_shooting import RandomShooting, RandomShootingConfig

TARGET = torch.tensor([[0.03, -0.02, 0.01, 0, 0, 0, 0.5], [-0.01, 0.04, 0.0, 0, 0, 0, -0.5]])
WEIGHTS = torch.tensor([1.0, 1, 1, 1, 1, 1, 0.01])


def quadratic(actions):
    # actions [S, H, 7] -> [S]; minimum 0 at TARGET (inside the default bounds)
    return (((actions - TARGET) ** 2) * WEIGHTS).sum((-1, -2))


def test_cem_finds_quadratic_minimum():
    res = CEM(CEMConfig(samples=200, iterations=30, gripper_round=0)).plan(quadratic, 2)
    assert res.actions.shape == (2, 7)
    assert torch.allclose(res.actions[:, :3], TARGET[:, :3], atol=5e-3)
    assert torch.allclose(res.actions[:, 6], TARGET[:, 6], atol=0.1)
    assert torch.all(res.actions[:, 3:6] == 0)  # rotation fixed at 0 (official)
    assert len(res.trace["best"]) == 30 and res.trace["elite_mean"][-1] < res.trace["elite_mean"][0] / 5
    assert res.elites.shape == (10, 2, 7) and torch.all(res.elite_energies[:-1] <= res.elite_energies[1:])


def test_cem_official_clipping_rounding_and_close_gripper():
    # Energy pushes far outside the bounds: the plan must sit on the bounds.
    far = torch.tensor([1.0, -1.0, 1.0, 0, 0, 0, 0.1])

    def energy(a):
        return ((a - far) ** 2).sum((-1, -2))

    res = CEM(CEMConfig(samples=100, iterations=20)).plan(energy, 3)
    signed = res.actions[:, :3] * torch.tensor([1.0, -1.0, 1.0])
    assert signed.max() <= 0.05 + 1e-6 and signed.min() > 0.035  # pushed onto the +-maxnorm bound
    assert torch.all(res.actions[:, 6] == 0)  # |g| ~ 0.1 < 0.25 -> rounded to 0
    seen = []

    def spy(a):
        seen.append(a.clone())
        return energy(a)

    CEM(CEMConfig(samples=50, iterations=2, space=ActionSpace(close_gripper=1))).plan(spy, 3)
    a = torch.cat(seen)
    assert torch.all(a[:, 1:, 6] == 1.0) and a[:, 0, 6].abs().max() <= 0.75
    assert a[..., :3].abs().max() <= 0.05 and torch.all(a[..., 3:6] == 0)


def test_cem_plans_rotation_when_asked():
    target = torch.tensor([0.0, 0, 0, 0.05, -0.05, 0.02, 0])

    def energy(a):
        return ((a - target) ** 2).sum((-1, -2))

    res = CEM(CEMConfig.paper(samples=200, iterations=15, space=ActionSpace(plan_rotation=True))).plan(
        energy, 1
    )
    assert torch.allclose(res.actions[0, 3:6], target[3:6], atol=5e-3)


@pytest.mark.parametrize(
    "planner",
    [
        MPPI(MPPIConfig(iterations=20)),
        GradientPlanner(GradientConfig(steps=60)),
        RandomShooting(RandomShootingConfig(samples=400)),
    ],
    ids=["mppi", "gradient", "random"],
)
def test_other_planners_improve_on_quadratic(planner):
    zero = float(quadratic(torch.zeros(1, 2, 7)))
    res = planner.plan(quadratic, 2)
    assert res.actions.shape == (2, 7)
    assert float(quadratic(res.actions[None])) < 0.5 * zero
    assert res.energy <= res.trace["best"][0] + 1e-12


def test_gradient_planner_reaches_minimum():
    res = GradientPlanner(GradientConfig(steps=100, lr=0.01)).plan(quadratic, 2)
    assert torch.allclose(res.actions[:, :3], TARGET[:, :3], atol=2e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CEM(CEMConfig(samples=64, iterations=3)),
        lambda: MPPI(MPPIConfig(samples=64, iterations=3)),
        lambda: GradientPlanner(GradientConfig(steps=3)),
        lambda: RandomShooting(RandomShootingConfig(samples=64)),
    ],
    ids=["cem", "mppi", "gradient", "random"],
)
def test_same_seed_same_plan(make):
    a = make().plan(quadratic, 2, generator=torch.Generator().manual_seed(7)).actions
    b = make().plan(quadratic, 2, generator=torch.Generator().manual_seed(7)).actions
    c = make().plan(quadratic, 2, generator=torch.Generator().manual_seed(8)).actions
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    "planner",
    [
        CEM(CEMConfig(samples=16, iterations=2, topk=4)),
        MPPI(MPPIConfig(samples=16, iterations=2)),
        GradientPlanner(GradientConfig(steps=2, restarts=2)),
        RandomShooting(RandomShootingConfig(samples=16)),
    ],
    ids=["cem", "mppi", "gradient", "random"],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_planners_refuse_non_finite_energies(planner, bad):
    def energy(a):
        e = quadratic(a)
        return torch.where(torch.arange(a.shape[0]) == 1, torch.full_like(e, bad), e)

    with pytest.raises(NonFiniteEnergyError, match="non-finite energies"):
        planner.plan(energy, 2)


def test_planner_rejects_wrong_energy_shape_and_bad_config():
    with pytest.raises(ValueError, match=r"expected \(16,\)"):
        CEM(CEMConfig(samples=16, iterations=1, topk=4)).plan(lambda a: a.sum(-1), 2)
    with pytest.raises(ValueError, match="topk"):
        CEMConfig(samples=5, topk=10)
    with pytest.raises(ValueError, match="maxnorm"):
        ActionSpace(maxnorm=-1.0)
    with pytest.raises(ValueError, match="init must have shape"):
        CEM().plan(quadratic, 2, init=torch.zeros(3, 7))


def test_warm_start_and_shift():
    plan = torch.arange(21, dtype=torch.float32).reshape(3, 7)
    shifted = shift_plan(plan, 1)
    assert torch.equal(shifted[:2], plan[1:]) and torch.equal(shifted[2], plan[2])
    # A warm start at the optimum keeps CEM there with a tight std.
    res = CEM(CEMConfig.paper(samples=64, iterations=2, gripper_round=0)).plan(quadratic, 2, init=TARGET)
    assert torch.allclose(res.actions[:, :3], TARGET[:, :3], atol=0.01)
