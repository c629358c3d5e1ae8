"""The run's settings come from the rl-baselines3-zoo hyperparameter files, which rl_zoo3 reads too."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3.common.noise import NormalActionNoise

import envs
from agents.rl import HYPERPARAMS_DIR
from agents.rl.algorithms import ALGOS, agent_buffers, algorithm, load_hyperparams, make_callbacks, model_kwargs
from agents.rl.callbacks import DiagnosticWarmupCallback
from surrogates.common.tables import markdown_table
from agents.rl.train import AgentConfig, is_trained, resolve, resolve_hyperparams
from envs.config import ChargingConfig

ROOT = Path(__file__).resolve().parents[3]


def test_one_hyperparameter_file_per_algorithm_and_every_entry_builds():
    assert sorted(p.stem for p in HYPERPARAMS_DIR.glob("*.yml")) == sorted(ALGOS)
    for algo in ALGOS:
        for env_id in yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text()):
            hp = load_hyperparams(algo, env_id)
            kwargs = model_kwargs(hp, n_actions=1)
            assert not set(kwargs) & {"n_timesteps", "n_envs", "policy", "env_kwargs", "normalize", "callback"}
            assert isinstance(kwargs.get("policy_kwargs", {}), dict)
            ChargingConfig(**hp["env_kwargs"])  # valid env kwargs
            assert [type(c) for c in make_callbacks(hp)] == [DiagnosticWarmupCallback]
    # a string policy_kwargs means the same to rl_zoo3 (eval) and to us (ast.literal_eval)
    text = yaml.safe_load((HYPERPARAMS_DIR / "ppo.yml").read_text())[envs.FAST_CHARGE_ID]["policy_kwargs"]
    assert eval(text) == ast.literal_eval(text) == {"net_arch": [64, 64], "log_std_init": -1.5}  # noqa: S307


def test_the_default_training_env_is_the_env_with_tightened_limits_and_paid_diagnostics():
    """10 mV, 2 K and 4 mV inside the env's own limits; the diagnostics plating and degradation, ramped in."""
    hp = resolve_hyperparams(AgentConfig())
    kw = dict(hp["env_kwargs"])
    assert kw.pop("surrogate") == "jepa" and kw["chemistry"] == "nmc"
    own, train = ChargingConfig(), ChargingConfig(**kw)
    assert train.v_max == pytest.approx(own.v_max - 0.010) and train.t_max == pytest.approx(own.t_max - 2.0)
    assert train.plating_limit == pytest.approx(own.plating_limit + 0.004)
    assert train.diagnostics == ("plating", "degradation")
    assert train.diagnostic_weights["plating"] == 0.2 and train.diagnostic_weights["degradation"] == 100.0
    assert (train.w_time, train.w_voltage, train.w_temperature, train.w_plating) == (0.1, 100.0, 5.0, 100.0)
    assert (hp["n_timesteps"], hp["n_envs"], hp["n_steps"]) == (4_000_000, 128, 32)
    assert make_callbacks(hp)[0].fraction == 0.3
    # the agent trains on every start condition it is judged at, and the buffered oracle knows its buffers
    from agents.evaluation.grid import grid

    (soc_lo, soc_hi), (amb_lo, amb_hi) = train.soc_start, train.ambient_temperature
    assert all(soc_lo <= s.soc <= soc_hi and amb_lo <= s.ambient_temperature <= amb_hi for s in grid())
    assert agent_buffers(own) == pytest.approx((0.010, 2.0, 0.004))


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_the_bms_only_id_trains_without_the_margin_and_pays_for_a_crash(algo):
    """Every algorithm's file serves cellgym/FastChargeBMS-v1 with the margin's penalty off (the file's env_kwargs must
    not put it back) and a hard violation dearer than a charge; everything else as for FastCharge-v2."""
    bms = resolve_hyperparams(AgentConfig(algo=algo, env_id=envs.FAST_CHARGE_BMS_ID))
    base = resolve_hyperparams(AgentConfig(algo=algo))
    assert bms["env_kwargs"]["w_plating"] == 0.0 and bms["env_kwargs"]["violation_penalty"] == 100.0
    assert {k: v for k, v in bms["env_kwargs"].items() if k not in ("w_plating", "violation_penalty")} == \
        {k: v for k, v in base["env_kwargs"].items() if k not in ("w_plating", "violation_penalty")}
    assert {k: v for k, v in bms.items() if k != "env_kwargs"} == {k: v for k, v in base.items() if k != "env_kwargs"}


def test_another_chemistry_keeps_the_voltage_margin_and_drops_diagnostics_it_does_not_ship(capsys):
    kw = resolve_hyperparams(AgentConfig(chemistry="lfp"))["env_kwargs"]
    assert kw["chemistry"] == "lfp" and kw["v_max"] == pytest.approx(3.6 - 0.010)
    assert kw["diagnostics"] == [] and "no shipped lfp diagnostic(s) plating, degradation" in capsys.readouterr().out


def test_overrides_stack_over_the_registered_kwargs_and_the_file():
    env_id = "cellgym-test/WithKwargs-v0"  # not in the files: their `default` entry
    gym.register(env_id, entry_point="envs.charging:FastChargeEnv", kwargs={"c_max": 4.0, "w_time": 0.5})
    try:
        cfg = AgentConfig(env_id=env_id, total_timesteps=64, n_envs=2, hyperparams={"learning_rate": 1e-4},
                          env={"w_time": 0.2, "soc_target": 0.7}, train_env={"diagnostics": []})
        hp = resolve_hyperparams(cfg)
    finally:
        gym.registry.pop(env_id)
    assert (hp["n_timesteps"], hp["n_envs"], hp["learning_rate"]) == (64, 2, 1e-4)
    kw = hp["env_kwargs"]
    assert kw["c_max"] == 4.0 and kw["w_time"] == 0.2 and kw["soc_target"] == 0.7 and kw["diagnostics"] == []
    assert kw["v_max"] == 4.19  # the file's default entry carries the training env too


def test_algorithm_map_and_refusals():
    assert algorithm("td3") is ALGOS["td3"]
    with pytest.raises(ValueError, match="valid: ppo, sac, td3"):
        algorithm("a2c")
    noise = model_kwargs({"noise_type": "normal", "noise_std": 0.1}, n_actions=1)["action_noise"]
    assert isinstance(noise, NormalActionNoise) and np.allclose(noise._sigma, [0.1])
    with pytest.raises(ValueError, match="not supported"):
        model_kwargs({"normalize": True}, n_actions=1)
    with pytest.raises(ValueError, match="not a Python literal"):
        model_kwargs({"policy_kwargs": "dict(activation_fn=nn.ReLU)"}, n_actions=1)
    with pytest.raises(ValueError, match="unknown noise_type"):
        model_kwargs({"noise_type": "pink", "noise_std": 0.1}, n_actions=1)


def test_a_run_is_reused_only_with_the_same_effective_settings(tmp_path):
    cfg = AgentConfig(out=str(tmp_path), train_env={"diagnostics": []})
    assert not is_trained(cfg)
    (tmp_path / "config.yml").write_text(yaml.safe_dump(resolve(cfg), sort_keys=False))
    (tmp_path / "policy.zip").write_bytes(b"")
    assert is_trained(cfg)
    # unused diagnostic weights, threads, progress bar and what the replay measures change nothing; a seed or a
    # weight in use does
    assert is_trained(AgentConfig(out=str(tmp_path), train_env={"diagnostics": [], "diagnostic_weights": {"plating": 1.0}},
                                  threads=1, progress=False, backend="surrogate", life_cycles=0, degradation=False))
    assert not is_trained(AgentConfig(out=str(tmp_path), train_env={"diagnostics": []}, seed=1))
    assert not is_trained(AgentConfig(out=str(tmp_path), train_env={"diagnostics": [], "w_time": 0.2}))


def test_markdown_table():
    rows = [{"a": 1.0, "b": "x"}, {"a": math.nan, "b": "y"}]
    cols = [("A [1]", lambda r: "n/a" if math.isnan(r["a"]) else f"{r['a']:.1f}"), ("B", lambda r: r["b"])]
    assert markdown_table(rows, cols) == "| A [1] | B |\n|---|---|\n| 1.0 | x |\n| n/a | y |"


@pytest.mark.slow
def test_rl_zoo3_trains_from_the_same_file(tmp_path):
    """`python -m rl_zoo3.train ... --conf-file agents/rl/hyperparams/ppo.yml` builds our training env and callback."""
    pytest.importorskip("rl_zoo3")
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", envs.FAST_CHARGE_ID, "--gym-packages", "envs",
           "--conf-file", str(HYPERPARAMS_DIR / "ppo.yml"), "-n", "256", "--eval-freq", "-1", "-f", str(tmp_path),
           "--seed", "0", "--hyperparams", "n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:1"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'v_max': 4.19" in done.stdout and "diagnostic_weight_scale" in done.stdout
    assert list(tmp_path.glob("ppo/*/cellgym-FastCharge-v2.zip"))
