"""The oracle: greedy on the DFN's state, it never breaks a limit and is never slower than the fastest CC-CV."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.charge import point_key, summarize
from agents.evaluation.references import reference_starts
from envs.config import ChargingConfig
from tests.agents.conftest import TABLE


@pytest.mark.slow
@pytest.mark.parametrize("start", reference_starts(json.loads(TABLE.read_text())), ids=lambda s: s.label)
def test_oracle_never_violates_and_is_never_slower_than_the_fastest_cccv(start, table, sim):
    from agents.control.oracle import DFNOracle

    config = ChargingConfig()
    row = summarize(DFNOracle(config, sim=sim).run(start), config)
    assert row.safe
    assert row.charge_time_min <= table["points"][point_key(start)]["cccv"]["charge_time_min"]
    assert row.charge_time_min == table["points"][point_key(start)]["oracle"]["charge_time_min"]
    buffered = DFNOracle(config, buffers=(0.010, 2.0, 0.004), sim=sim).run(start)
    assert np.max(buffered["voltage_max"][1:]) <= config.v_max - 0.010
    assert np.max(buffered["temperature_max"][1:]) <= config.t_max - 2.0
    assert np.min(buffered["plating_margin_min"][1:]) >= config.plating_limit + 0.004
