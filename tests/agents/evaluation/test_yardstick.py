"""The yardstick: the reference table, its builder and the scoring against it (the cached 2-point table: ``TABLE``
in tests/agents/conftest.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from agents.charge import ChargeResult, Start, WorstExcess, point_key
from agents.evaluation.build import build_references
from agents.evaluation.grid import grid
from agents.evaluation.references import REFERENCES, load_references, reference_path
from agents.evaluation.scoring import score
from agents.evaluation.yardstick import compare_runs, markdown
from envs.config import ChargingConfig

from tests.agents.conftest import ROOT, TABLE


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


# --------------------------------------------------------------------------- building the table
@pytest.mark.slow
def test_building_resumes_and_skips_what_is_there(tmp_path, monkeypatch):
    import agents.evaluation.build

    config = ChargingConfig()
    path = tmp_path / "refs.json"
    starts = [Start(0.75, 298.15)]
    table = build_references(config, starts, path, (0.01, 2.0, 0.004), which=("cccv",), progress=False)
    assert set(table["points"][point_key(starts[0])]) >= {"cccv"}
    assert re.search(r"75% SOC, 25 C", path.with_suffix(".md").read_text())

    def boom(*args, **kwargs):
        raise AssertionError("a finished reference was recomputed")

    monkeypatch.setattr(agents.evaluation.build, "fastest_cccv", boom)  # what the builder calls
    again = build_references(config, starts, path, (0.01, 2.0, 0.004), which=("cccv",), progress=False)
    assert again["points"] == table["points"]
    monkeypatch.undo()

    two = [starts[0], Start(0.75, 313.15)]  # the same point again and a new one, in two processes
    pooled = build_references(config, two, tmp_path / "pooled.json", (0.01, 2.0, 0.004), which=("cccv",), workers=2,
                              progress=False)
    assert set(pooled["points"]) == {point_key(s) for s in two}
    assert pooled["points"][point_key(starts[0])] == table["points"][point_key(starts[0])]
