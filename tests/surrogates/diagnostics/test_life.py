"""The life estimator: features from a BMS log, a deterministic fit that learns, checkpoints that reload."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.diagnostics import life


def _log(rate: float, ambient: float, n: int) -> dict:
    """A synthetic cycle log: ``n`` samples of charge at ``rate`` C, then rest."""
    current = np.r_[np.full(n, -5.0 * rate), np.zeros(40)]
    return {"current": current.tolist(), "voltage": np.linspace(3.5, 4.1, len(current)).tolist(),
            "temperature": np.full(len(current), ambient + 2.0 * rate).tolist()}


def test_features_scale_each_channel_and_mask_the_padding():
    spec = life.LifeFeatures(n_cycles=2, cycle_len=100)
    x = life.features([_log(1.0, 298.15, 30), _log(1.0, 298.15, 30), _log(1.0, 298.15, 30)], one_c=5.0, spec=spec)
    assert x.shape == (8, 100) and x.dtype == np.float32
    assert np.allclose(x[0, :30], 1.0) and np.allclose(x[0, 30:], 0.0)  # C-rate, charge positive
    assert np.allclose(x[6, :70], 1.0) and np.allclose(x[6, 70:], 0.0)  # cycle 1's mask
    assert np.isclose(x[2, 0], 2.0 / 15.0)  # (T - 25 C) / 15 K
    with pytest.raises(ValueError, match="record"):
        life.features([_log(1.0, 298.15, 30)], one_c=5.0, spec=spec)


def test_the_cnn_learns_life_from_the_logs_and_reloads(tmp_path):
    rng = np.random.default_rng(0)
    spec = life.LifeFeatures(n_cycles=1, cycle_len=128)
    rates, ambients = rng.uniform(0.5, 2.0, 48), rng.uniform(283.15, 313.15, 48)
    # a made-up law: hotter and longer charges age faster
    y = 1e5 * np.exp(-(ambients - 283.15) / 30.0) * (1.0 + 0.2 * rates)
    x = np.stack([life.features([_log(r, t, int(60 / r))], 5.0, spec) for r, t in zip(rates, ambients)])
    cfg = life.LifeTraining(epochs=150, seed=0)
    model = life.fit(x[:36], np.log10(y[:36]), cfg)
    pred = life.predict(model, x[36:])
    assert np.mean(np.abs(pred / y[36:] - 1)) < 0.05  # the spread of y is +-40 %
    again = life.predict(life.fit(x[:36], np.log10(y[:36]), cfg), x[36:])
    assert np.array_equal(pred, again)  # seeded: the same fit twice
    life.save(model, tmp_path / "life.pt", spec, {"chemistry": "test"})
    loaded, spec2, meta = life.load(tmp_path / "life.pt")
    assert spec2 == spec and meta["chemistry"] == "test" and np.allclose(life.predict(loaded, x[36:]), pred)
