"""Surrogates: the causal-operator protocol for every architecture, training, checkpoints, PyBaMM."""

import numpy as np
import pytest
import torch

from surrogates.common.channels import PYBAMM_VARIABLES
from surrogates.data.generate import DatagenConfig, generate
from surrogates.models.features import MODEL_CHANNELS, N_INIT, N_INPUTS, Featurizer
from surrogates.models import ARCHITECTURES, build_model, scatter_state
from surrogates.data.protocols import ProtocolConfig
from surrogates.models.surrogate import CheckpointError, checkpoint_path, load_surrogate, save_checkpoint
from surrogates.training.surrogate import TrainConfig, train

TINY = {
    "transformer": {"d_model": 16, "n_layer": 2, "n_head": 2, "mlp_hidden": 32, "max_len": 64},
    "mamba": {"d_model": 16, "n_layer": 2, "d_state": 4},
    "jepa": {"d_latent": 16, "n_layer": 1, "d_action": 8, "d_embed": 8, "d_hidden": 16, "horizon": 4, "n_cuts": 2},
}


def _randomise(model):
    # Untrained readouts can start at zero; random weights make the equality tests mean something.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def featurizer():
    return Featurizer.from_dfn("nmc", dt=10.0, points=21)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_step_rollout_equals_forward(arch):
    torch.manual_seed(0)
    model = _randomise(build_model(arch, **TINY[arch])).eval()
    x, init = torch.randn(3, 20, N_INPUTS), torch.randn(3, N_INIT)
    with torch.no_grad():
        y = model(x, init)
        state = model.initial_state(3, init)
        steps = []
        for t in range(20):
            y_t, state = model.step(x[:, t], state)
            steps.append(y_t)
    assert y.shape == (3, 20, len(MODEL_CHANNELS))
    torch.testing.assert_close(torch.stack(steps, 1), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_causal(arch):
    torch.manual_seed(0)
    model = _randomise(build_model(arch, **TINY[arch])).eval()
    x, init = torch.randn(2, 16, N_INPUTS), torch.randn(2, N_INIT)
    x2 = x.clone()
    x2[:, 9:] += 1.0
    with torch.no_grad():
        a, b = model(x, init), model(x2, init)
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-4


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_tiny_model_overfits_a_tiny_batch(arch):
    torch.manual_seed(0)
    model = build_model(arch, **TINY[arch])
    x, init = torch.randn(4, 12, N_INPUTS), torch.randn(4, N_INIT)
    target = torch.cumsum(x[..., :1], dim=1).repeat(1, 1, len(MODEL_CHANNELS)) * 0.3 + init[:, None, :1]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = ((model(x, init) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_scatter_state_replaces_rows_only():
    model = _randomise(build_model("mamba", **TINY["mamba"])).eval()
    init = torch.randn(3, N_INIT)
    with torch.no_grad():
        a = model.initial_state(3, init)
        _, a = model.step(torch.randn(3, N_INPUTS), a)
        kept = a["ssm"][0][1].clone()
        b = model.initial_state(2, init[[0, 2]])
        merged = scatter_state(a, torch.tensor([0, 2]), b)
    torch.testing.assert_close(merged["ssm"][0][0], b["ssm"][0][0])
    torch.testing.assert_close(merged["ssm"][0][2], b["ssm"][0][1])
    torch.testing.assert_close(merged["ssm"][0][1], kept)


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, featurizer):
    path = tmp_path_factory.mktemp("ckpt") / "nmc-mamba.pt"
    torch.manual_seed(0)
    save_checkpoint(path, _randomise(build_model("mamba", **TINY["mamba"])), featurizer, {"note": "test"})
    return path


def test_checkpoint_round_trip_and_stepping(tiny_checkpoint):
    s = load_surrogate("nmc", "mamba", path=tiny_checkpoint)
    current = np.stack([np.full(15, -5.0), np.r_[np.full(8, -10.0), np.zeros(7)]])
    out = s.simulate(current, [0.2, 0.5], [298.15, 308.15], dt=10.0)
    assert set(MODEL_CHANNELS) | {"soc"} <= set(out) and out["voltage"].shape == (2, 15)
    # coulomb counting: 5 A for 10 s on a 5 Ah cell
    assert out["soc"][0, 0] == pytest.approx(0.2 + 5 * 10 / 3600 / s.capacity_ah)
    again = load_surrogate("nmc", "mamba", path=tiny_checkpoint).simulate(current, [0.2, 0.5], [298.15, 308.15])
    np.testing.assert_array_equal(out["voltage"], again["voltage"])
    # stepping a batch, with a reset of one row half way, equals whole-sequence simulation
    state = s.initial_state(np.array([0.2, 0.9]), np.array([298.15, 298.15]))
    for k in range(5):
        _, state = s.step(state, np.array([current[0, k], -1.0]))
    state = s.reset_rows(state, np.array([False, True]), 0.5, 308.15)
    for k in range(15):
        o, state = s.step(state, np.array([current[0, k + 5] if k + 5 < 15 else -5.0, current[1, k]]))
        assert o["voltage"][1] == pytest.approx(out["voltage"][1, k], abs=1e-5)


def test_checkpoint_refusals(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="holds a mamba surrogate, not transformer"):
        load_surrogate("nmc", "transformer", path=tiny_checkpoint)
    with pytest.raises(CheckpointError, match="trained on nmc data, not lfp"):
        load_surrogate("lfp", "mamba", path=tiny_checkpoint)
    with pytest.raises(CheckpointError, match="dt=10.0 s, not dt=30"):
        load_surrogate("nmc", "mamba", path=tiny_checkpoint, dt=30)
    s = load_surrogate("nmc", "mamba", path=tiny_checkpoint)
    with pytest.raises(ValueError, match="trained for dt=10.0 s, not dt=5"):
        s.simulate(np.zeros(3), 0.5, 298.15, dt=5)
    with pytest.raises(ValueError, match="unknown architecture"):
        load_surrogate("nmc", "lstm")
    with pytest.raises(ValueError, match="unknown chemistry"):
        load_surrogate("nca", "mamba")
    with pytest.raises(ValueError, match="kelvin"):
        s.simulate(np.zeros(3), 0.5, 25.0)
    with pytest.raises(ValueError, match="NaN"):
        s.simulate(np.array([0.0, np.nan]), 0.5, 298.15)


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    generate(DatagenConfig(num_sequences=12, shard_size=6, seed=3, protocols=ProtocolConfig(max_duration_s=300.0)),
             out, workers=1, progress=False)
    return out


def _tiny_train_config(data, out, arch="mamba", **kw):
    return TrainConfig(arch=arch, data=str(data), out=str(out), batch_size=4, max_epochs=2, val_fraction=0.25,
                       test_fraction=0.25, holdout_family="", warmup_steps=2, threads=1, progress=False,
                       model=TINY[arch], **kw)


@pytest.mark.slow
def test_train_writes_a_loadable_checkpoint_and_resumes(tiny_data, tmp_path):
    cfg = _tiny_train_config(tiny_data, tmp_path / "run")
    summary = train(cfg)
    s = load_surrogate("nmc", "mamba", path=summary["best"])
    meta = s.meta
    assert meta["data"]["fingerprint"] and meta["dt"] == 10.0 and "voltage_mae_mV" in meta["test"]["test"]
    for name in ("last.pt", "best.pt", "config.json", "history.json"):
        assert (tmp_path / "run" / name).exists(), name
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    # resume: a longer run picks up at epoch 2 and the same config file is refused if changed
    cfg.max_epochs = 3
    with pytest.raises(ValueError, match="other settings"):
        train(cfg)


def test_training_is_reproducible(tiny_data, tmp_path):
    a = train(_tiny_train_config(tiny_data, tmp_path / "a", max_sequences=8))
    b = train(_tiny_train_config(tiny_data, tmp_path / "b", max_sequences=8))
    ta, tb = torch.load(a["best"], weights_only=True), torch.load(b["best"], weights_only=True)
    for k in ta["state_dict"]:
        torch.testing.assert_close(ta["state_dict"][k], tb["state_dict"][k], rtol=0, atol=0)


def test_jepa_trains_through_its_phases(tiny_data, tmp_path):
    cfg = _tiny_train_config(tiny_data, tmp_path / "j", arch="jepa", pretrain_epochs=1,
                             readout_epochs=1, max_sequences=8)
    summary = train(cfg)
    assert "jepa_readout_only_validation" in summary["meta"]


# --------------------------------------------------------------------------- against PyBaMM
@pytest.fixture(scope="module")
def fresh_dfn_charge():
    """A 1C charge from 20 % for 15 min, then 5 min rest, solved by plain PyBaMM (never in any training set)."""
    from surrogates.physics.chemistry import get_chemistry
    from surrogates.physics.reference import solve_piecewise

    one_c = get_chemistry("nmc").capacity_ah
    current = np.r_[np.full(90, -one_c), np.zeros(30)]
    sol = solve_piecewise("nmc", current, 10.0, 0.2, 298.15)
    t = 10.0 * np.arange(1, len(current) + 1)
    ref = {ch: np.asarray(sol[var](t)) for ch, var in PYBAMM_VARIABLES.items()}
    return current, ref


# Stated bounds: a few times each architecture's validated MAE (surrogates/models/checkpoints/*.md).
SHIPPED_BOUNDS = {"jepa": (0.008, 0.4, 0.008), "transformer": (0.012, 0.6, 0.010), "mamba": (0.015, 1.0, 0.012)}


@pytest.mark.parametrize("arch", list(SHIPPED_BOUNDS))
def test_shipped_nmc_surrogate_tracks_a_fresh_dfn_solve(arch, fresh_dfn_charge):
    if not checkpoint_path("nmc", arch).exists():
        pytest.skip(f"no shipped nmc-{arch} checkpoint")
    current, ref = fresh_dfn_charge
    out = load_surrogate("nmc", arch).simulate(current, 0.2, 298.15, dt=10.0)
    v_bound, t_bound, eta_bound = SHIPPED_BOUNDS[arch]
    assert np.mean(np.abs(out["voltage"] - ref["voltage"])) < v_bound  # V
    assert np.mean(np.abs(out["temperature"] - ref["temperature"])) < t_bound  # K
    assert np.mean(np.abs(out["plating_margin"] - ref["plating_margin"])) < eta_bound  # V


def test_mamba_cuda_kernel_matches_the_pure_scan():
    """mamba_ssm's fused selective scan (extra `gpu`, CUDA only) equals our pure-PyTorch scan."""
    from surrogates.models import mamba as mamba_module

    if mamba_module._cuda_selective_scan is None or not torch.cuda.is_available():
        pytest.skip("needs mamba_ssm and a CUDA device (pip install -e '.[gpu]')")
    torch.manual_seed(0)
    model = _randomise(build_model("mamba", d_model=32, n_layer=2, d_state=8)).cuda().eval()
    x, init = torch.randn(4, 200, N_INPUTS, device="cuda"), torch.randn(4, N_INIT, device="cuda")
    with torch.no_grad():
        fast = model(x, init)
        for block in model.blocks:
            block.cfg.use_cuda_kernel = False
        pure = model(x, init)
    torch.testing.assert_close(fast, pure, atol=1e-4, rtol=1e-4)
