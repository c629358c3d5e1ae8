"""The tuned protocols' fast path: it charges as the env does, and ends a charge where the env ends it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.charge import Start, rollout, summarize
from agents.control.tuning import Protocol, simulate_protocol
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
