"""Static-shape rollout: the preallocated, in-place filled KVBuffer against the concatenated KVCache, the
float32 full-recompute reference, seeded CEM plans, and device/dtype plumbing (run on CPU)."""

from __future__ import annotations

import pytest
import torch
from test_planners_world_model import tiny_world_model

from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.energy import WorldModelEnergy, bf16_supported
from vjepa2_ac.predictor import KVBuffer


@pytest.fixture(scope="module")
def wm():
    return tiny_world_model(seed=3)


@pytest.fixture(scope="module")
def problem(wm):
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        z = wm.encode(torch.randn(1, 3, 6, 32, 32, generator=g))  # [1, 3, 16, 48]
        goal = wm.encode_image(torch.randn(1, 3, 32, 32, generator=g))[0, 0]
    states = torch.tensor([[[0.5, 0.0, 0.2, 3.1, 0.1, -1.9, 0.0]]]).repeat(1, 3, 1)
    states[:, 1:, 0] += torch.tensor([0.01, 0.02])
    past = torch.tensor([[[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]]).repeat(1, 2, 1)
    actions = (torch.rand(5, 4, 7, generator=g) - 0.5) * 0.1
    return z, states, goal, past, actions


@pytest.mark.parametrize("context_steps", [1, 3])
def test_buffered_rollout_equals_concatenated_cache_and_full_recompute(wm, problem, context_steps):
    z, states, _, past, actions = problem
    args = (z[:, :context_steps], states[:, :context_steps], actions)
    kw = {"past_actions": past[:, : context_steps - 1]} if context_steps > 1 else {}
    with torch.no_grad():
        z_buf, s_buf = wm.rollout(*args, **kw)
        z_cat, s_cat = wm.rollout(*args, static_kv=False, **kw)
        z_full, _ = wm.rollout(*args, use_cache=False, **kw)
    # Same ops on the same values: the buffer only changes where keys/values are stored.
    assert torch.equal(z_buf, z_cat) and torch.equal(s_buf, s_cat)
    assert (z_buf - z_full).abs().max() < 1e-4


def test_buffered_energy_within_1e_4_of_full_recompute(wm, problem):
    z, states, goal, _, actions = problem
    fast = WorldModelEnergy(wm, z[:, :1], states[:, :1], goal)
    ref = WorldModelEnergy(wm, z[:, :1], states[:, :1], goal, use_cache=False)
    with torch.no_grad():
        e_fast, e_ref = fast(actions), ref(actions)
    assert ((e_fast - e_ref).abs() / e_ref.abs()).max() < 1e-4


def test_seeded_float32_plans_are_identical(wm, problem):
    z, states, goal, _, _ = problem
    cfg = CEMConfig.paper(samples=12, iterations=2, topk=3)

    def plan(static_kv):
        energy = WorldModelEnergy(wm, z[:, :1], states[:, :1], goal, static_kv=static_kv)
        with torch.no_grad():
            return CEM(cfg).plan(energy, 2, generator=torch.Generator().manual_seed(7)).actions

    first = plan(True)
    assert torch.equal(first, plan(True)) and torch.equal(first, plan(False))


def test_buffer_under_bf16_autocast(wm, problem):
    z, states, goal, _, actions = problem
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z_buf, _ = wm.rollout(z[:, :1], states[:, :1], actions[:2, :2])
        z_cat, _ = wm.rollout(z[:, :1], states[:, :1], actions[:2, :2], static_kv=False)
    assert z_buf.dtype == z_cat.dtype
    assert torch.equal(z_buf, z_cat)


def test_kv_buffer_placement_and_errors(wm, problem):
    z, states, _, _, actions = problem
    p = wm.predictor
    n = p.cond_tokens + p.tokens_per_frame
    buf = p.kv_buffer(2, 3, torch.float32, torch.device("cpu"))
    assert isinstance(buf, KVBuffer) and buf.capacity == 3 and buf.steps == 0
    assert buf.keys[0].shape == (2, p.num_heads, 3 * n, p.predictor_embed_dim // p.num_heads)
    assert all(k.device.type == "cpu" and k.dtype == torch.float32 for k in buf.keys + buf.values)
    x, a, s = z[:, 0], actions[:2, :1], states[:, :1]
    with torch.no_grad():
        _, same = p.forward_steps(x, a, s, cache=buf)
        assert same is buf and buf.steps == 1
        with pytest.raises(ValueError, match="buffer holds 3 steps, 1 filled, 3 more"):
            p.forward_steps(z[:, :3].flatten(1, 2), actions[:2, :3], states, cache=buf)
        wrong = p.kv_buffer(2, 2, torch.float64, "cpu")
        with pytest.raises(ValueError, match="buffer dtype torch.float64 != compute dtype torch.float32"):
            p.forward_steps(x, a, s, cache=wrong)
    with pytest.raises(ValueError, match="cannot carry gradients"):
        p.forward_steps(x, a, s, cache=p.kv_buffer(2, 2, torch.float32, "cpu"))
    with pytest.raises(ValueError, match="capacity 99 must be in"):
        p.kv_buffer(2, 99, torch.float32, "cpu")


def test_gradients_still_flow_through_rollout(wm, problem):
    z, states, goal, _, actions = problem
    a = actions[:2, :2].clone().requires_grad_(True)
    WorldModelEnergy(wm, z[:, :1], states[:, :1], goal)(a).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_bf16_auto_resolves_per_device(wm, problem):
    z, states, goal, _, _ = problem
    energy = WorldModelEnergy(wm, z[:, :1], states[:, :1], goal, bf16="auto")
    assert energy.bf16 is bf16_supported("cpu")
    # Without a GPU the CUDA branch must answer, not raise.
    assert bf16_supported("cuda") is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    with pytest.raises(ValueError, match="bf16 must be True, False or 'auto'"):
        WorldModelEnergy(wm, z[:, :1], states[:, :1], goal, bf16="yes")
