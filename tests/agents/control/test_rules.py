"""CC-CV and multi-step CC baselines act through the env API, on both backends and on the VecEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import envs  # noqa: F401  (registers the id)
from agents.control.rules import CCCVPolicy, MultiStepCCPolicy
from envs.config import ChargingConfig, obs_to_physical
from envs.vector import SurrogateVecEnv

ID = "cellgym/FastCharge-v2"


@pytest.fixture(scope="module")
def pybamm_env():
    # 0.75 -> 0.8 SOC at 2C: the voltage reaches 4.2 V at once, so the CV phase is exercised.
    env = Monitor(gym.make(ID, backend="pybamm", soc_start=0.75, soc_target=0.8, c_max=2.0,
                           ambient_temperature=298.15))
    yield env
    env.close()


def episode(policy, env, seed=0):
    """Infos of one episode of ``policy`` on ``env``."""
    obs, info = env.reset(seed=seed)
    infos = [info]
    while True:
        action, _ = policy.predict(obs)
        obs, _, term, trunc, info = env.step(action)
        infos.append(info)
        if term or trunc:
            return infos


def test_predict_has_sb3_shapes_for_single_and_batched_observations():
    policy = CCCVPolicy(2.0)
    obs = np.array([0.2, 0.0, 0.0, 0.3, 0.0, 0.0], dtype=np.float32)
    action, state = policy.predict(obs, state="s", episode_start=np.array([True]))
    assert action.shape == (1,) and action.dtype == np.float32 and state == "s"
    assert action[0] == pytest.approx(2.0 * 2.0 / 5.0 - 1.0)  # 2C of c_max = 5C
    batch = np.stack([obs] * 7)
    actions, _ = policy.predict(batch)
    assert actions.shape == (7, 1) and np.all(np.abs(actions) <= 1.0)


def test_cv_phase_tapers_the_current_at_v_max():
    cfg = ChargingConfig()
    policy = CCCVPolicy(3.0, config=cfg)
    # mid-episode (elapsed > 0), last interval at 3C: below v_max -> stay at 3C; above -> reduce.
    below = np.array([(4.1 - cfg.v_ref) / 0.5, 3.0 / cfg.c_max, 0, 0.5, 0.1, 0], dtype=np.float32)
    above = below.copy()
    above[0] = (4.25 - cfg.v_ref) / 0.5
    c_below, c_above = policy.c_rate(np.stack([below, above]))
    assert c_below == pytest.approx(3.0) and c_above == pytest.approx(3.0 - policy.cv_gain * 0.05, abs=1e-5)


def test_windows_are_validated():
    with pytest.raises(ValueError, match="increasing"):
        MultiStepCCPolicy([(0.5, 2.0), (0.3, 1.0)])
    with pytest.raises(ValueError, match="c_max"):
        CCCVPolicy(6.0)
    with pytest.raises(ValueError, match="at least one"):
        MultiStepCCPolicy([])


def test_multistep_follows_its_soc_windows_on_the_surrogate(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.1, v_max=4.4)  # far cap: CC only
    policy = MultiStepCCPolicy.for_env(env, [(0.3, 3.0), (0.5, 2.0), (1.0, 1.0)])
    infos = episode(policy, env)
    assert infos[-1]["reached_target"]
    for before, after in zip(infos, infos[1:]):
        soc = np.float32(before["soc"])  # what the policy sees: the float32 observation
        expected = 3.0 if soc < np.float32(0.3) else 2.0 if soc < np.float32(0.5) else 1.0
        assert after["c_rate"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_cccv_on_the_dfn_holds_v_max_and_reaches_the_target(pybamm_env):
    policy = CCCVPolicy.for_env(pybamm_env, 2.0)
    infos = episode(policy, pybamm_env)
    assert infos[-1]["reached_target"] and not infos[-1]["hard_violation"]
    v = np.array([i["voltage_max"] for i in infos[1:]])
    c = np.array([i["c_rate"] for i in infos[1:]])
    # The first 10 s interval at 2C from rest overshoots (a discrete-time controller cannot
    # react inside it); after a transient of a few intervals CV holds the limit within a few mV.
    assert v.max() < 4.2 + 0.1 and v[3:].max() <= 4.2 + 0.01 and abs(v[-1] - 4.2) < 0.005
    assert c[0] == pytest.approx(2.0) and c[-1] < 1.9 and np.all(np.diff(c[1:]) <= 1e-9)  # taper


@pytest.mark.slow
def test_same_evaluation_code_on_both_backends(pybamm_env, tiny_checkpoint):
    """SB3's evaluate_policy drives a baseline on the DFN and on the surrogate, unchanged."""
    kw = dict(soc_start=0.75, soc_target=0.8, c_max=2.0, ambient_temperature=298.15)
    surrogate_env = Monitor(gym.make(ID, surrogate=str(tiny_checkpoint), **kw))
    for env in (pybamm_env, surrogate_env):
        for policy in (CCCVPolicy.for_env(env, 1.5), MultiStepCCPolicy.for_env(env, [(0.78, 2.0), (1.0, 1.0)])):
            returns, lengths = evaluate_policy(policy, env, n_eval_episodes=1, return_episode_rewards=True)
            assert len(returns) == 1 and 0 < lengths[0] < 100 and np.isfinite(returns[0])


def test_baselines_drive_the_vecenv(tiny_checkpoint):
    venv = SurrogateVecEnv(6, surrogate=str(tiny_checkpoint), seed=0, soc_start=(0.5, 0.7), v_max=4.4)
    policy = CCCVPolicy.for_env(venv, 3.0)
    obs = venv.reset()
    reached = np.zeros(6, dtype=bool)
    for _ in range(60):
        actions, _ = policy.predict(obs)
        assert actions.shape == (6, 1)
        obs, _, dones, infos = venv.step(actions)
        reached |= np.array([i["reached_target"] for i in infos])
        phys = obs_to_physical(obs, venv.config)
        assert np.all(phys["soc"] < 0.8 + 1e-6)  # finished cells restart below the target
    assert reached.all()
