import math

import numpy as np
import pybamm
import pytest

from surrogates.common.channels import DEGRADATION_CHANNELS, OUTPUT_CHANNELS
from surrogates.physics.dfn import DFNSimulator, DFNSolverError, SimulationWindowError
from surrogates.physics.reference import experiment_voltage


@pytest.fixture(scope="module")
def nmc():
    return DFNSimulator("nmc", dt=10.0)


@pytest.mark.slow
def test_agrees_with_plain_pybamm_solve(nmc):
    currents = [-5.0] * 6 + [2.5] * 3 + [0.0] * 2 + [-10.0] * 4
    nmc.reset(0.3, 303.15)
    ours = np.array([nmc.step(i)["voltage"] for i in currents])
    ref = experiment_voltage("nmc", currents, 10.0, 0.3, 303.15)
    assert np.abs(ours - ref).max() < 1e-3  # < 1 mV


def test_run_equals_steps_and_channels(nmc):
    first = nmc.reset(0.2, 298.15)
    assert set(first) == set(OUTPUT_CHANNELS)
    assert first["temperature"] == pytest.approx(298.15)
    assert first["soc"] == 0.2
    stepped = [nmc.step(-5.0) for _ in range(5)]
    nmc.reset(0.2, 298.15)
    ran = nmc.run(-5.0, 5)
    for ch in OUTPUT_CHANNELS:
        assert np.allclose([s[ch] for s in stepped], ran[ch], atol=2e-4), ch
    # SOC is coulomb-counted: 1C for 50 s of a 5 Ah cell.
    assert ran["soc"][-1] == pytest.approx(0.2 + 5.0 * 50 / 3600 / 5.0)
    assert np.all(ran["voltage_max"] >= ran["voltage"] - 1e-12)
    assert np.all(ran["plating_margin_min"] <= ran["plating_margin"] + 1e-12)
    # Charging raises the voltage and heats the cell.
    assert ran["voltage"][-1] > first["voltage"] and ran["temperature"][-1] > 298.15


def test_bad_inputs_have_clear_errors(nmc):
    with pytest.raises(ValueError, match="nmc, lfp|lfp, nmc"):
        DFNSimulator("nca")
    nmc.reset(0.5, 298.15)
    for bad in (float("nan"), float("inf"), "a lot"):
        with pytest.raises(ValueError, match="current"):
            nmc.step(bad)
    with pytest.raises(ValueError, match="kelvin"):
        nmc.reset(0.5, 25.0)
    with pytest.raises(ValueError, match="soc"):
        nmc.reset(1.5, 298.15)
    with pytest.raises(ValueError, match="dt"):
        DFNSimulator("nmc", dt=-1)


def test_leaving_the_window_is_reported_and_recoverable(nmc):
    nmc.reset(0.6, 298.15)
    with pytest.raises(SimulationWindowError, match="simulation window") as info:
        nmc.run(-15.0, 120)  # 3C from 60 %: past 4.4 V well before 20 minutes
    partial = info.value.partial
    assert 0 < len(partial["voltage"]) < 120 and np.all(partial["voltage"] < 4.4 + 1e-6)
    # The operating limit (4.2 V) does not stop the solver: we get past it first.
    assert partial["voltage_max"].max() > 4.2
    with pytest.raises(RuntimeError, match="reset"):
        nmc.step(-1.0)
    nmc.reset(0.5, 298.15)
    assert math.isfinite(nmc.step(-5.0)["voltage"])


def test_solver_failure_is_specific_and_recoverable(nmc, monkeypatch):
    nmc.reset(0.5, 298.15)

    def failing_step(*args, **kwargs):
        raise pybamm.SolverError("IDA_CONV_FAIL: convergence test failed repeatedly")

    monkeypatch.setattr(nmc.solver, "step", failing_step)
    with pytest.raises(DFNSolverError, match="IDA solver failed.*reset"):
        nmc.step(-30.0)
    monkeypatch.undo()
    nmc.reset(0.5, 298.15)
    assert math.isfinite(nmc.step(-5.0)["voltage"])


def test_cost_stays_flat_no_history(nmc):
    nmc.reset(0.1, 298.15)
    for _ in range(30):
        nmc.step(-5.0)
    # Only the last interval's solution is kept, never the episode's history.
    assert nmc._solution.t[-1] - nmc._solution.t[0] == pytest.approx(10.0)
    assert nmc.time == pytest.approx(300.0)


def test_lfp_builds_and_charges():
    sim = DFNSimulator("lfp")
    first = sim.reset(0.2, 298.15)
    out = sim.run(-2.3, 6)
    assert 2.0 < first["voltage"] < out["voltage"][-1] < 3.6
    assert out["temperature"][-1] > 298.15


@pytest.mark.slow
def test_degradation_model_records_capacity_lost_against_pybamm(nmc):
    """SEI + lithium plating (OKane2022's parameters on Chen2020's cell): capacity_lost is PyBaMM's
    lithium-inventory loss since reset, and the cell's voltage stays that of the plain DFN."""
    deg = DFNSimulator("nmc", dt=10.0, degradation=True)
    first = deg.reset(0.2, 298.15)
    assert first["capacity_lost"] == 0.0 and set(first) == set(OUTPUT_CHANNELS) | set(DEGRADATION_CHANNELS)
    charge = deg.run(-5.0, 60)  # 1C, 10 min
    slow = charge["capacity_lost"]
    assert np.all(np.diff(charge["lithium_irreversible"]) > 0)
    rest = deg.run(0.0, 360)  # 1 h: plated lithium strips back, what is lost for good stays lost
    assert rest["lithium_plated"][-1] < 0.5 * charge["lithium_plated"][-1]
    assert rest["lithium_irreversible"][-1] > charge["lithium_irreversible"][-1]
    assert np.all(np.diff(slow) > 0) and 1e-4 < slow[-1] < 1e-2  # A.h: 0.1 to 10 mA.h in 10 min
    deg.reset(0.2, 298.15)
    fast = deg.run(-10.0, 30)["capacity_lost"]  # 2C, the same charge in 5 min
    assert fast[-1] > slow[-1]  # plating grows with current

    # the same 1C charge in one PyBaMM solve of the same model and parameters
    params = deg.chemistry.parameter_values("simulation", degradation=True)
    inputs = deg.initial_inputs(0.2, 298.15)
    params.update({k: v for k, v in inputs.items() if k != "Current function [A]"})
    params["Current function [A]"] = -5.0
    from surrogates.physics.chemistry import DEGRADATION_OPTIONS

    model = pybamm.lithium_ion.DFN(options={"thermal": "lumped", **DEGRADATION_OPTIONS})
    sol = pybamm.Simulation(model, parameter_values=params).solve([0, 600.0])
    ref = sol["Total capacity lost to side reactions [A.h]"](np.arange(0, 601, 10.0))
    np.testing.assert_allclose(slow, ref[1:] - ref[0], rtol=2e-2)
    # the split: SEI + dead lithium (for good) and the reversibly plated lithium add up to PyBaMM's total;
    # the plated part is PyBaMM's "Loss of capacity to negative lithium plating" less the dead lithium
    np.testing.assert_allclose(charge["lithium_irreversible"] + charge["lithium_plated"] - first["lithium_plated"], slow,
                               rtol=1e-6, atol=1e-12)
    sei = sol["Loss of capacity to negative SEI [A.h]"](np.arange(0, 601, 10.0))
    plating = sol["Loss of capacity to negative lithium plating [A.h]"](np.arange(0, 601, 10.0))
    np.testing.assert_allclose(charge["lithium_plated"], plating[1:] - (charge["lithium_irreversible"] - (sei[1:] - sei[0])),
                               rtol=2e-2, atol=1e-7)

    nmc.reset(0.2, 298.15)
    plain = nmc.run(-5.0, 60)["voltage"]
    deg.reset(0.2, 298.15)
    assert np.abs(deg.run(-5.0, 60)["voltage"] - plain).max() < 0.01  # < 10 mV: same cell
    with pytest.raises(ValueError, match="no degradation parameters"):
        DFNSimulator("lfp", degradation=True)
