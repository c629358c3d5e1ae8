import json

import numpy as np
import pytest

from surrogates.data.dataset import Dataset
from surrogates.baselines.ecm import (FITS_DIR, ECMParameters, entropic_change, entropic_heat, fit_ecm, simulate_ecm_numpy,
                                      simulate_ecm_pybamm)
from surrogates.models.features import Featurizer

DT = 10.0
CAP = 5.0
KNOTS = np.linspace(0.0, 1.0, 11)
OCV_GRID = np.linspace(0.0, 1.0, 41)
OCV = 3.3 + 0.8 * OCV_GRID + 0.1 * np.sin(5.0 * OCV_GRID) - 0.25 * np.exp(-15.0 * OCV_GRID)


def known_params(**overrides) -> ECMParameters:
    """A plausible 5 Ah cell: R0/R1 rising at the SOC ends, tau 40-100 s, Arrhenius in T."""
    d = dict(
        chemistry="nmc", dt=DT, capacity_ah=CAP, soc_grid=KNOTS,
        r0=0.018 + 0.02 * (KNOTS - 0.55) ** 2, r1=0.012 + 0.015 * np.exp(-6.0 * KNOTS),
        c1=3000.0 + 2000.0 * KNOTS, ocv_soc_grid=OCV_GRID, ocv=OCV,
        heat_capacity=75.0, heat_transfer=0.06, r0_activation=1500.0, r1_activation=2500.0,
    )
    d.update(overrides)
    return ECMParameters(**d)


def synthetic_dataset(params: ECMParameters, n: int = 6, length: int = 90, seed: int = 0) -> Dataset:
    """Random charge / discharge / rest steps from the known ECM (ragged, NaN-padded)."""
    rng = np.random.default_rng(seed)
    current = np.zeros((n, length))
    for b in range(n):
        k = 0
        while k < length:
            hold = int(rng.integers(3, 15))
            current[b, k:k + hold] = rng.choice([-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0]) * CAP
            k += hold
    soc0 = rng.uniform(0.15, 0.85, n)
    # keep the coulomb count inside [0.02, 0.98]
    soc = soc0[:, None] - np.cumsum(current, 1) * DT / 3600 / CAP
    for b in range(n):
        over = np.flatnonzero((soc[b] < 0.02) | (soc[b] > 0.98))
        if len(over):
            current[b, over[0]:] *= -1
    ambient = rng.uniform(283.15, 313.15, n)
    sim = simulate_ecm_numpy(params, current, soc0, ambient)
    lengths = np.array([length - 7 * (b % 3) for b in range(n)], dtype=np.int32)
    pad = np.arange(length)[None, :] >= lengths[:, None]
    arrays = {
        "current": np.where(pad, np.nan, current).astype(np.float32),
        "ambient_temperature": np.where(pad, np.nan, ambient[:, None]).astype(np.float32),
        **{ch: np.where(pad, np.nan, sim[ch]).astype(np.float32) for ch in ("voltage", "temperature", "soc")},
    }
    return Dataset(
        arrays=arrays, lengths=lengths,
        initial={"soc": soc0.astype(np.float32), "ambient_temperature": ambient.astype(np.float32)},
        families=np.array(["random_steps"] * n), terminations=np.array(["protocol_end"] * n),
        specs=np.array(["{}"] * n), indices=np.arange(n), meta={"dt": DT, "chemistry": "nmc"},
    )


def featurizer() -> Featurizer:
    return Featurizer(chemistry="nmc", dt=DT, capacity_ah=CAP, soc_grid=OCV_GRID.tolist(), ocv=OCV.tolist(),
                      u_neg=[0.1] * len(OCV_GRID), target_mean=[0.0] * 6, target_std=[1.0] * 6)


def test_fit_recovers_known_ecm():
    truth = known_params()
    ds = synthetic_dataset(truth)
    fitted = fit_ecm(ds, featurizer(), n_knots=len(KNOTS), max_nfev=(30, 15, 10))
    assert fitted.dt == DT and fitted.chemistry == "nmc"
    assert fitted.info["entropic_heat"] == entropic_heat("nmc")  # what nmc's parameter set has, read there
    assert fitted.info["train_voltage_mae_mV"] < 1.0
    # and on sequences it never saw
    test = synthetic_dataset(truth, n=4, seed=1)
    mask = np.arange(test.arrays["voltage"].shape[1])[None] < test.lengths[:, None]
    pred = simulate_ecm_numpy(fitted, test.arrays["current"], test.initial["soc"],
                              test.initial["ambient_temperature"], dt=DT, chemistry="nmc")
    assert np.mean(np.abs(pred["voltage"] - test.arrays["voltage"])[mask]) < 1e-3  # < 1 mV
    assert np.mean(np.abs(pred["temperature"] - test.arrays["temperature"])[mask]) < 0.05  # K
    # JSON round trip gives the same model
    again = ECMParameters.from_dict(json.loads(json.dumps(fitted.to_dict())))
    pred2 = simulate_ecm_numpy(again, test.arrays["current"], test.initial["soc"], test.initial["ambient_temperature"])
    assert np.array_equal(pred["voltage"], pred2["voltage"])


def test_numpy_matches_pybamm_thevenin():
    params = known_params()
    current = np.array([-3.0 * CAP] * 25 + [0.0] * 10 + [1.5 * CAP] * 15 + [-CAP] * 10)  # charge/rest/discharge
    ours = simulate_ecm_numpy(params, current, 0.2, 293.15, dt=DT)
    ref = simulate_ecm_pybamm(params, current, 0.2, 293.15, dt=DT)
    assert ours["voltage"].shape == ref["voltage"].shape == (60,)
    assert np.abs(ours["voltage"] - ref["voltage"]).max() < 1e-3  # < 1 mV
    assert np.abs(ours["temperature"] - ref["temperature"]).max() < 0.02  # K
    assert np.allclose(ours["soc"], ref["soc"], atol=1e-9)
    # sign: charging raises the voltage and heats the cell
    assert ours["voltage"][24] > ours["voltage"][0] and ours["temperature"][24] > 293.15
    # batched numpy equals per-sequence numpy
    batch = simulate_ecm_numpy(params, np.stack([current, -current]), [0.2, 0.8], [293.15, 303.15])
    assert np.allclose(batch["voltage"][0], ours["voltage"], atol=1e-12)


def test_refuses_other_dt_or_chemistry():
    params = known_params()
    current = np.zeros((1, 5))
    with pytest.raises(ValueError, match="dt=10.0 s, not dt=30.0 s.*refit"):
        simulate_ecm_numpy(params, current, [0.5], [298.15], dt=30.0)
    with pytest.raises(ValueError, match="refit"):
        simulate_ecm_pybamm(params, current[0], 0.5, 298.15, dt=30.0)
    other = known_params(dt=30.0, chemistry="lfp")
    with pytest.raises(ValueError, match="dt=30.0 s, not dt=10.0 s"):
        simulate_ecm_numpy(other, current, [0.5], [298.15], dt=10.0)
    with pytest.raises(ValueError, match="fitted on lfp data, not nmc"):
        simulate_ecm_numpy(other, current, [0.5], [298.15], chemistry="nmc")
    with pytest.raises(ValueError, match="dt"):
        fit_ecm(synthetic_dataset(params, n=2, length=20), Featurizer.from_dict({**featurizer().to_dict(), "dt": 30.0}))
    with pytest.raises(ValueError, match="kelvin"):
        simulate_ecm_numpy(params, current, [0.5], [25.0])


def test_a_fit_records_the_entropic_change_its_cell_has():
    """Read from the cell's parameter values, not written in: Chen2020 (nmc) and Prada2013 (lfp) have none, Ai2020 (lco)
    one per electrode, which the ECM leaves out; the shipped fits say what fit_ecm writes."""
    assert entropic_heat("nmc").startswith("none: Chen2020 sets both electrodes' OCP entropic change")
    assert entropic_heat("lfp").startswith("none: Prada2013 sets both electrodes' OCP entropic change")
    lco = entropic_heat("lco")
    assert lco.startswith("left out: Ai2020 has an entropic change") and lco.count("nonzero function of stoichiometry") == 2
    fits = sorted(FITS_DIR.glob("*-ecm.json"))
    assert {p.name for p in fits} >= {"nmc-ecm.json", "lfp-ecm.json", "lco-ecm.json"}
    for path in fits:
        fit = json.loads(path.read_text())
        assert fit["info"]["entropic_heat"] == entropic_heat(fit["chemistry"]), path.name


def test_entropic_change_reads_numbers_functions_and_gaps():
    import pybamm

    neg, pos = "Negative electrode OCP entropic change [V.K-1]", "Positive electrode OCP entropic change [V.K-1]"
    values = pybamm.ParameterValues("Chen2020")
    assert entropic_change(values) == {neg: "zero", pos: "zero"}
    values.update({neg: lambda sto: 0.0 * sto, pos: 2e-4})
    assert entropic_change(values) == {neg: "zero", pos: "nonzero constant, 0.0002 V/K"}

    def tilted(sto):
        return 1e-4 * (sto - 0.5)

    values.update({neg: tilted})
    assert entropic_change(values)[neg] == "nonzero function of stoichiometry (tilted)"
    del values[pos]
    assert entropic_change(values)[pos] == "not set"
