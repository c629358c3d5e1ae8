"""Ground-truth degradation: the cycle on the degradation DFN, life by replay, fade and end of life, the report."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.ageing.cycle import DEGRADATION, CycleResult, cycle
from agents.ageing.life import LifeConfig, fade_and_end_of_life, fit_sei_law, life, segments, sei_law
from agents.ageing.report import plot_capacity, plot_fronts, report
from agents.charge import Start, point_key
from agents.control.rules import CV_MARGIN, CCCVPolicy


def test_segments_keep_the_charge_and_merge_a_cc_phase():
    profile = [1.0] * 30 + list(np.linspace(1.0, 0.2, 25))
    segs = segments(profile, dt=10.0, segment_s=60.0)
    assert math.isclose(sum(c * n for c, n in segs), sum(profile), rel_tol=1e-12)
    assert sum(n for _, n in segs) == len(profile)
    assert segs[0] == (1.0, 30)  # five 1-minute segments of the CC phase are one solve


def test_end_of_life_is_found_or_extrapolated_by_the_sei_law():
    n = np.arange(1, 31, dtype=np.float64)
    cap, a, b = 5.0, 6e-3, 10.0
    out = fade_and_end_of_life(sei_law(n, a, b), cap)  # 30 cycles of a cell that follows the law
    assert out["extrapolated"] and np.allclose(out["fit"], [a, b], rtol=1e-6)
    assert math.isclose(out["cycles_to_90"], b * ((0.5 / a + 1) ** 2 - 1), rel_tol=1e-6)
    assert math.isclose(out["fade_per_100"], 100 * float(sei_law(100, a, b)) / cap, rel_tol=1e-6)
    lost = np.linspace(0.01, 0.6, 120)  # 10 % of 5 A.h lost within the cycles: found, not extrapolated
    reached = fade_and_end_of_life(lost, cap)
    assert not reached["extrapolated"] and reached["cycles_to_90"] == float(np.argmax(lost >= 0.5) + 1)
    assert math.isclose(reached["fade_per_100"], 100 * lost[99] / cap, rel_tol=1e-12)


@pytest.fixture(scope="module")
def env():
    e = gym.make(envs.FAST_CHARGE_ID, chemistry="nmc", backend="pybamm", pybamm_options=DEGRADATION, soc_target=0.5)
    yield e
    e.close()


@pytest.mark.slow
def test_a_cycle_keeps_the_irreversible_loss_apart_from_plated_lithium(env):
    config = env.unwrapped.config
    policy = CCCVPolicy(1.5, v_max=config.v_max - CV_MARGIN, config=config)
    start = Start(0.3, 288.15)
    trace, row = cycle(policy, env, start)
    sim = env.unwrapped.backend.sim
    assert row.reached and row.charge.reached_target
    # the discharge stopped within one interval of v_min, after which the cell rested an hour
    assert 0 < row.irreversible_charge_mAh < row.irreversible_cycle_mAh < 1.0
    # plated lithium formed in the charge and stripped back by the end: the cycle's total loss is what stays lost
    assert row.plated_peak_mAh > 5.0 and abs(row.plated_end_mAh) < 0.01
    assert math.isclose(row.total_lost_cycle_mAh, row.irreversible_cycle_mAh + row.plated_end_mAh, abs_tol=1e-6)
    below = np.maximum(-trace["plating_margin_min"][1:], 0.0)
    assert math.isclose(row.plating_exposure_mVmin, below.sum() * 1e3 * config.dt / 60, rel_tol=1e-12)
    assert row.plating_time_min == (below > 0).sum() * config.dt / 60
    assert sim.soc < 0.1  # the discharge went down to v_min

    # life: the same charge repeated; the loss per cycle falls as SEI thickens, and the first cycle matches the
    # closed-loop one up to the discharge depth (to v_min there, back to the start SOC here)
    lf = life(row.charge.c_rate_profile, start, "nmc", config.dt, LifeConfig(n_cycles=8))
    q = np.diff([0.0] + lf["irreversible_mAh"])
    assert lf["cycles"] == 8 and np.all(q > 0) and np.all(np.diff(q) < 0)
    assert abs(q[0] - row.irreversible_cycle_mAh) < 0.3 * row.irreversible_cycle_mAh
    assert lf["extrapolated"] and lf["cycles_to_90"] > 100 and np.all(np.diff(lf["retention"]) < 0)
    # the DFN's loss follows the SEI law: a fit to the first 5 cycles predicts the 8th to 1 %
    a, b = fit_sei_law(np.asarray(lf["irreversible_mAh"][:5]) / 1e3)
    assert abs(1e3 * float(sei_law(8, a, b)) / lf["irreversible_mAh"][7] - 1) < 0.01

    # the report and its figures read these results
    results = {"CC-CV 1.5C": {"grid": {point_key(start): row}, "life": {point_key(start): lf},
                              "settings": {"family": "CC-CV"}}}
    text = report(results, [start])
    assert "CC-CV 1.5C" in text and f"{row.irreversible_cycle_mAh:.3f}" in text
    assert plot_fronts(results, starts=(start,)) is not None and plot_capacity(results, starts=(start,)) is not None
    assert CycleResult.from_json(json.loads(json.dumps(row.to_json()))) == row  # as the result files store it


def test_the_cycle_refuses_an_env_without_the_degradation_model():
    e = gym.make(envs.FAST_CHARGE_ID, chemistry="nmc", backend="surrogate", soc_target=0.12)
    policy = CCCVPolicy(1.0, config=e.unwrapped.config)
    with pytest.raises(ValueError, match="degradation"):
        cycle(policy, e, Start(0.1, 298.15))


@pytest.mark.slow
def test_life_logs_its_first_cycles_as_a_bms_would():
    profile = [1.0] * 126  # 1C for 21 min: 10 -> 45 %
    res = life(profile, Start(0.1, 298.15), config=LifeConfig(n_cycles=3), record=2)
    assert res["cycles"] == 3 and len(res["traces"]) == 2
    tr = res["traces"][0]
    one_c = 5.0  # nmc, OKane2022: 5 A.h
    current = np.asarray(tr["current"])
    # one sample a minute: 21 min of 1C charge, 60 min of rest, 21 min of 1C discharge, 60 min of rest
    assert len(current) == 21 + 60 + 21 + 60 == len(tr["voltage"]) == len(tr["temperature"])
    assert np.allclose(current[:21], -one_c) and np.allclose(current[81:102], one_c) and not current[21:81].any()
    v = np.asarray(tr["voltage"])
    assert v[20] > v[80] > v[101]  # charged, relaxed, discharged
    assert math.isclose(sum(-c for c in tr["current"] if c < 0), sum(c for c in tr["current"] if c > 0), rel_tol=1e-9)
    assert "traces" not in life(profile, Start(0.1, 298.15), config=LifeConfig(n_cycles=3))
