"""The tuned protocols: the fast path charges as the env does and ends a charge where the env ends it; the tuned
protocols of the cached table satisfy their definition; the search is never slower than where it starts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.charge import Start, rollout, summarize
from agents.control.rules import CV_MARGIN
from agents.control.tuning import C_MIN, STAGES, Protocol, fastest_cccv, simulate_protocol, tune_protocol
from envs.config import ChargingConfig


@pytest.mark.slow
@pytest.mark.parametrize("margins", [
    {"hard_voltage_margin": 0.02},
    {"hard_voltage_margin": None, "hard_temperature_margin": None, "hard_plating_margin": 0.01},  # None: no such limit
], ids=["voltage", "plating only"])
def test_the_fast_path_ends_a_charge_at_the_envs_hard_violation(margins):
    from surrogates.physics.dfn import DFNSimulator

    config = ChargingConfig(**margins)
    env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm", **margins).unwrapped
    start = Start(0.7, 283.15)
    protocol = Protocol([(0.8, 3.0)], v_cv=config.v_max + 0.2)  # no CV before the hard limits: the CC runs into them
    fast = simulate_protocol(DFNSimulator("nmc"), protocol, start, config)
    slow = rollout(protocol.policy(config), env, start)
    env.close()
    assert slow["hard_violation"] and fast["hard_violation"] and not fast["solver_failure"]
    assert len(fast["soc"]) == len(slow["soc"])  # the same interval ends both
    np.testing.assert_allclose(fast["plating_margin_min"], slow["plating_margin_min"], atol=2e-4)
    assert not summarize(fast, config).safe


@pytest.mark.slow
def test_fast_protocol_path_equals_the_env_rollout(sim, dfn_env):
    config = dfn_env.config
    start = Start(0.6, 298.15)
    protocol = Protocol([(0.65, 2.0), (0.7, 1.2), (0.8, 0.8)], config.v_max - CV_MARGIN)
    fast = simulate_protocol(sim, protocol, start, config)
    slow = rollout(protocol.policy(config), dfn_env, start)
    a, b = summarize(fast, config), summarize(slow, config)
    assert a.charge_time_min == b.charge_time_min and a.violating_steps == b.violating_steps
    assert abs(a.max_voltage_V - b.max_voltage_V) < 2e-4
    assert abs(a.min_plating_margin_mV - b.min_plating_margin_mV) < 0.2
    np.testing.assert_allclose(fast["c_rate"], slow["c_rate"], atol=1e-3)


@pytest.mark.slow
def test_tuned_protocols_satisfy_their_definition(table, dfn_env):
    config = dfn_env.config
    for key, entry in table["points"].items():
        start = Start(entry["soc"], entry["ambient_temperature"])
        protocol = Protocol.from_json(entry["tuned"]["protocol"])
        assert 1 <= len(protocol.stages) <= STAGES and protocol.v_cv == pytest.approx(config.v_max - CV_MARGIN)
        switches = [s for s, _ in protocol.stages]
        assert switches == sorted(switches) and start.soc <= switches[0] and switches[-1] == config.soc_target
        assert all(C_MIN - 1e-9 <= c <= config.c_max + 1e-9 for _, c in protocol.stages)
        row = summarize(rollout(protocol.policy(config), dfn_env, start), config)  # the table's figure, reproduced
        assert row.violating_steps == 0 and row.reached_target
        assert row.charge_time_min == entry["tuned"]["charge_time_min"] <= entry["cccv"]["charge_time_min"]


@pytest.mark.slow
def test_tuning_is_never_slower_than_the_cccv_it_starts_from(sim):
    config = ChargingConfig()
    start = Start(0.72, 298.15)
    cccv, cccv_trace = fastest_cccv(sim, start, config)
    protocol, trace, record = tune_protocol(sim, start, config, cccv, evaluations=8)
    assert record["evaluations"] >= 8
    assert summarize(trace, config).violating_steps == 0 and trace["reached_target"]
    assert summarize(trace, config).charge_time_min <= summarize(cccv_trace, config).charge_time_min
