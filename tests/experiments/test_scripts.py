"""Smoke tests of the experiment scripts with tiny budgets: every artefact is written and loads."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

REFERENCES_2PT = str(Path(__file__).resolve().parents[1] / "support" / "references-2pt.json")
"""The yardstick on 70 % SOC at 25 and 40 C (tests/agents/test_yardstick.py says how it was built)."""


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory, script):
    """A PPO run of a few thousand steps on the shipped nmc surrogate, replayed on the DFN over a 2-point grid."""
    out = tmp_path_factory.mktemp("agent") / "run"
    report = script("train_agent").main([
        "--total-timesteps", "2048", "--n-envs", "8", "--eval-freq", "1024", "--eval-episodes", "2",
        "--hyperparams", "{n_steps: 128, batch_size: 256, n_epochs: 2}", "--references", REFERENCES_2PT, "--threads", "1",
        "--progress", "false", "--out", str(out), "--life-cycles", "6",
    ])
    return out, report


@pytest.mark.slow
def test_train_agent_writes_every_artefact(agent_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, report = agent_run
    for name in ("policy.zip", "best_model.zip", "config.yml", "evaluation.md", "evaluation.png", "evaluation.json"):
        assert (out / name).exists(), name
    runs = list((out / "tb").iterdir())
    ea = EventAccumulator(str(runs[0]))
    ea.Reload()
    scalars = ea.Tags()["scalars"]
    for tag in ("charts/violations", "charts/plating_margin_min", "charts/reward_plating", "eval/mean_reward",
                "charts/diag_plating", "charts/reward_diag_degradation",  # the default agent pays for diagnostics
                "charts/diagnostic_weight_scale"):  # ramped in by the hyperparameter file's callback
        assert tag in scalars, tag
    assert "eval/charging_profile" in ea.Tags()["images"]
    ea = EventAccumulator(str(runs[0]))  # the yardstick's summary, written into the same run after the replay
    ea.Reload()
    assert "yardstick_pybamm/geo_mean_ratio" in ea.Tags()["scalars"]
    assert report["backend"] == "pybamm" and report["surrogate_gap"] and report["train_minutes"] > 0
    assert set(report["rows"]) == {"0.70@298.15", "0.70@313.15"}
    assert report["summary"]["points"] == 2 and "geo-mean ratio" in (out / "evaluation.md").read_text()
    assert json.loads((out / "evaluation.json").read_text())["train_minutes"] == report["train_minutes"]
    # the ground truth of the same charges, beside the committed baselines
    deg = report["degradation"]
    assert set(deg["grid"]) == set(report["rows"]) and all(r["irreversible_charge_mAh"] > 0 for r in deg["grid"].values())
    text = (out / "evaluation.md").read_text()
    assert "## Degradation on the DFN" in text and "CC-CV 1C" in text and "loss/cycle" in text
    assert (out / "evaluation-fronts.png").exists() and (out / "evaluation-capacity.png").exists()


@pytest.mark.slow
def test_evaluate_policy_reloads_runs_and_compares_them(agent_run, script, tmp_path):
    out, _ = agent_run
    report = script("evaluate_policy").main([str(out), "--backend", "surrogate", "--references", REFERENCES_2PT])
    assert (out / "evaluation-surrogate.md").exists() and (out / "evaluation-surrogate.json").exists()
    assert len(report["rows"]) == 2 and report["algo"] == "ppo"
    import shutil

    twin = shutil.copytree(out, tmp_path / "twin")  # a second run to compare with, its replay saved
    comparison = script("evaluate_policy").main([str(out), str(twin), "--backend", "surrogate", "--references",
                                                 REFERENCES_2PT, "--out", str(tmp_path / "cmp"), "--reuse"])
    assert len(comparison["runs"]) == 2 and comparison["algorithms"][0]["algo"] == "ppo"
    assert (tmp_path / "cmp.md").exists()


@pytest.mark.slow
def test_validate_surrogates_script(tmp_path, script):
    report = script("validate_surrogates").main(["--chemistry", "nmc", "--arch", "jepa", "--speed-steps", "2",
                                                  "--ecm-pybamm", "1", "--out", str(tmp_path)])
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"nmc.{ext}").exists()
    errors = report["nmc"]["errors"]
    assert errors["jepa"]["test (all families)"]["voltage_mae_mV"] < 10.0
    assert "ECM (Thevenin)" in errors and json.loads((tmp_path / "nmc.json").read_text())


@pytest.mark.slow
def test_train_surrogate_script(tmp_path, script):
    from surrogates.data.generate import DatagenConfig, generate
    from surrogates.data.protocols import ProtocolConfig

    data = tmp_path / "data"
    generate(DatagenConfig(num_sequences=8, shard_size=4, seed=5, protocols=ProtocolConfig(max_duration_s=200.0)),
             data, workers=1, progress=False)
    summary = script("train_surrogate").main([
        "--arch", "transformer", "--data", str(data), "--out", str(tmp_path / "run"), "--max-epochs", "1",
        "--holdout-family", "", "--val-fraction", "0.25", "--test-fraction", "0.25", "--threads", "1",
        "--progress", "false", "--model", "{d_model: 16, n_layer: 1, n_head: 2, mlp_hidden: 32, max_len: 64}",
    ])
    assert np.isfinite(summary["meta"]["validation"]["voltage_mae_mV"])
    assert (tmp_path / "run" / "best.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_train_agent_off_policy_algorithms(algo, tmp_path, script):
    report = script("train_agent").main([
        "--algo", algo, "--total-timesteps", "400", "--n-envs", "4", "--eval-freq", "200", "--eval-episodes", "1",
        "--hyperparams", "{learning_starts: 100, buffer_size: 1000, batch_size: 32}", "--references", REFERENCES_2PT,
        "--backend", "surrogate",
        "--threads", "1", "--progress", "false", "--out", str(tmp_path / algo),
    ])
    assert (tmp_path / algo / "policy.zip").exists() and report["algo"] == algo


@pytest.mark.slow
def test_ablate_diagnostics_trains_the_variants_and_judges_them_on_the_ground_truth(tmp_path, script):
    table = Path(__file__).resolve().parents[1] / "support" / "references-2pt.json"
    args = ["--agent", "{total_timesteps: 512, n_envs: 4, eval_freq: 256, eval_episodes: 1, "
            "hyperparams: {n_steps: 64, batch_size: 128, n_epochs: 1}}", "--seeds", "[0]",
            "--variants", '{"margin, no diagnostics": {"train_env": {"diagnostics": []}}, '
            '"BMS only + diagnostics": {"env_id": "cellgym/FastChargeBMS-v1"}}',
            "--references", str(table), "--compare", "false", "--life-soc", "0.7", "--n-cycles", "6",
            "--out", str(tmp_path), "--threads", "1", "--progress", "false"]
    runs = script("ablate_diagnostics").main(args)
    assert set(runs) == {"margin, no diagnostics", "BMS only + diagnostics"}
    bms = yaml.safe_load((Path(runs["BMS only + diagnostics"][0]) / "config.yml").read_text())
    assert bms["config"]["env_id"] == "cellgym/FastChargeBMS-v1" and bms["hyperparams"]["env_kwargs"]["w_plating"] == 0.0
    assert bms["hyperparams"]["env_kwargs"]["violation_penalty"] == 100.0  # crashing costs more than charging
    assert bms["hyperparams"]["env_kwargs"]["diagnostics"] == ["plating", "degradation"]
    measured = sorted((tmp_path / "policies").glob("*.json"))
    assert len(measured) == 2
    for path in measured:  # every charge ran on the DFN with its degradation submodels, with a life after
        res = json.loads(path.read_text())
        for row in res["grid"].values():
            assert row["irreversible_charge_mAh"] > 0 and "plating_exposure_mVmin" in row
            assert row["estimated_charge_mAh"] == row["estimated_charge_mAh"]  # the estimator's view, beside the DFN's
        assert all(life["cycles"] == 6 for life in res["life"].values())
    text = (tmp_path / "degradation.md").read_text()
    assert "BMS only + diagnostics" in text and (tmp_path / "fronts.png").exists() and (tmp_path / "capacity.png").exists()
    again = json.loads((tmp_path / "runs.json").read_text())
    script("ablate_diagnostics").main(args)  # finished runs are reused, measured policies kept
    assert json.loads((tmp_path / "runs.json").read_text())["train_minutes"] == {} and again["train_minutes"]


@pytest.mark.slow
def test_train_life_estimator_simulates_lives_fits_and_resumes(tmp_path, script):
    args = ["--n-protocols", "4", "--n-cycles", "3", "--holdout", '["CC-CV 1C"]', "--training", "{epochs: 20}",
            "--out", str(tmp_path), "--progress", "false"]
    result = script("train_life_estimator").main(args)
    groups = {r["group"] for r in result["lives"]}
    assert groups == {"train", "test", "CC-CV"}  # CC-CV from 10 % SOC at 10 and 25 C (it times out at 40 C)
    for r in result["lives"]:
        assert 1e3 < r["dfn_cycles_to_90"] < 1e7 and r["predicted"] > 0
    assert set(result["metrics"]) == groups and result["metrics"]["CC-CV"]["n"] == 2
    for name in ("life.md", "life.png", "life.pt", "life.json"):
        assert (tmp_path / name).exists()
    lives = sorted((tmp_path / "lives").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in lives]
    again = script("train_life_estimator").main(args)  # the lives are read back, not simulated again
    assert [p.stat().st_mtime_ns for p in lives] == stamps
    assert [r["dfn_cycles_to_90"] for r in again["lives"]] == [r["dfn_cycles_to_90"] for r in result["lives"]]
