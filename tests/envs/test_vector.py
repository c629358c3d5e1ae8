"""SurrogateVecEnv: the same per-cell semantics as N single envs, and SB3's VecEnv protocol."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

import envs  # noqa: F401  (registers the id)
from envs.charging import info_keys
from envs.vector import SurrogateVecEnv

ID = "cellgym/FastCharge-v2"
# Short episodes so that cells finish and reset within the test: 0.6-0.75 -> 0.8 SOC (reached at
# high actions) or a 150 s time limit (at low ones).
KW = dict(soc_start=(0.6, 0.75), soc_target=0.8, time_limit=150.0)


@pytest.mark.parametrize("arch, diagnostics", [("mamba", ()), ("transformer", ()), ("jepa", ()),
                                               ("mamba", ("plating", "ood"))])
def test_vecenv_equals_n_single_envs_stepped_with_the_same_actions(tiny_checkpoints, arch, diagnostics):
    n, seed = 5, 10
    kw = dict(KW, diagnostics=diagnostics)
    venv = SurrogateVecEnv(n, surrogate=str(tiny_checkpoints[arch]), seed=seed, **kw)
    singles = [gym.make(ID, surrogate=venv.surrogate, **kw) for _ in range(n)]
    keys = info_keys(venv.config)  # INFO_KEYS, plus diag_<kind> and reward_diag_<kind>
    obs = venv.reset()
    single_obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)])
    np.testing.assert_array_equal(obs, single_obs)
    for i, e in enumerate(singles):
        assert venv.reset_infos[i] == e.unwrapped._get_info()
    rng = np.random.default_rng(0)
    finished = {"target": 0, "time": 0}
    for _ in range(40):
        actions = rng.uniform(-1.0, 1.5, (n, 1)).astype(np.float32)  # some out of range: clipped
        obs, rewards, dones, infos = venv.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float32 and dones.dtype == bool
        for i, e in enumerate(singles):
            s_obs, s_rew, term, trunc, s_info = e.step(actions[i])
            assert dones[i] == (term or trunc)
            assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
            for k in keys:
                if isinstance(s_info[k], bool):
                    assert infos[i][k] == s_info[k], k
                else:
                    rel = 1e-5 if "diag_" in k else 1e-6  # diagnostics: float32 inference, batch of 5 vs 1
                    assert infos[i][k] == pytest.approx(s_info[k], rel=rel, abs=1e-6), k
            assert rewards[i] == pytest.approx(s_rew, rel=1e-5, abs=1e-6)
            if term or trunc:
                finished["target" if s_info["reached_target"] else "time"] += 1
                np.testing.assert_allclose(infos[i]["terminal_observation"], s_obs, atol=1e-5)
                s_obs, s_reset_info = e.reset()
                assert venv.reset_infos[i]["soc"] == s_reset_info["soc"]
            else:
                assert "terminal_observation" not in infos[i]
            np.testing.assert_allclose(obs[i], s_obs, atol=1e-5)
    assert finished["target"] > 0 and finished["time"] > 0  # both kinds of episode end were exercised


def test_is_an_sb3_vecenv_that_ppo_can_train_on(tiny_checkpoint):
    from stable_baselines3 import PPO

    venv = VecMonitor(SurrogateVecEnv(4, surrogate=str(tiny_checkpoint), seed=0, **KW))
    assert isinstance(venv.unwrapped, VecEnv)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=dict(net_arch=[16]))
    model.learn(total_timesteps=128)
    assert venv.episode_count > 0  # cells finished and were reset during training
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (4, 1)


def test_bad_actions_raise(tiny_checkpoint):
    venv = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), seed=0)
    venv.reset()
    for bad in (np.array([[0.0], [np.nan], [0.0]]), np.array([0.0, np.inf, 0.0]), np.zeros((3, 2)), np.zeros(2)):
        with pytest.raises(ValueError):
            venv.step(bad)
    with pytest.raises(RuntimeError, match="reset"):
        SurrogateVecEnv(2, surrogate=str(tiny_checkpoint)).step(np.zeros((2, 1)))
    _, _, _, infos = venv.step(np.array([[-5.0], [0.0], [9.0]]))  # clipped
    assert [i["c_rate"] for i in infos] == pytest.approx([0.0, 2.5, 5.0])


def test_seeding_reproduces_and_options_fix_the_start(tiny_checkpoint):
    def run(seed):
        venv = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), **KW)
        venv.seed(seed)
        out = [venv.reset()]
        for _ in range(30):
            out.append(venv.step(np.full((3, 1), 0.7, dtype=np.float32))[0])
        return np.stack(out)

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))

    venv = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), seed=0)
    venv.set_options({"soc_start": 0.5, "ambient_temperature": 300.0})
    venv.reset()
    assert venv.get_attr("soc") == [0.5] * 3 and venv.get_attr("ambient_temperature") == [300.0] * 3


def test_attribute_and_method_plumbing(tiny_checkpoint):
    venv = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), seed=0, **KW)
    venv.reset()
    assert venv.get_attr("c_max") == [5.0] * 3
    assert venv.get_attr("soc_target", indices=[0, 2]) == [0.8, 0.8]
    assert venv.get_attr("steps") == [0, 0, 0]
    assert venv.get_attr("render_mode") == [None] * 3
    assert venv.has_attr("config") and not venv.has_attr("no_such_thing")
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    assert venv.seed(7) == [7, 8, 9]
    assert venv.env_method("get_attr", "w_time", indices=[1]) == [[0.01] * 3]
    venv.set_attr("w_time", 0.5)
    _, rewards, _, infos = venv.step(np.full((3, 1), -1.0))  # resting: only the time penalty
    assert [i["reward_time"] for i in infos] == [-0.5] * 3 and np.allclose(rewards, -0.5)
    with pytest.raises(ValueError, match="every cell"):
        venv.set_attr("w_time", 0.1, indices=[0])
    with pytest.raises(AttributeError):
        venv.set_attr("soc", 0.3)
    with pytest.warns(UserWarning, match="no `render_mode`"):  # SB3's base class contract, without a render mode
        assert venv.render() is None
    assert venv.get_attr("render_cell") == [0] * 3
    venv.close()
    with pytest.raises(TypeError, match=r"SurrogateVecEnv.__init__\(\) got an unexpected keyword argument 'c_maximum'; "
                                        r"valid keyword arguments: num_envs, chemistry, .*render_cell, .*c_max"):
        SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), c_maximum=3.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu(tiny_checkpoint):
    out = {}
    for device in ("cpu", "cuda"):
        venv = SurrogateVecEnv(8, surrogate=str(tiny_checkpoint), device=device, seed=0, **KW)
        obs = [venv.reset()] + [venv.step(np.full((8, 1), 0.5))[0] for _ in range(20)]
        out[device] = np.stack(obs)
    np.testing.assert_allclose(out["cpu"], out["cuda"], atol=1e-4)


def test_benchmark_helpers_run_and_restore_what_they_patch(tiny_checkpoint):
    """Smoke test of benchmarks/bench_env.py's VecEnv timing and profiling, with a tiny budget."""
    import importlib.util
    from pathlib import Path

    import envs.batch as batch

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_env.py"
    spec = importlib.util.spec_from_file_location("bench_env", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    venv = SurrogateVecEnv(8, surrogate=str(tiny_checkpoint), seed=0, **KW)
    assert bench.time_vecenv(venv, 20) > 0
    assert bench.time_vecenv(gym.make_vec(ID, 8, vectorization_mode="vector_entry_point",
                                          surrogate=str(tiny_checkpoint), **KW), 20) > 0
    functions = {name: getattr(batch, name) for name in ("check_actions", "evaluate_step", "observe", "info_columns")}
    parts = bench.profile_vecenv(venv, 20)
    assert parts["total"] > 0 and parts["resets"] > 0 and parts["model.step (torch forward)"] > 0
    assert parts["info_columns (info arrays)"] > 0 and parts["adapter (SB3 infos)"] > 0
    assert "step" not in vars(venv.surrogate) and not {"restart", "step"} & set(vars(venv.core))  # patches undone
    assert functions == {name: getattr(batch, name) for name in functions}
    dvenv = SurrogateVecEnv(8, surrogate=str(tiny_checkpoint), seed=0, diagnostics=("plating",), **KW)
    assert bench.time_vecenv(dvenv, 5) > 0
    parts = bench.profile_vecenv(dvenv, 5)
    assert parts["diagnostic plating (score_windows)"] > 0 and "diagnostics rest (history, terms)" in parts
    assert "step" not in vars(dvenv.diagnostic_terms) and "score_windows" not in vars(dvenv.diagnostic_terms.models["plating"])
    assert bench.time_surrogate_step(venv.surrogate, 8, 5) > 0


def test_time_limit_set_later_is_honoured_by_the_transformer_cache(tiny_checkpoints):
    """The transformer's KV cache grows with the episode: a longer time limit set through set_attr
    (here 100 intervals, after a 5-interval one) runs to its truncation; past max_len it is refused."""
    path = str(tiny_checkpoints["transformer"])  # max_len 128 intervals
    venv = SurrogateVecEnv(3, surrogate=path, seed=0, soc_start=0.5, time_limit=50.0)
    venv.reset()
    venv.step(np.full((3, 1), -1.0))  # mid-episode
    venv.set_attr("time_limit", 1000.0)
    for k in range(2, 101):
        _, _, dones, infos = venv.step(np.full((3, 1), -1.0))  # at rest: only the time limit ends it
        assert dones.all() == (k == 100)
    assert all(i["TimeLimit.truncated"] and i["elapsed"] == 1000.0 for i in infos)
    venv.reset()
    for _ in range(100):
        _, _, dones, _ = venv.step(np.full((3, 1), -1.0))
    assert dones.all()
    with pytest.raises(ValueError, match="max_len"):
        venv.set_attr("time_limit", 2000.0)
    assert venv.get_attr("time_limit") == [1000.0] * 3 and venv.config.max_steps == 100  # left as it was
    with pytest.raises(ValueError, match="max_len"):
        SurrogateVecEnv(2, surrogate=path, time_limit=2000.0)
    with pytest.raises(ValueError, match="max_len"):
        gym.make(ID, surrogate=path, time_limit=2000.0)


def test_info_modes_dicts_for_every_key_or_arrays_beside_sb3s_own(tiny_checkpoint):
    venvs = {mode: VecMonitor(SurrogateVecEnv(4, surrogate=str(tiny_checkpoint), seed=0, info_mode=mode, **KW))
             for mode in ("dicts", "arrays")}
    for venv in venvs.values():
        venv.reset()
    keys = info_keys(venvs["dicts"].unwrapped.config)
    ended = 0
    for _ in range(20):
        out = {mode: venv.step(np.full((4, 1), 0.8, dtype=np.float32)) for mode, venv in venvs.items()}
        (obs, rewards, dones, infos), (a_obs, a_rewards, a_dones, a_infos) = out["dicts"], out["arrays"]
        np.testing.assert_array_equal(obs, a_obs)
        np.testing.assert_array_equal(rewards, a_rewards)
        np.testing.assert_array_equal(dones, a_dones)
        last = venvs["arrays"].get_attr("last_step")[0]  # the arrays, behind VecMonitor
        columns = last.infos
        assert set(columns) == set(keys) and columns["reached_target"].dtype == bool
        np.testing.assert_array_equal(last.done, np.flatnonzero(dones))
        for i in range(4):
            sb3 = {k: infos[i][k] for k in infos[i] if k not in keys}
            assert set(sb3) == ({"TimeLimit.truncated", "terminal_observation", "episode"} if dones[i]
                                else {"TimeLimit.truncated"})
            assert set(a_infos[i]) == set(sb3)  # arrays: only SB3's keys per cell
            assert a_infos[i]["TimeLimit.truncated"] is infos[i]["TimeLimit.truncated"]
            assert {k: infos[i][k] for k in keys} == {k: columns[k][i].item() for k in keys}
            if dones[i]:
                ended += 1
                np.testing.assert_array_equal(a_infos[i]["terminal_observation"], infos[i]["terminal_observation"])
                assert [a_infos[i]["episode"][k] for k in "rl"] == [infos[i]["episode"][k] for k in "rl"]  # t: wall time
                j = list(last.done).index(i)
                np.testing.assert_array_equal(last.final_obs[j], infos[i]["terminal_observation"])
                assert venvs["dicts"].unwrapped.reset_infos[i] == {k: last.reset_infos[k][j].item() for k in keys}
                assert venvs["arrays"].unwrapped.reset_infos[i] == {}
            else:
                with pytest.raises(TypeError):  # the shared mapping of running cells is read-only
                    a_infos[i]["x"] = 1
    assert ended > 0
    with pytest.raises(ValueError, match="info_mode"):
        SurrogateVecEnv(2, surrogate=str(tiny_checkpoint), info_mode="lists")
