"""The charge record: one definition of a broken limit, and rows that read back from the committed tables unchanged."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

from agents.charge import ChargeResult, Start, WorstExcess, interval_slack, minutes, summarize, within_limits
from agents.evaluation.references import REFERENCE_DIR
from envs.config import ChargingConfig


def trace(v_max, t_max, p_min, reached=True):
    """A hand-made trace: the rest state, then one interval per value."""
    n = len(v_max)
    return {"elapsed": 10.0 * np.arange(n + 1), "c_rate": np.r_[0.0, np.full(n, 1.0)],
            "voltage_max": np.r_[3.6, v_max], "temperature_max": np.r_[298.15, t_max],
            "plating_margin_min": np.r_[0.1, p_min], "reached_target": reached, "solver_failure": False,
            "hard_violation": False, "return": -1.0}


def test_a_limit_is_broken_by_one_definition():
    config = ChargingConfig()
    ok = trace([4.1, 4.19], [300.0, 310.0], [0.02, 0.001])
    bad = trace([4.1, config.v_max + 0.0015], [300.0, config.t_max + 0.5], [0.02, -0.003])
    assert summarize(ok, config).safe and not summarize(bad, config).safe
    rec = ChargeResult.of(bad, config, profile=True, excess=True)
    assert (rec.violating_steps, rec.voltage_steps, rec.temperature_steps, rec.plating_steps) == (1, 1, 1, 1)
    assert asdict(rec.worst_excess) == pytest.approx(asdict(WorstExcess(1.5, 0.5, 3.0)))
    assert rec.charge_time_min == pytest.approx(20.0 / 60.0) and rec.c_rate_profile == (1.0, 1.0)
    assert not ChargeResult.of(trace([4.1], [300.0], [0.02], reached=False), config).safe
    # the oracle's admissible interval is the same slack held inside buffers
    interval = {"voltage_max": 4.195, "temperature_max": 300.0, "plating_margin_min": 0.005}
    assert within_limits(interval, config) and not within_limits(interval, config, buffers=(0.010, 2.0, 0.004))
    assert interval_slack(interval, config, (0.010, 2.0, 0.004))["plating"] == pytest.approx(0.001)
    assert minutes(math.nan) == minutes(None) == "not reached" and minutes(31.24) == "31.2"


@pytest.mark.parametrize("name", ["nmc.json", "nmc-degradation.json"])
def test_committed_rows_read_back_as_records_unchanged(name):
    table = json.loads((REFERENCE_DIR / name).read_text())
    rows = [row for entry in table.get("points", {}).values() for key, row in entry.items() if isinstance(row, dict)]
    rows += [row for res in table.get("policies", {}).values() for row in res["grid"].values()]
    assert rows
    for row in rows:
        rec = ChargeResult.from_json(row)
        back = rec.to_json()
        stored = {k: v for k, v in row.items() if k in back}
        assert json.dumps(stored, sort_keys=True) == json.dumps(back, sort_keys=True)  # exact, NaN included
        assert rec.safe == bool(row["reached_target"] and row["violating_steps"] == 0 and not row["solver_failure"])


def test_a_start_is_its_key_and_its_reset_options():
    start = Start(0.1, 298.15)
    assert start.key == "0.10@298.15" and start.options == {"soc_start": 0.1, "ambient_temperature": 298.15}
