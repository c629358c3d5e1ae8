"""``step`` never changes the state it was given: rollouts branched from one state are each exact.

Lookahead and MPC on a surrogate step one state several times with different currents; the
vector env restarts rows of the newest state in place (``scatter_state``). Neither may reach
a state that was stepped from, for any architecture.
"""

from __future__ import annotations

import copy

import pytest
import torch

from surrogates.models import ARCHITECTURES, build_model, scatter_state
from surrogates.models.features import N_INIT, N_INPUTS
from surrogates.models.transformer import KVCache

B, PREFIX, BRANCH = 3, 6, 8


def tiny_model(arch: str, tiny_configs: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, **tiny_configs[arch]).eval()
    with torch.no_grad():  # random weights everywhere (JEPA's readout starts at zero), so history matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def leaves(state) -> list[torch.Tensor]:
    """The tensors a state holds, in a fixed order (a KVCache: what it holds, not its whole store)."""
    if isinstance(state, dict):
        return [t for k in sorted(state) for t in leaves(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for s in state for t in leaves(s)]
    if isinstance(state, KVCache):
        return list(state.tensors())
    return [state]


def assert_same_state(a, b) -> None:
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def rollout(model, state, x):
    """Outputs ``(B, L, n_out)`` of stepping ``x`` ``(B, L, n_inputs)`` from ``state``, and the last state."""
    ys = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


def from_start(model, init, x):
    """Outputs of a fresh rollout of ``x`` from the initial state of ``init``."""
    return rollout(model, model.initial_state(x.shape[0], init), x)[0]


@torch.no_grad()
def after_prefix(arch, tiny_configs, init, prefix):
    """A tiny ``arch`` model, its state after ``prefix`` and a deep copy of that state."""
    model = tiny_model(arch, tiny_configs)
    _, state = rollout(model, model.initial_state(B, init), prefix)
    return model, state, copy.deepcopy(state)


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    init = torch.randn(B, N_INIT, generator=g)
    prefix = torch.randn(B, PREFIX, N_INPUTS, generator=g)
    a, b = torch.randn(2, B, BRANCH, N_INPUTS, generator=g)  # two different current histories after the prefix
    return init, prefix, a, b


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_two_branches_from_one_state_each_equal_a_fresh_rollout(arch, inputs, tiny_configs):
    init, prefix, a, b = inputs
    model, branch_point, before = after_prefix(arch, tiny_configs, init, prefix)
    with torch.no_grad():
        y_a, end_a = rollout(model, branch_point, a)
        y_b, _ = rollout(model, branch_point, b)
        y_a_again, _ = rollout(model, end_a, b[:, :2])  # stepping on from branch a after branch b was taken
        assert_same_state(branch_point, before)
        for branch, y in ((a, y_a), (b, y_b)):
            x = torch.cat([prefix, branch], 1)
            torch.testing.assert_close(y, from_start(model, init, x)[:, PREFIX:], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(y, model(x, init)[:, PREFIX:], atol=1e-5, rtol=1e-5)
        fresh = from_start(model, init, torch.cat([prefix, a, b[:, :2]], 1))
        torch.testing.assert_close(y_a_again, fresh[:, PREFIX + BRANCH:], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(y_a, y_b)  # the branches did differ


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_restarting_rows_of_a_later_state_leaves_the_earlier_one_intact(arch, inputs, tiny_configs):
    """What the vector env does at an auto-reset (``Surrogate.reset_rows`` -> ``scatter_state``, in place)."""
    init, prefix, a, _ = inputs
    model, state, before = after_prefix(arch, tiny_configs, init, prefix)
    with torch.no_grad():
        _, later = model.step(a[:, 0], state)
        rows = torch.tensor([0, 2])
        later = scatter_state(later, rows, model.initial_state(2, init[[2, 0]]))
        assert_same_state(state, before)
        # the restarted rows start over (from swapped initial conditions), row 1 carries on
        y, _ = rollout(model, later, a[:, 1:])
        full = from_start(model, init, torch.cat([prefix, a], 1))
        torch.testing.assert_close(y[1], full[1, PREFIX + 1:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(y[[0, 2]], from_start(model, init[[2, 0]], a[[0, 2], 1:]), atol=1e-5, rtol=1e-5)


def test_transformer_cache_grows_past_its_first_store_and_refuses_past_max_len(tiny_configs):
    model = tiny_model("transformer", tiny_configs)
    n = model.cfg.max_len
    x, init = torch.randn(2, n + 1, N_INPUTS), torch.randn(2, N_INIT)
    with torch.no_grad():
        y, state = rollout(model, model.initial_state(2, init), x[:, :n])  # many times KVCache.MIN_HEADROOM
        torch.testing.assert_close(y, model(x[:, :n], init), atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="max_len"):
            model.step(x[:, n], state)


def test_surrogate_reset_rows_of_a_later_state_leaves_the_earlier_one_intact(tiny_checkpoint):
    """The same at the physical level (``Surrogate`` states carry SOC, ambient and step counts too)."""
    import numpy as np

    from surrogates.models.surrogate import load_surrogate

    s = load_surrogate("nmc", arch=None, path=tiny_checkpoint)
    state = s.initial_state(np.array([0.1, 0.2]), np.array([298.15, 308.15]))
    _, later = s.step(state, np.array([-5.0, -5.0]))
    before = (state.soc.copy(), state.ambient.copy(), state.steps.copy())
    s.reset_rows(later, [0], 0.5, 283.15)
    for now, then in zip((state.soc, state.ambient, state.steps), before):
        np.testing.assert_array_equal(now, then)
    assert later.ambient[0] == 283.15 and later.steps[0] == 0 and later.soc[0] == 0.5
