"""The yardstick: the oracle, the tuned protocols, the reference table and the scoring against it.

The cached table ``tests/support/references-2pt.json`` is the yardstick on a 2-point grid (70 %
SOC at 25 and 40 C, short charges), built by
``python experiments/build_references.py --socs "[0.7]" --ambients "[298.15, 313.15]" --evaluations 16
--out tests/support/references-2pt.json``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.charge import ChargeResult, Start, WorstExcess, point_key, rollout, summarize
from agents.control.rules import CV_MARGIN
from agents.control.tuning import C_MIN, STAGES, Protocol, fastest_cccv, simulate_protocol, tune_protocol
from agents.evaluation.build import build_references
from agents.evaluation.grid import grid
from agents.evaluation.references import REFERENCES, load_references, reference_path, reference_starts
from agents.evaluation.scoring import score
from agents.evaluation.yardstick import compare_runs, markdown
from envs.config import ChargingConfig

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "tests" / "support" / "references-2pt.json"


@pytest.fixture(scope="module")
def table():
    return load_references(ChargingConfig(), TABLE)


@pytest.fixture(scope="module")
def dfn_env():
    env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm")
    yield env.unwrapped
    env.close()


@pytest.fixture(scope="module")
def sim():
    from surrogates.physics.dfn import DFNSimulator

    return DFNSimulator("nmc")


# --------------------------------------------------------------------------- the table
def test_default_grid_spans_the_issue_range():
    starts = grid()
    assert len(starts) >= 9
    assert min(s.soc for s in starts) == 0.05 and max(s.soc for s in starts) == 0.30
    assert {s.ambient_temperature for s in starts} == {283.15, 298.15, 313.15}


def test_a_table_built_for_another_task_is_refused_with_the_command(table):
    with pytest.raises(ValueError, match="build_references.py"):
        load_references(ChargingConfig(c_max=4.0), TABLE)
    with pytest.raises(FileNotFoundError, match="build_references.py"):
        load_references(ChargingConfig(), TABLE.with_name("missing.json"))


def test_the_committed_table_covers_the_grid_for_the_env_task():
    table = load_references(ChargingConfig())  # agents/references/nmc.json, built for today's task
    assert {point_key(s) for s in grid()} <= set(table["points"])
    for entry in table["points"].values():
        assert set(REFERENCES) <= set(entry)
        t = {r: entry[r]["charge_time_min"] for r in REFERENCES}
        # the greedy oracle is a one-step look-ahead: where heat builds up (40 C) a protocol that holds back early
        # can finish first, so only the buffered oracle and the CC-CV are ordered against it
        assert t["oracle"] <= t["oracle_buffered"] and t["oracle"] <= t["cccv"] and t["tuned"] <= t["cccv"]
        assert all(entry[r]["violating_steps"] == 0 and entry[r]["reached_target"] for r in REFERENCES)


def test_docs_show_the_committed_table():
    md = reference_path("nmc").with_suffix(".md").read_text()
    docs = (ROOT / "docs" / "references.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "%" in line]
    assert rows and all(row in docs for row in rows), "docs/references.md's table is not agents/references/nmc.md's"


# --------------------------------------------------------------------------- scoring
def fake_rows(table, times, violating=()):
    rows = {}
    for (key, _), t in zip(table["points"].items(), times):
        bad = key in violating
        rows[key] = ChargeResult(t, math.isfinite(t), 4.2, 30.0, 10.0, 3 if bad else 0, 3 if bad else 0, 0, 0, 0.0,
                                 False, False, 0.0, worst_excess=WorstExcess(1.5 if bad else 0.0, 0.0, 0.0))
    return rows


def test_score_ratios_and_who_beats_whom(table):
    keys = list(table["points"])
    oracle = [table["points"][k]["oracle"]["charge_time_min"] for k in keys]
    tuned = [table["points"][k]["tuned"]["charge_time_min"] for k in keys]
    times = [oracle[0] * 1.1, tuned[1] - 0.1]
    scored, summary = score(fake_rows(table, times, violating=(keys[1],)), table)
    assert summary["points"] == 2 and summary["violating_points"] == 1 and summary["violating_steps"] == 3
    assert math.isclose(scored[0].ratio, 1.1)
    assert math.isclose(summary["geo_mean_ratio"], math.sqrt(1.1 * times[1] / oracle[1]))
    assert summary["worst_ratio"] == max(1.1, times[1] / oracle[1])
    assert scored[0].tuned_faster == (tuned[0] < times[0]) and not scored[1].tuned_faster
    assert summary["beaten"] == int(scored[0].tuned_faster) + 1  # the violating point counts as beaten
    text = markdown(scored, summary)
    assert "geo-mean ratio to the oracle" in text and "V +1.5 mV" in text

    scored, summary = score(fake_rows(table, [math.nan, oracle[1]]), table)  # never arrived
    assert summary["not_reached"] == 1 and scored[0].tuned_faster and summary["geo_mean_ratio"] == 1.0

    stored = {k: r.to_json() for k, r in fake_rows(table, times).items()}  # a row read back from a file scores alike
    assert [p.ratio for p in score(stored, table)[0]] == [p.ratio for p in score(fake_rows(table, times), table)[0]]


def test_compare_runs_groups_seeds_by_algorithm():
    reports = {f"run{s}": {"algo": "ppo", "seed": s, "summary": {"geo_mean_ratio": 1.1 + 0.1 * s, "worst_ratio": 1.3,
                                                                 "violating_points": s, "not_reached": 0, "tuned_faster": 1,
                                                                 "cccv_faster": 0}} for s in range(3)}
    text, data = compare_runs(reports)
    group = data["algorithms"][0]
    assert group["algo"] == "ppo" and math.isclose(group["geo_mean_ratio"], 1.2)
    assert math.isclose(group["geo_mean_ratio_sd"], np.std([1.1, 1.2, 1.3]))
    assert "PPO mean +- sd over 3 seed(s)" in text


# --------------------------------------------------------------------------- references on the DFN
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


@pytest.mark.slow
def test_building_resumes_and_skips_what_is_there(tmp_path, monkeypatch):
    import agents.control.tuning

    config = ChargingConfig()
    path = tmp_path / "refs.json"
    starts = [Start(0.75, 298.15)]
    table = build_references(config, starts, path, (0.01, 2.0, 0.004), which=("cccv",), progress=False)
    assert set(table["points"][point_key(starts[0])]) >= {"cccv"}
    assert re.search(r"75% SOC, 25 C", path.with_suffix(".md").read_text())

    def boom(*args, **kwargs):
        raise AssertionError("a finished reference was recomputed")

    monkeypatch.setattr(agents.control.tuning, "fastest_cccv", boom)
    again = build_references(config, starts, path, (0.01, 2.0, 0.004), which=("cccv",), progress=False)
    assert again["points"] == table["points"]
    monkeypatch.undo()

    two = [starts[0], Start(0.75, 313.15)]  # the same point again and a new one, in two processes
    pooled = build_references(config, two, tmp_path / "pooled.json", (0.01, 2.0, 0.004), which=("cccv",), workers=2,
                              progress=False)
    assert set(pooled["points"]) == {point_key(s) for s in two}
    assert pooled["points"][point_key(starts[0])] == table["points"][point_key(starts[0])]
