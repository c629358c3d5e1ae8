"""cellgym/FastCharge-v2 on both backends: API checks, actions, reward, termination, seeding, failures."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.charging import FLAGS, INFO_KEYS, REWARD_TERMS
from envs.config import OBS_NAMES, ChargingConfig, obs_to_physical

ID = "cellgym/FastCharge-v2"
# A short PyBaMM task: 0.75 -> 0.8 SOC at up to 1C is at most 18 intervals.
SHORT = dict(soc_start=0.75, soc_target=0.8, c_max=1.0, ambient_temperature=298.15)


@pytest.fixture(scope="module")
def pybamm_env():
    env = gym.make(ID, backend="pybamm", **SHORT)
    yield env
    env.close()


@pytest.fixture
def surrogate_env(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint))
    yield env
    env.close()


def _env(request, name):
    return request.getfixturevalue(name)


def rollout(env, actions, seed):
    """(obs, reward, terminated, truncated, info) of each step of one seeded episode."""
    out = [env.reset(seed=seed)]
    for a in actions:
        obs, r, te, tr, info = env.step(np.array([a], dtype=np.float32))
        out.append((obs, r, te, tr, info))
        if te or tr:
            break
    return out


# ---------------------------------------------------------------------- registration and API
def test_id_is_registered_at_import(tiny_checkpoint):
    assert envs.FAST_CHARGE_ID == ID
    assert ID in gym.registry
    assert gym.registry[ID].entry_point == "envs.charging:FastChargeEnv"
    assert gym.registry[ID].vector_entry_point == "envs.gym_vector:FastChargeVectorEnv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "out of date" warning: only the current versions are registered
        gym.make(ID, surrogate=str(tiny_checkpoint))


REGISTERED_IDS: tuple[str, ...] = tuple(sorted(env_id for env_id in gym.registry if env_id.startswith("cellgym/")))
"""Every id ``import envs`` registered, read from Gymnasium's registry: an id added there is checked without a list here."""


def test_the_checked_ids_include_every_id_envs_names():
    assert {envs.FAST_CHARGE_ID, envs.FAST_CHARGE_DIAGNOSTICS_ID, envs.FAST_CHARGE_BMS_ID} <= set(REGISTERED_IDS)


@pytest.mark.parametrize("env_id, backend", [(env_id, "surrogate") for env_id in REGISTERED_IDS] + [(ID, "pybamm")])
def test_gymnasium_and_sb3_check_env_without_warnings(request, tiny_checkpoint, env_id, backend):
    """Every registered cellgym/ id on the surrogate backend (with its registered kwargs: the diagnostics ids score
    their shipped diagnostics), and the base id on the pybamm backend."""
    if backend == "pybamm":
        env = _env(request, "pybamm_env")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # making it warns of nothing either (no "out of date")
            env = gym.make(env_id, surrogate=str(tiny_checkpoint))
        request.addfinalizer(env.close)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_unknown_arguments_and_backends_are_refused(tiny_checkpoint):
    with pytest.raises(TypeError, match=r"FastChargeEnv.__init__\(\) got an unexpected keyword argument 'c_maximum'; "
                                        r"valid keyword arguments: chemistry, backend, .*c_max,"):
        gym.make(ID, surrogate=str(tiny_checkpoint), c_maximum=3.0)
    with pytest.raises(TypeError, match=r"got unexpected keyword arguments 'c_maximum', 'frameskip'; valid"):
        envs.FastChargeEnv(surrogate=str(tiny_checkpoint), c_maximum=3.0, frameskip=1)
    with pytest.raises(ValueError, match=r"render_mode must be None or one of 'rgb_array', 'human', got 'ansi'"):
        envs.FastChargeEnv(surrogate=str(tiny_checkpoint), render_mode="ansi")
    with pytest.raises(ValueError, match="backend must be"):
        gym.make(ID, backend="ecm")
    with pytest.raises(ValueError, match="kelvin"):
        gym.make(ID, surrogate=str(tiny_checkpoint), ambient_temperature=25.0)
    with pytest.raises(ValueError, match="below soc_target"):
        gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.9)


def test_config_defaults():
    cfg = ChargingConfig()
    assert cfg.v_max == 4.2 and ChargingConfig(chemistry="lfp").v_max == 3.6
    assert cfg.t_max == 318.15 and cfg.plating_limit == 0.0
    assert cfg.c_max == 5.0 and cfg.soc_start == (0.05, 0.2) and cfg.soc_target == 0.8
    assert cfg.max_steps == 720 and math.isclose(cfg.one_c, 5.0)
    assert cfg.torch_threads is None and cfg.flush_denormal is True


def _flushes_denormals() -> bool:
    import torch

    return (torch.tensor([1e-39]) * 2.0).item() == 0.0


def test_torch_settings_are_explicit_and_applied_where_the_surrogate_is_built(tiny_checkpoint):
    import torch

    from envs.vector import SurrogateVecEnv

    threads, flushing = torch.get_num_threads(), _flushes_denormals()
    try:
        torch.set_flush_denormal(False)
        gym.make(ID, surrogate=str(tiny_checkpoint), torch_threads=2)
        assert torch.get_num_threads() == 2 and _flushes_denormals()  # flush_denormal=True by default
        venv = SurrogateVecEnv(2, surrogate=str(tiny_checkpoint), torch_threads=1, flush_denormal=False)
        assert torch.get_num_threads() == 1 and not _flushes_denormals()
        venv.set_attr("flush_denormal", True)
        assert _flushes_denormals() and venv.get_attr("flush_denormal") == [True, True]
        torch.set_num_threads(3)
        gym.make(ID, surrogate=str(tiny_checkpoint), flush_denormal=None)  # None: leave torch's settings
        assert torch.get_num_threads() == 3 and _flushes_denormals()
        gym.make(ID, backend="pybamm", torch_threads=2)  # no torch on this path: nothing to set
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(flushing)
    for bad in (dict(torch_threads=0), dict(torch_threads=1.5), dict(torch_threads=True), dict(flush_denormal="yes")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ChargingConfig(**bad)


# ---------------------------------------------------------------------- observation and info
@pytest.mark.parametrize("env_name", ["surrogate_env", "pybamm_env"])
def test_observation_is_bms_measurements_and_info_has_everything(request, env_name):
    env = _env(request, env_name)
    obs, info = env.reset(seed=1)
    assert set(info) == set(INFO_KEYS)
    assert "plating_margin" not in OBS_NAMES and obs.shape == (len(OBS_NAMES),)
    for _ in range(3):
        obs, reward, term, trunc, info = env.step(np.array([0.0], dtype=np.float32))
        assert set(info) == set(INFO_KEYS)
        assert reward == pytest.approx(sum(info[k] for k in REWARD_TERMS), abs=1e-9)
        phys = obs_to_physical(obs, env.unwrapped.config)
        for key, tol in [("voltage", 1e-5), ("c_rate", 1e-5), ("temperature", 1e-4), ("soc", 1e-6),
                         ("elapsed", 1e-3), ("ambient_temperature", 1e-4)]:
            assert phys[key] == pytest.approx(info[key], abs=tol), key
        assert info["current"] == pytest.approx(-info["c_rate"] * env.unwrapped.config.one_c)
        if term or trunc:
            break


def test_same_info_keys_and_spaces_on_both_backends(surrogate_env, pybamm_env):
    infos = []
    for env in (surrogate_env, pybamm_env):
        env.reset(seed=0, options={"soc_start": 0.75})
        infos.append(env.step(np.array([-0.5], dtype=np.float32))[-1])
    assert set(infos[0]) == set(infos[1]) == set(INFO_KEYS)
    assert surrogate_env.observation_space == pybamm_env.observation_space
    assert surrogate_env.action_space == pybamm_env.action_space


# ---------------------------------------------------------------------- actions
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("env_name", ["surrogate_env", "pybamm_env"])
def test_nonfinite_actions_raise(request, env_name, bad):
    env = _env(request, env_name)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([bad], dtype=np.float32))


def test_malformed_actions_raise(surrogate_env):
    surrogate_env.reset(seed=0)
    with pytest.raises(ValueError, match="action value"):
        surrogate_env.step(np.array([0.1, 0.2], dtype=np.float32))
    with pytest.raises(ValueError, match="numbers"):
        surrogate_env.step("fast")


def test_action_maps_to_c_rate_and_out_of_range_is_clipped(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), c_max=4.0)
    for action, c_rate in [(-1.0, 0.0), (0.0, 2.0), (1.0, 4.0), (3.0, 4.0), (-7.0, 0.0), (0.5, 3.0)]:
        env.reset(seed=0)
        info = env.step(np.array([action], dtype=np.float32))[-1]
        assert info["c_rate"] == pytest.approx(c_rate)
        assert info["current"] == pytest.approx(-c_rate * 5.0)  # nmc: 1C = 5 A, negative charges
    a = rollout(env, [5.0] * 4, seed=3)
    b = rollout(env, [1.0] * 4, seed=3)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def test_step_before_reset_and_after_the_end_raises(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), time_limit=20.0).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))
    env.reset(seed=0)
    env.step(np.zeros(1, dtype=np.float32))
    assert env.step(np.zeros(1, dtype=np.float32))[3]  # truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))


# ---------------------------------------------------------------------- reward and episode end
def test_reaching_the_target_terminates(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.7, soc_target=0.8, c_max=2.0, v_max=4.4)
    steps = rollout(env, [1.0] * 100, seed=0)
    obs, reward, term, trunc, info = steps[-1]
    assert term and not trunc and info["reached_target"] and not info["hard_violation"]
    assert info["soc"] >= 0.8 - 1e-9  # coulomb counting in floats; the env allows 1e-9
    # 0.1 SOC at 2C is 180 s: 18 intervals of 10 s.
    assert len(steps) - 1 == 18
    # progress is paid up to the target only
    total_progress = sum(s[-1]["reward_progress"] for s in steps[1:])
    assert total_progress == pytest.approx(env.unwrapped.config.w_progress * (0.8 - 0.7))


def test_time_limit_truncates_and_resting_costs_time(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), time_limit=50.0)
    steps = rollout(env, [-1.0] * 10, seed=0)
    assert len(steps) - 1 == 5
    assert all(not s[2] and not s[3] for s in steps[1:-1])
    obs, reward, term, trunc, info = steps[-1]
    assert trunc and not term
    assert reward == pytest.approx(-env.unwrapped.config.w_time)
    assert obs[OBS_NAMES.index("elapsed")] == pytest.approx(1.0)


def test_hard_violation_terminates_with_penalty(tiny_checkpoint):
    # v_max far below the cell's OCV: the first interval is a hard voltage violation.
    env = gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.6, v_max=3.0, violation_penalty=7.0)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(np.array([0.0], dtype=np.float32))
    assert term and not trunc and info["hard_voltage"] and info["hard_violation"] and not info["reached_target"]
    assert info["reward_violation"] == -7.0
    assert info["reward_voltage"] == pytest.approx(-20.0 * (info["voltage_max"] - 3.0))
    assert env.observation_space.contains(obs)


def test_mild_violations_are_penalised_without_terminating(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.6, plating_limit=1.0, t_max=250.0,
                   hard_temperature_margin=None, w_plating=3.0, w_temperature=0.5)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(np.array([0.0], dtype=np.float32))
    assert not term
    assert info["reward_plating"] == pytest.approx(-3.0 * (1.0 - info["plating_margin_min"]))
    assert info["reward_temperature"] == pytest.approx(-0.5 * (info["temperature_max"] - 250.0))
    assert info["reward_violation"] == 0.0


# ---------------------------------------------------------------------- seeding
@pytest.mark.parametrize("env_name", ["surrogate_env", "pybamm_env"])
def test_seeded_reset_reproduces_the_episode(request, env_name):
    env = _env(request, env_name)
    actions = np.random.default_rng(0).uniform(-1, 1, 6)
    a, b = rollout(env, actions, seed=11), rollout(env, actions, seed=11)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert a[0][1] == b[0][1]
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    if isinstance(env.unwrapped.config.soc_start, tuple):  # another seed, another start
        assert rollout(env, actions[:1], seed=12)[0][1]["soc"] != a[0][1]["soc"]


def test_reset_options_fix_the_start_state(surrogate_env):
    obs, info = surrogate_env.reset(seed=0, options={"soc_start": 0.42, "ambient_temperature": 300.0})
    assert info["soc"] == 0.42 and info["ambient_temperature"] == 300.0
    with pytest.raises(ValueError, match="unknown reset options"):
        surrogate_env.reset(options={"soc": 0.5})


# ---------------------------------------------------------------------- PyBaMM failures
@pytest.mark.parametrize("error", ["DFNSolverError", "SimulationWindowError"])
def test_pybamm_solver_failure_ends_the_episode_without_crashing(pybamm_env, monkeypatch, error):
    import surrogates.physics.dfn as dfn

    env = pybamm_env.unwrapped
    obs0, info0 = env.reset(seed=0)
    obs1, *_, info1 = env.step(np.array([0.0], dtype=np.float32))

    def fail(current):
        raise getattr(dfn, error)("forced failure for the test")

    monkeypatch.setattr(env.backend.sim, "step", fail)
    obs, reward, term, trunc, info = env.step(np.array([0.0], dtype=np.float32))
    assert term and not trunc
    assert info["solver_failure"] and error in info["solver_message"]
    assert info["reward_violation"] == -env.config.violation_penalty
    assert info["reward_progress"] == 0.0
    assert reward == pytest.approx(sum(info[k] for k in REWARD_TERMS))
    assert env.observation_space.contains(obs) and np.all(np.isfinite(obs))
    for k in ("voltage", "temperature", "plating_margin", "soc"):  # the last simulated values
        assert info[k] == info1[k]
    monkeypatch.undo()
    obs, info = env.reset(seed=0)  # usable again
    np.testing.assert_array_equal(obs, obs0)
    assert not env.step(np.array([0.0], dtype=np.float32))[-1]["solver_failure"]


def test_real_pybamm_failure_at_an_absurd_current_is_a_flag():
    env = gym.make(ID, backend="pybamm", soc_start=0.7, c_max=10.0, hard_voltage_margin=None,
                   ambient_temperature=298.15)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))  # 10C at 70 % SOC
    assert term and info["solver_failure"] and "DFN" in info["solver_message"]
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(np.array([-0.9], dtype=np.float32))  # 0.5C is fine
    assert not info["solver_failure"]


# ---------------------------------------------------------------------- the surrogate argument
def test_surrogate_as_object_path_or_architecture(tiny_checkpoint, tmp_path, monkeypatch):
    import surrogates.models.surrogate as ss

    obj = ss.load_surrogate("nmc", "mamba", path=tiny_checkpoint)
    by_obj = gym.make(ID, surrogate=obj)
    assert by_obj.unwrapped.backend.surrogate is obj
    by_path = gym.make(ID, surrogate=str(tiny_checkpoint))
    monkeypatch.setattr(ss, "CHECKPOINT_DIR", tiny_checkpoint.parent)  # holds nmc-mamba.pt
    by_name = gym.make(ID, surrogate="mamba")
    obs = [e.reset(seed=0)[0] for e in (by_obj, by_path, by_name)]
    steps = [e.step(np.array([0.3], dtype=np.float32))[0] for e in (by_obj, by_path, by_name)]
    for i in (1, 2):
        np.testing.assert_array_equal(obs[0], obs[i])
        np.testing.assert_array_equal(steps[0], steps[i])
    with pytest.raises(FileNotFoundError):
        gym.make(ID, surrogate=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="chemistry"):
        gym.make(ID, chemistry="lfp", surrogate=obj)
    with pytest.raises(ValueError, match="dt"):
        gym.make(ID, surrogate=obj, dt=5.0)


@pytest.mark.parametrize("arch", ["transformer", "jepa"])
def test_other_architectures_run_an_episode(tiny_checkpoints, arch):
    env = gym.make(ID, surrogate=str(tiny_checkpoints[arch]), time_limit=300.0, soc_start=0.2)
    steps = rollout(env, [-0.8] * 40, seed=0)
    assert steps[-1][3] and len(steps) - 1 == 30  # truncated at 300 s
    assert all(np.all(np.isfinite(s[0])) for s in steps)


# ---------------------------------------------------------------------- agreement with PyBaMM
@pytest.mark.parametrize("arch", ["jepa", "mamba", "transformer"])
@pytest.mark.parametrize("protocol", ["cccv", "multistep"])
@pytest.mark.slow
def test_backends_agree_with_the_shipped_surrogate(protocol, arch):
    """Same action sequence on both backends: voltage MAE <= 20 mV, time to target within 2 %."""
    from agents.control.rules import CCCVPolicy, MultiStepCCPolicy
    from surrogates.models.surrogate import checkpoint_path

    if not checkpoint_path("nmc", arch).exists():
        pytest.skip(f"no shipped surrogate surrogates/models/checkpoints/nmc-{arch}.pt")
    kw = dict(soc_start=0.5, soc_target=0.6, ambient_temperature=298.15, c_max=2.0)
    envs_ = {b: gym.make(ID, backend=b, surrogate=arch, **kw) for b in ("pybamm", "surrogate")}
    cfg = envs_["pybamm"].unwrapped.config
    policy = (CCCVPolicy(1.0, config=cfg) if protocol == "cccv"
              else MultiStepCCPolicy([(0.55, 1.5), (0.6, 1.0)], config=cfg))

    def closed_loop(env):
        obs, _ = env.reset(seed=0)
        actions, volts = [], []
        while True:
            a, _ = policy.predict(obs)
            obs, _, term, trunc, info = env.step(a)
            actions.append(a), volts.append(info["voltage"])
            if term or trunc:
                return np.array(actions), np.array(volts), info

    actions, v_ref, info_ref = closed_loop(envs_["pybamm"])
    assert info_ref["reached_target"]
    sur = envs_["surrogate"]
    sur.reset(seed=0)
    v_sur = np.array([sur.step(a)[-1]["voltage"] for a in actions])  # the same action sequence
    assert np.mean(np.abs(v_sur - v_ref)) <= 0.020
    _, v_cl, info_cl = closed_loop(sur)  # the same policy, closed loop
    assert info_cl["reached_target"]
    assert abs(info_cl["elapsed"] - info_ref["elapsed"]) <= 0.02 * info_ref["elapsed"]


def test_flags_are_bools(surrogate_env):
    _, info = surrogate_env.reset(seed=0)
    assert all(type(info[k]) is bool for k in FLAGS)
    info = surrogate_env.step(np.array([0.0], dtype=np.float32))[-1]
    assert all(type(info[k]) is bool for k in FLAGS)
    assert all(type(info[k]) is float for k in INFO_KEYS if k not in FLAGS)
