"""The diagnostic warm-up ramps the training env's weights, on our VecEnv and on rl_zoo3's DummyVecEnv alike."""

from __future__ import annotations

import gymnasium as gym
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

import envs
from agents.rl.callbacks import DiagnosticWarmupCallback
from envs.vector import SurrogateVecEnv


class _Model:
    """What BaseCallback reads of a model: its env, its logger (which keeps the last record of each key)."""

    num_timesteps = 0

    def __init__(self, venv):
        self.venv, self.records = venv, {}
        self.logger = self

    def get_env(self):
        return self.venv

    def record(self, key, value, exclude=None):
        self.records[key] = value


def _ramp(venv, fraction: float, total: int, steps) -> list[tuple[dict, dict]]:
    """(weights of every cell, records) at the start of a rollout after each of ``steps`` env steps."""
    cb = DiagnosticWarmupCallback(fraction)
    model = _Model(venv)
    cb.init_callback(model)
    cb.on_training_start({"total_timesteps": total}, {})
    out = []
    for t in steps:
        cb.num_timesteps = t
        cb.on_rollout_start()
        out.append(([dict(c.diagnostic_weights) for c in venv.get_attr("config")], dict(model.records)))
    return out


def test_diagnostic_warmup_ramps_the_weights_over_a_fraction_of_the_training():
    """Weights grow linearly from 0 over fraction * total steps, on every cell of the VecEnv; kinds the env
    does not use keep their (unused) share of the ramp."""
    venv = SurrogateVecEnv(2, diagnostics=("plating",), diagnostic_weights={"plating": 0.5})
    for (weights, records), expected in zip(_ramp(venv, 0.25, 400, (0, 25, 100, 400)), (0.0, 0.125, 0.5, 0.5)):
        assert weights[0]["plating"] == pytest.approx(expected) and weights[1]["plating"] == pytest.approx(expected)
        assert records["charts/diagnostic_weight_scale"] == pytest.approx(expected / 0.5)


def test_diagnostic_warmup_reaches_the_envs_of_a_dummy_vec_env():
    """rl_zoo3 trains on a DummyVecEnv of Monitor-wrapped envs: the weights the env uses change, not a wrapper's."""
    def make():
        return Monitor(gym.make(envs.FAST_CHARGE_ID, diagnostics=["plating"], diagnostic_weights={"plating": 0.2}))

    venv = DummyVecEnv([make, make])
    (start, _), (half, _) = _ramp(venv, 0.5, 100, (0, 25))
    assert [w["plating"] for w in start] == [0.0, 0.0]
    assert [w["plating"] for w in half] == pytest.approx([0.1, 0.1])
    assert venv.envs[0].unwrapped.diagnostic_terms.config.diagnostic_weights["plating"] == pytest.approx(0.1)


def test_diagnostic_warmup_leaves_an_env_without_diagnostics_alone():
    venv = SurrogateVecEnv(1)
    before = dict(venv.config.diagnostic_weights)
    ((weights, records),) = _ramp(venv, 0.3, 1000, (0,))
    assert weights[0] == before and records == {}


def test_diagnostic_warmup_refuses_a_fraction_outside_0_1():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        DiagnosticWarmupCallback(1.5)


class _DictsOnly(VecEnvWrapper):
    """A VecEnv whose infos are per-cell dicts only, as rl_zoo3's DummyVecEnv gives them."""

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()

    def get_attr(self, attr_name, indices=None):
        if attr_name == "last_step":
            raise AttributeError(attr_name)
        return self.venv.get_attr(attr_name, indices)


def _charge_stats(info_mode: str, tiny_checkpoint) -> dict:
    """ChargeStatsCallback's records after 60 steps of 4 cells under fixed random actions."""
    import numpy as np
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.rl.callbacks import ChargeStatsCallback

    venv = VecMonitor(SurrogateVecEnv(4, surrogate=str(tiny_checkpoint), seed=3, time_limit=200.0, info_mode=info_mode))
    if info_mode == "dicts":
        venv = _DictsOnly(venv)
    model = _Model(venv)
    model.output_formats = []
    cb = ChargeStatsCallback()
    cb.init_callback(model)
    cb.on_training_start({}, {})
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(60):
        _, _, dones, infos = venv.step(rng.uniform(-1, 1, (4, 1)).astype(np.float32))
        cb.update_locals({"infos": infos, "dones": dones})
        cb.on_step()
    cb.on_rollout_end()
    return model.records


def test_charge_stats_are_the_same_from_the_batched_envs_arrays_and_from_info_dicts(tiny_checkpoint):
    arrays, dicts = _charge_stats("arrays", tiny_checkpoint), _charge_stats("dicts", tiny_checkpoint)
    assert arrays["charts/episodes"] >= 4 and "charts/reward_time" in arrays
    assert arrays.keys() == dicts.keys()
    for k in arrays:
        assert arrays[k] == pytest.approx(dicts[k], rel=1e-12), k
