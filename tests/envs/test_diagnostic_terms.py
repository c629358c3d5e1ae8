"""Learned-diagnostic reward terms: config, history, scores and terms on both backends and in the VecEnv."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.charging import INFO_KEYS, evaluate_step, info_keys, reward_terms
from envs.config import ChargingConfig
from envs.diagnostic_terms import DiagnosticTerms, penalty
from envs.vector import SurrogateVecEnv

ID = "cellgym/FastCharge-v2"
DIAG = ("plating", "ood")
# Short episodes (as in test_vector.py): cells finish and reset within a few dozen steps.
KW = dict(soc_start=(0.6, 0.75), soc_target=0.8, time_limit=150.0)
SHORT = dict(soc_start=0.75, soc_target=0.8, c_max=1.0, ambient_temperature=298.15)  # PyBaMM: <= 18 steps


def rollout(env, actions, seed):
    out = [env.reset(seed=seed)]
    for a in actions:
        out.append(env.step(np.array([a], dtype=np.float32)))
        if out[-1][2] or out[-1][3]:
            break
    return out


def check_terms(info: dict, reward: float, config: ChargingConfig) -> None:
    """Keys present, the terms follow from the scores and the weights, the terms sum to the reward."""
    assert set(info_keys(config)) <= set(info)
    assert set(info) - set(info_keys(config)) <= {"solver_message", "TimeLimit.truncated", "terminal_observation"}
    w = config.diagnostic_weights
    for kind in config.diagnostics:
        s = info[f"diag_{kind}"]
        assert type(s) is float and np.isfinite(s)
        assert info[f"reward_diag_{kind}"] == pytest.approx(-w[kind] * float(penalty(kind, np.float64(s))))
    assert 0.0 <= info.get("diag_plating", 0.0) <= 1.0
    assert reward == pytest.approx(sum(info[k] for k in reward_terms(config)), abs=1e-9)


class FakeDiagnostic:
    """A stand-in with a Diagnostic's interface: records the windows it scores, scores their mean current."""

    def __init__(self, kind: str, window: int, chemistry: str = "nmc", dt: float = 10.0, scale: float = 1.0):
        self.kind, self.window, self.chemistry, self.dt, self.scale = kind, window, chemistry, dt, scale
        self.calls: list[np.ndarray] = []

    def check_dt(self, dt):
        if abs(dt - self.dt) > 1e-9:
            raise ValueError(f"trained on dt={self.dt} s, not dt={dt} s")

    def score_windows(self, windows, batch_size=8192):
        self.calls.append(np.array(windows))
        return self.scale * np.abs(np.asarray(windows, dtype=np.float64)[:, :, 0]).mean(axis=1)


# ---------------------------------------------------------------------- config
def test_config_validates_and_normalises_diagnostics():
    cfg = ChargingConfig(diagnostics=["plating", "ood"], diagnostic_weights={"plating": 2})
    assert cfg.diagnostics == ("plating", "ood")
    assert cfg.diagnostic_weights == {"plating": 2.0, "ood": 1.0, "degradation": 100.0}  # the rest are defaults
    assert ChargingConfig(diagnostics="plating, ood").diagnostics == ("plating", "ood")  # CLI-style string
    assert ChargingConfig().diagnostics == () and ChargingConfig(diagnostics=None).diagnostics == ()
    json.dumps(cfg.to_dict())  # serialisable
    assert ChargingConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg  # lists back to tuples
    with pytest.raises(ValueError, match=r"unknown diagnostic kind\(s\) \['platting'\].*valid kinds are: plating, ood"):
        ChargingConfig(diagnostics=("platting",))
    with pytest.raises(ValueError, match="valid kinds are"):
        ChargingConfig(diagnostic_weights={"lithium": 1.0})
    with pytest.raises(ValueError, match="twice"):
        ChargingConfig(diagnostics=("plating", "plating"))
    for bad in (-1.0, float("nan"), "much"):
        with pytest.raises(ValueError, match="diagnostic_weights"):
            ChargingConfig(diagnostic_weights={"plating": bad})


def test_wrong_kind_name_is_a_clear_error_at_make(tiny_checkpoint):
    with pytest.raises(ValueError, match="valid kinds are: plating, ood"):
        gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=("plateing",))
    with pytest.raises(ValueError, match="valid kinds are: plating, ood"):
        SurrogateVecEnv(2, surrogate=str(tiny_checkpoint), diagnostics=["oodd"])


def test_a_chemistry_without_shipped_diagnostics_is_a_clear_error():
    cfg = ChargingConfig(chemistry="lfp", diagnostics=("plating",))
    shipped_and_how = r"shipped diagnostics: .*nmc-plating.*train_diagnostics\.py --kind plating --chemistry lfp"
    with pytest.raises(FileNotFoundError, match=shipped_and_how):
        DiagnosticTerms(cfg, 1)
    with pytest.raises(FileNotFoundError, match="lfp"):  # at make, before anything is simulated
        gym.make(ID, chemistry="lfp", backend="pybamm", diagnostics=("plating",))


def test_a_diagnostic_for_another_dt_is_refused():
    with pytest.raises(ValueError, match="dt"):
        DiagnosticTerms(ChargingConfig(diagnostics=("plating",), dt=5.0, time_limit=100.0), 1)


def test_penalty_mapping():
    s = np.array([0.0, 0.5, 1.0, 2.5])
    np.testing.assert_array_equal(penalty("plating", s), s)
    np.testing.assert_array_equal(penalty("ood", s), [0.0, 0.0, 0.0, 1.5])
    np.testing.assert_array_equal(penalty("degradation", np.array([0.0, 2e-6, -1e-6])), [0.0, 2e-3, 0.0])  # mA.h, never paid
    with pytest.raises(ValueError, match="no reward mapping for diagnostic kind"):
        penalty("corrosion", s)


def test_evaluate_step_needs_the_diagnostic_terms():
    cfg = ChargingConfig(diagnostics=("plating",))
    ch = {k: np.zeros(1) for k in ("voltage_max", "temperature_max", "plating_margin_min", "soc")}
    with pytest.raises(ValueError, match="plating"):
        evaluate_step(ch, np.zeros(1), np.ones(1), cfg)


# ---------------------------------------------------------------------- the env
def test_terms_and_info_keys_on_the_surrogate_backend(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG)
    cfg = env.unwrapped.config
    obs, info = env.reset(seed=0)
    assert set(info) == set(INFO_KEYS) | {"diag_plating", "diag_ood", "reward_diag_plating", "reward_diag_ood"}
    assert all(info[k] == 0.0 for k in info if "diag_" in k)  # the reset is not scored
    for a in (1.0, 1.0, 0.0, -1.0):
        obs, reward, term, trunc, info = env.step(np.array([a], dtype=np.float32))
        check_terms(info, reward, cfg)
    assert info["diag_plating"] > 0.0  # a trained classifier is never exactly sure
    # without diagnostics: the base keys only
    assert set(gym.make(ID, surrogate=str(tiny_checkpoint)).reset(seed=0)[1]) == set(INFO_KEYS)


def test_check_env_passes_with_diagnostics(tiny_checkpoint):
    import warnings

    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_terms_and_info_keys_on_the_pybamm_backend_and_a_solver_failure(monkeypatch):
    import surrogates.physics.dfn as dfn

    env = gym.make(ID, backend="pybamm", diagnostics=DIAG, **SHORT)
    cfg = env.unwrapped.config
    _, info = env.reset(seed=0)
    assert set(info) == set(info_keys(cfg))
    for _ in range(3):
        _, reward, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))
        check_terms(info, reward, cfg)
    history = env.unwrapped.diagnostic_terms.history.copy()

    def fail(current):
        raise dfn.DFNSolverError("forced failure for the test")

    monkeypatch.setattr(env.unwrapped.backend.sim, "step", fail)
    _, reward, term, trunc, failed = env.step(np.array([1.0], dtype=np.float32))
    assert term and failed["solver_failure"]
    for kind in DIAG:  # nothing was measured: the score repeats, no term, no history
        assert failed[f"diag_{kind}"] == info[f"diag_{kind}"] and failed[f"reward_diag_{kind}"] == 0.0
    np.testing.assert_array_equal(env.unwrapped.diagnostic_terms.history, history)
    assert reward == pytest.approx(sum(failed[k] for k in reward_terms(cfg)))


def test_hard_violation_intervals_are_scored_and_penalised(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), soc_start=0.6, v_max=3.0, diagnostics=("plating",),
                   diagnostic_weights={"plating": 5.0})
    env.reset(seed=0)
    _, reward, term, _, info = env.step(np.array([1.0], dtype=np.float32))
    assert term and info["hard_violation"]
    assert info["reward_diag_plating"] == pytest.approx(-5.0 * info["diag_plating"]) and info["diag_plating"] > 0
    check_terms(info, reward, env.unwrapped.config)


def test_weights_scale_the_terms_not_the_scores(tiny_checkpoint):
    actions = np.random.default_rng(0).uniform(-1, 1, 8)
    runs = [rollout(gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG, diagnostic_weights=w), actions, 3)
            for w in ({"plating": 1.0}, {"plating": 2.5, "ood": 0.0})]
    for (*_, a), (*_, b) in zip(runs[0][1:], runs[1][1:]):
        assert a["diag_plating"] == b["diag_plating"] and a["diag_ood"] == b["diag_ood"]
        assert b["reward_diag_plating"] == pytest.approx(2.5 * a["reward_diag_plating"])
        assert b["reward_diag_ood"] == 0.0
    fake = FakeDiagnostic("degradation", 4, scale=1e-6)  # 1e-6 A.h per A of mean current
    cfg = ChargingConfig(diagnostics=("degradation",), diagnostic_weights={"degradation": 3.0})
    terms = DiagnosticTerms(cfg, 2, diagnostics={"degradation": fake})
    terms.reset_rows([0, 1], [3.6, 3.7], [298.0, 299.0])
    scores, contrib = terms.step(np.array([-4.0, 0.0]), [3.7, 3.7], [298.0, 299.0])
    np.testing.assert_allclose(scores["degradation"], [1e-6, 0.0])
    np.testing.assert_allclose(contrib["degradation"], [-3.0 * 1000 * 1e-6, 0.0])  # 3 per mA.h
    cfg.diagnostic_weights = {**cfg.diagnostic_weights, "degradation": 1.0}  # read at every step
    assert terms.step(np.array([-4.0, 0.0]), [3.7, 3.7], [298.0, 299.0])[1]["degradation"][0] == pytest.approx(-2e-3)


def test_history_reset_fills_rest_values_and_each_diagnostic_sees_its_last_window(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG).unwrapped
    _, info = env.reset(seed=0)
    diag = env.diagnostic_terms
    W = diag.window
    rest = np.array([0.0, info["voltage"], info["temperature"]], dtype=np.float32)
    assert diag.history.shape == (1, W, 3) and diag.history.dtype == np.float32
    np.testing.assert_array_equal(diag.history[0], np.broadcast_to(rest, (W, 3)))
    measured = []
    for a in (1.0, 0.2, -1.0):
        *_, info = env.step(np.array([a], dtype=np.float32))
        measured.append([info["current"], info["voltage"], info["temperature"]])
    h = diag.history[0]
    np.testing.assert_array_equal(h[:-3], np.broadcast_to(rest, (W - 3, 3)))
    np.testing.assert_array_equal(h[-3:], np.asarray(measured, dtype=np.float32))
    # the scores are what the diagnostic says for the rest-padded history, through its public API
    for kind, d in diag.models.items():
        assert info[f"diag_{kind}"] == pytest.approx(float(d.score(h[:, 0], h[:, 1], h[:, 2])[0]), rel=1e-6, abs=1e-9)
    env.reset(seed=1)  # a new episode forgets the old one
    assert np.all(diag.history[0, :, 0] == 0.0) and np.all(diag.history[0, :, 1] == diag.history[0, 0, 1])

    # diagnostics with different windows share one history of the longest; each gets its last W
    fakes = {"plating": FakeDiagnostic("plating", 3), "degradation": FakeDiagnostic("degradation", 5)}
    terms = DiagnosticTerms(ChargingConfig(diagnostics=("plating", "degradation")), 2, diagnostics=fakes)
    assert terms.history.shape == (2, 5, 3)
    terms.reset_rows([0, 1], [3.5, 3.6], [300.0, 301.0])
    for k in range(4):
        terms.step(np.array([-float(k + 1), -10.0]), [3.7, 3.8], [302.0, 303.0])
    np.testing.assert_array_equal(fakes["plating"].calls[-1][0, :, 0], [-2.0, -3.0, -4.0])
    np.testing.assert_array_equal(fakes["degradation"].calls[-1][0, :, 0], [0.0, -1.0, -2.0, -3.0, -4.0])
    np.testing.assert_array_equal(fakes["degradation"].calls[-1][1, 0], np.float32([0.0, 3.6, 301.0]))  # row 1's rest
    terms.reset_rows(np.array([1]), [3.9], [299.0])  # one row: the other keeps its history
    np.testing.assert_array_equal(terms.history[1], np.broadcast_to(np.float32([0.0, 3.9, 299.0]), (5, 3)))
    assert terms.history[0, -1, 0] == -4.0 and terms.scores["plating"][1] == 0.0


def test_episodes_are_deterministic(tiny_checkpoint):
    actions = np.random.default_rng(1).uniform(-1, 1, 10)
    env = gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG)
    a, b = rollout(env, actions, seed=5), rollout(env, actions, seed=5)
    assert [x[1:] for x in a[1:]] == [y[1:] for y in b[1:]] and a[0][1] == b[0][1]
    c = rollout(gym.make(ID, surrogate=str(tiny_checkpoint), diagnostics=DIAG), actions, seed=5)  # a fresh env
    assert [x[1:] for x in a[1:]] == [y[1:] for y in c[1:]]


# ---------------------------------------------------------------------- the VecEnv
def test_vecenv_equals_single_envs_with_diagnostics(tiny_checkpoint):
    n, seed = 4, 20
    venv = SurrogateVecEnv(n, surrogate=str(tiny_checkpoint), seed=seed, diagnostics=DIAG,
                           diagnostic_weights={"ood": 50.0}, **KW)
    singles = [gym.make(ID, surrogate=venv.surrogate, diagnostics=DIAG, diagnostic_weights={"ood": 50.0}, **KW)
               for _ in range(n)]
    cfg = venv.config
    keys = info_keys(cfg)
    venv.reset()
    for i, e in enumerate(singles):
        e.reset(seed=seed + i)
        assert venv.reset_infos[i] == e.unwrapped._get_info()
        assert set(venv.reset_infos[i]) == set(keys)
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(30):
        actions = rng.uniform(-1.0, 1.2, (n, 1)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        for i, e in enumerate(singles):
            _, s_rew, term, trunc, s_info = e.step(actions[i])
            assert dones[i] == (term or trunc)
            check_terms(s_info, s_rew, cfg)
            assert set(infos[i]) - {"TimeLimit.truncated", "terminal_observation"} == set(keys)
            for k in keys:
                if isinstance(s_info[k], bool):
                    assert infos[i][k] == s_info[k], k
                else:  # batched float32 inference: rounding differs from a batch of one
                    assert infos[i][k] == pytest.approx(s_info[k], rel=1e-5, abs=1e-6), k
            assert rewards[i] == pytest.approx(s_rew, rel=1e-5, abs=1e-5)
            if term or trunc:
                resets += 1
                e.reset()
                assert all(venv.reset_infos[i][k] == 0.0 for k in keys if "diag_" in k)
                np.testing.assert_array_equal(venv.diagnostic_terms.history[i], e.unwrapped.diagnostic_terms.history[0])
    assert resets > 0  # auto-resets refilled rows of the shared history


def test_vecenv_weights_can_be_set_but_not_the_kinds(tiny_checkpoint):
    venv = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), seed=0, diagnostics=("plating",))
    venv.reset()
    infos = venv.step(np.ones((3, 1)))[-1]
    venv.set_attr("diagnostic_weights", {"plating": 0.0})
    assert venv.get_attr("diagnostic_weights")[0]["plating"] == 0.0
    infos = venv.step(np.ones((3, 1)))[-1]
    assert all(i["reward_diag_plating"] == 0.0 and i["diag_plating"] > 0.0 for i in infos)
    with pytest.raises(ValueError, match="diagnostics"):
        venv.set_attr("diagnostics", ("plating", "ood"))


# ---------------------------------------------------------------------- FastChargeDiagnostics-v1, FastChargeBMS-v1
RETIRED_IDS = ("cellgym/FastCharge-v0", "cellgym/FastCharge-v1", "cellgym/FastChargeDiagnostics-v0", "cellgym/FastChargeBMS-v0")
"""Versions whose task changed (envs' docstring); FastCharge-v1 was the diagnostics variant before it had an id of its own."""


@pytest.mark.parametrize("old", RETIRED_IDS)
def test_only_the_current_versions_are_registered(old):
    assert (envs.FAST_CHARGE_ID, envs.FAST_CHARGE_DIAGNOSTICS_ID, envs.FAST_CHARGE_BMS_ID) == (
        "cellgym/FastCharge-v2", "cellgym/FastChargeDiagnostics-v1", "cellgym/FastChargeBMS-v1")
    assert old not in gym.registry
    current = {"FastCharge": envs.FAST_CHARGE_ID, "FastChargeDiagnostics": envs.FAST_CHARGE_DIAGNOSTICS_ID,
               "FastChargeBMS": envs.FAST_CHARGE_BMS_ID}[old.split("/")[1].split("-")[0]]
    with warnings.catch_warnings(), pytest.raises(gym.error.DeprecatedEnv, match=f"use `{current}`"):
        warnings.simplefilter("ignore", DeprecationWarning)  # Gymnasium's "out of date" comes with the error
        gym.make(old)


def test_bms_id_is_the_diagnostics_task_without_the_margin():
    spec = gym.registry[envs.FAST_CHARGE_BMS_ID]
    assert spec.entry_point == "envs.charging:FastChargeEnv"
    assert spec.kwargs == {"diagnostics": envs.FAST_CHARGE_DIAGNOSTICS_KINDS, "w_plating": 0.0}


def test_diagnostics_id_is_registered_with_diagnostics(tiny_checkpoint):
    assert envs.FAST_CHARGE_DIAGNOSTICS_ID == "cellgym/FastChargeDiagnostics-v1"
    spec = gym.registry[envs.FAST_CHARGE_DIAGNOSTICS_ID]
    assert spec.entry_point == "envs.charging:FastChargeEnv"
    assert tuple(spec.kwargs["diagnostics"]) == ("plating", "degradation") == envs.FAST_CHARGE_DIAGNOSTICS_KINDS
    env = gym.make(envs.FAST_CHARGE_DIAGNOSTICS_ID, surrogate=str(tiny_checkpoint), diagnostics=("plating",))
    _, info = env.reset(seed=0)
    assert env.unwrapped.config.diagnostics == ("plating",) and "diag_plating" in info


def test_diagnostics_id_defaults_plating_and_degradation(tiny_checkpoint):
    env = gym.make(envs.FAST_CHARGE_DIAGNOSTICS_ID, surrogate=str(tiny_checkpoint))
    cfg = env.unwrapped.config
    assert cfg.diagnostics == ("plating", "degradation")
    _, info = env.reset(seed=0)
    assert {"diag_plating", "diag_degradation", "reward_diag_degradation"} <= set(info)
    for _ in range(3):
        _, reward, *_, info = env.step(np.array([1.0], dtype=np.float32))
        check_terms(info, reward, cfg)
        assert info["diag_degradation"] >= 0.0


def test_vecenv_streams_the_degradation_estimator_like_single_envs(tiny_checkpoint):
    """The degradation CNN advances a per-cell state (O(1) a step) instead of rescoring its window:
    the VecEnv (with auto-resets) and single envs must agree on its scores."""
    n, seed, kw = 3, 7, {"diagnostics": ("degradation",), **KW}
    venv = SurrogateVecEnv(n, surrogate=str(tiny_checkpoint), seed=seed, **kw)
    singles = [gym.make(ID, surrogate=venv.surrogate, **kw) for _ in range(n)]
    venv.reset()
    for i, e in enumerate(singles):
        e.reset(seed=seed + i)
    rng = np.random.default_rng(1)
    resets = 0
    for _ in range(40):
        actions = rng.uniform(-1.0, 1.2, (n, 1)).astype(np.float32)
        infos = venv.step(actions)[-1]
        for i, e in enumerate(singles):
            *_, term, trunc, s_info = e.step(actions[i])
            assert infos[i]["diag_degradation"] == pytest.approx(s_info["diag_degradation"], rel=1e-4, abs=1e-9)
            if term or trunc:
                resets += 1
                e.reset()
    assert resets > 0


def test_pybamm_backend_with_degradation_reports_capacity_lost():
    env = gym.make(ID, backend="pybamm", pybamm_options={"degradation": True}, soc_start=0.3)
    _, info = env.reset(seed=0)
    assert info["capacity_lost"] == 0.0
    lost = [env.step(np.array([0.0], dtype=np.float32))[-1]["capacity_lost"] for _ in range(3)]  # 2.5C
    assert 0.0 < lost[0] < lost[1] < lost[2] < 5e-3
    with pytest.raises(ValueError, match="pybamm backend"):
        gym.make(ID, pybamm_options={"degradation": True})
