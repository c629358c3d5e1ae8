import pytest
import torch
import torch.nn as nn

from surrogates.models.jepa import JEPA, JEPAConfig

TINY = dict(d_latent=16, n_layer=2, d_action=8, d_embed=16, d_hidden=32, horizon=8, n_cuts=4, reg_samples=256)


def _model(seed=0, **overrides) -> JEPA:
    torch.manual_seed(seed)
    model = JEPA(JEPAConfig(**{**TINY, **overrides}))
    nn.init.normal_(model.readout[-1].weight, 0.0, 0.5)  # the zero-initialised readout would make y == 0
    return model


def _data(B=3, L=25, seed=1):
    """Random inputs and a causal synthetic cell: outputs are first-order filters of the C-rate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, 4, generator=g)
    x[..., 0] = torch.cumsum(0.3 * torch.randn(B, L, generator=g), dim=1).clamp(-2, 2)  # C-rate walk
    init = torch.randn(B, 3, generator=g)
    v = torch.zeros(B)
    heat = init[:, 1].clone()
    ys = []
    for t in range(L):
        c = x[:, t, 0]
        v = 0.8 * v + 0.5 * c
        heat = 0.9 * heat + 0.2 * c**2
        ys.append(torch.stack([v, heat, -v, v.abs(), heat + 0.1, -v - 0.2], dim=-1))
    y = torch.stack(ys, dim=1)  # (B, L, 6)
    return x, init, (y - y.mean((0, 1))) / y.std((0, 1))


def test_step_rollout_equals_forward():
    torch.set_num_threads(1)
    model = _model().eval()
    x, init, _ = _data(B=3, L=25)
    with torch.no_grad():
        y = model(x, init)
        state = model.initial_state(3, init)
        steps = []
        for t in range(x.shape[1]):
            y_t, state = model.step(x[:, t], state)
            steps.append(y_t)
    assert y.shape == (3, 25, 6) and y.abs().max() > 1e-2
    assert state["h"].shape[0] == 3  # batch first, so a vector env can reset rows
    torch.testing.assert_close(torch.stack(steps, dim=1), y, atol=1e-5, rtol=1e-5)


def test_per_row_reset_with_where():
    model = _model().eval()
    x, init, _ = _data(B=3, L=12)
    with torch.no_grad():
        state = model.initial_state(3, init)
        for t in range(5):
            _, state = model.step(x[:, t], state)
        fresh = model.initial_state(3, init)
        reset = torch.tensor([False, True, False])
        state = {k: torch.where(reset[:, None, None], fresh[k], v) for k, v in state.items()}
        y_t, _ = model.step(x[:, 0], state)
        torch.testing.assert_close(y_t[1], model(x[1:2, :1], init[1:2])[0, 0], atol=1e-5, rtol=1e-5)


def test_causal():
    model = _model().eval()
    x, init, _ = _data(B=2, L=25)
    x2 = x.clone()
    x2[:, 10] += 1.0
    with torch.no_grad():
        y, y2 = model(x, init), model(x2, init)
    torch.testing.assert_close(y[:, :10], y2[:, :10], atol=0.0, rtol=0.0)
    assert (y[:, 10:] - y2[:, 10:]).abs().max() > 1e-4


def test_pretrain_loss_backprops_and_ema_moves_target():
    model = _model()
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    x, init, y = _data(B=4, L=30)
    mask = torch.ones(4, 30, dtype=torch.bool)
    mask[1, 20:] = False  # a shorter sequence, NaN-padded
    mask[2, 1:] = False  # too short for any context -> target window
    y[~mask] = float("nan")
    loss, parts = model.pretrain_loss(x, init, y, mask, return_parts=True)
    assert loss.ndim == 0 and torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    loss.backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    for name in ("context_encoder", "predictor", "init_encoder", "bridge", "head"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()

    def gap():
        pairs = zip(model.target_encoder.parameters(), model.context_encoder.parameters())
        return sum((t - c).pow(2).sum() for t, c in pairs)

    before = gap()
    assert before > 0
    model.ema_update(0.5)
    torch.testing.assert_close(gap(), 0.25 * before)  # the gap halves, its square quarters
    assert model.ema_momentum(0.0) == model.cfg.ema_start and model.ema_momentum(1.0) == model.cfg.ema_end


def test_readout_parameters_are_the_readout():
    model = _model()
    ids = {id(p) for p in model.readout_parameters()}
    assert ids == {id(p) for p in model.readout.parameters()} and len(ids) == 4


@pytest.mark.slow
def test_tiny_model_learns_with_pretrain_then_supervised():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = JEPA(JEPAConfig(**TINY))
    x, init, y = _data(B=8, L=40, seed=3)
    mask = torch.ones(8, 40, dtype=torch.bool)
    params = [p for p in model.parameters() if p.requires_grad]

    opt = torch.optim.AdamW(params, lr=3e-3)
    pre = []
    for i in range(60):
        loss, parts = model.pretrain_loss(x, init, y, mask, return_parts=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.ema_update(model.ema_momentum(i / 60))
        pre.append(float(parts["predict"] + parts["anchor"]))
    assert sum(pre[-5:]) < 0.7 * sum(pre[:5])

    def supervised():
        return (model(x, init) - y).pow(2).mean()

    def evaluate():
        with torch.no_grad():
            return float(supervised())

    start = evaluate()
    opt = torch.optim.AdamW(model.readout_parameters(), lr=1e-2)
    for _ in range(40):
        loss = supervised()
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe = evaluate()
    opt = torch.optim.AdamW(params, lr=5e-3)
    for _ in range(150):
        loss = supervised()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = evaluate()
    assert probe < start and final < 0.1 * start, (start, probe, final)
