"""FastChargeVectorEnv: Gymnasium's vector API over the batched core, equal to SyncVectorEnv and to the SB3 VecEnv."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import envs
from envs.charging import FLAGS, info_keys
from envs.gym_vector import FastChargeVectorEnv
from envs.vector import SurrogateVecEnv

ID = "cellgym/FastCharge-v2"
# Short episodes, as in test_vector.py: cells reach the target (high actions) or the 150 s limit (low ones).
KW = dict(soc_start=(0.6, 0.75), soc_target=0.8, time_limit=150.0)


def make_vec(checkpoint, n, mode="vector_entry_point", **kw):
    vector_kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP} if mode == "sync" else {}
    return gym.make_vec(ID, num_envs=n, vectorization_mode=mode, vector_kwargs=vector_kwargs,
                        surrogate=checkpoint, **KW, **kw)


def assert_infos_close(ours: dict, theirs: dict, path: str = "") -> None:
    """Gymnasium vector infos (dicts of arrays, ``_key`` masks, ``final_obs`` object arrays) equal to float tolerance."""
    assert set(ours) == set(theirs), (path, set(ours) ^ set(theirs))
    for k, a in ours.items():
        b, where = theirs[k], f"{path}{k}"
        if isinstance(a, dict):
            assert_infos_close(a, b, where + ".")
        elif a.dtype == object:
            assert [x is None for x in a] == [y is None for y in b], where
            for x, y in zip(a, b):
                if x is not None:
                    np.testing.assert_allclose(x, y, atol=1e-5, err_msg=where)
        elif a.dtype == bool:
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a.dtype == b.dtype, where
            rtol = 1e-5 if "diag_" in k else 1e-6  # diagnostics: float32 inference, batch of N vs 1
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6, err_msg=where)


def test_make_vec_gives_the_batched_env_for_both_ids(tiny_checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # make_vec warns about a missing or malformed autoreset mode
        venv = make_vec(str(tiny_checkpoint), 4)
    assert isinstance(venv, VectorEnv) and isinstance(venv.unwrapped, FastChargeVectorEnv)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    single = gym.make(ID, surrogate=str(tiny_checkpoint))
    assert venv.single_observation_space == single.observation_space
    assert venv.single_action_space == single.action_space
    assert venv.observation_space.shape == (4, 6) and venv.action_space.shape == (4, 1)
    obs, infos = venv.reset(seed=0)
    assert obs.shape == (4, 6) and obs.dtype == np.float32 and obs in venv.observation_space
    assert set(k for k in infos if not k.startswith("_")) == set(info_keys(venv.unwrapped.config))
    assert all(infos["_" + k].all() for k in info_keys(venv.unwrapped.config))
    assert venv.spec.id == ID and venv.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    dvenv = gym.make_vec(envs.FAST_CHARGE_DIAGNOSTICS_ID, num_envs=2, vectorization_mode="vector_entry_point",
                         surrogate=str(tiny_checkpoint), diagnostics=("plating",))
    assert dvenv.unwrapped.config.diagnostics == ("plating",) and "diag_plating" in dvenv.reset(seed=0)[1]
    with pytest.raises(TypeError, match=r"FastChargeVectorEnv.__init__\(\) got an unexpected keyword argument 'c_maximum'; valid"):
        make_vec(str(tiny_checkpoint), 2, c_maximum=3.0)
    with pytest.raises(ValueError, match="vectorization_mode='async'"):
        make_vec(str(tiny_checkpoint), 2, backend="pybamm")


@pytest.mark.parametrize("arch, diagnostics", [("mamba", ()), ("transformer", ()), ("jepa", ()),
                                               ("mamba", ("plating", "ood"))])
def test_equals_gymnasium_sync_vector_env_with_same_step_autoreset(tiny_checkpoints, arch, diagnostics):
    """N single envs under Gymnasium's own SyncVectorEnv (same-step autoreset) are the reference."""
    n, seed = 5, 3
    ours = make_vec(str(tiny_checkpoints[arch]), n, diagnostics=diagnostics)
    ref = make_vec(ours.unwrapped.surrogate, n, mode="sync", diagnostics=diagnostics)
    out, expected = ours.reset(seed=seed), ref.reset(seed=seed)
    np.testing.assert_array_equal(out[0], expected[0])
    assert_infos_close(out[1], expected[1])
    rng = np.random.default_rng(0)
    finished = {"target": 0, "time": 0}
    for _ in range(40):
        actions = rng.uniform(-1.0, 1.5, (n, 1)).astype(np.float32)  # some out of range: clipped
        obs, rewards, terminated, truncated, infos = ours.step(actions)
        r_obs, r_rewards, r_terminated, r_truncated, r_infos = ref.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float64
        np.testing.assert_allclose(obs, r_obs, atol=1e-5)
        np.testing.assert_allclose(rewards, r_rewards, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(terminated, r_terminated)
        np.testing.assert_array_equal(truncated, r_truncated)
        assert_infos_close(infos, r_infos)
        if "final_info" in infos:
            finished["target"] += int(infos["final_info"]["reached_target"].sum())
            finished["time"] += int(truncated.sum())
    assert finished["target"] > 0 and finished["time"] > 0  # both kinds of episode end were exercised


def test_sb3_and_gymnasium_adapters_share_one_core_and_agree_exactly(tiny_checkpoint):
    n, seed = 6, 11
    sb3 = SurrogateVecEnv(n, surrogate=str(tiny_checkpoint), seed=seed, **KW)
    gvenv = FastChargeVectorEnv(n, surrogate=sb3.surrogate, **KW)
    obs, infos = gvenv.reset(seed=seed)
    np.testing.assert_array_equal(sb3.reset(), obs)
    keys = info_keys(sb3.config)
    for i in range(n):
        assert sb3.reset_infos[i] == {k: infos[k][i].item() for k in keys}
    rng = np.random.default_rng(2)
    ended = 0
    for _ in range(40):
        actions = rng.uniform(-1.0, 1.0, (n, 1)).astype(np.float32)
        s_obs, s_rewards, s_dones, s_infos = sb3.step(actions)
        obs, rewards, terminated, truncated, infos = gvenv.step(actions)
        np.testing.assert_array_equal(s_obs, obs)
        np.testing.assert_array_equal(s_rewards, rewards.astype(np.float32))
        np.testing.assert_array_equal(s_dones, terminated | truncated)
        for i in range(n):
            step_info = infos["final_info"] if s_dones[i] else infos
            assert {k: s_infos[i][k] for k in keys} == {k: step_info[k][i].item() for k in keys}
            assert s_infos[i]["TimeLimit.truncated"] == bool(truncated[i])
            if s_dones[i]:
                ended += 1
                np.testing.assert_array_equal(s_infos[i]["terminal_observation"], infos["final_obs"][i])
                assert sb3.reset_infos[i] == {k: infos[k][i].item() for k in keys}
    assert ended > 0


def test_same_step_autoreset_and_episode_statistics(tiny_checkpoint):
    n = 4
    venv = RecordEpisodeStatistics(make_vec(str(tiny_checkpoint), n))
    cfg = venv.unwrapped.config
    venv.reset(seed=0)
    lengths, returns = np.zeros(n, dtype=int), np.zeros(n)
    seen = 0
    for _ in range(30):
        _, rewards, terminated, truncated, infos = venv.step(np.full((n, 1), 0.5, dtype=np.float32))
        lengths += 1
        returns += rewards
        done = terminated | truncated
        if done.any():
            seen += int(done.sum())
            np.testing.assert_array_equal(infos["_final_obs"], done)
            np.testing.assert_array_equal(infos["_episode"], done)
            np.testing.assert_array_equal(infos["episode"]["l"][done], lengths[done])
            np.testing.assert_allclose(infos["episode"]["r"][done], returns[done], rtol=1e-5)
            np.testing.assert_allclose(infos["final_info"]["elapsed"][done], lengths[done] * cfg.dt)
            # the restarted cells already report their new episode: at rest, at t = 0
            assert (infos["elapsed"][done] == 0.0).all() and (infos["c_rate"][done] == 0.0).all()
            assert not infos["final_info"]["_elapsed"][~done].any() and (infos["final_info"]["elapsed"][~done] == 0).all()
            assert not any(infos["final_info"][flag][~done].any() for flag in FLAGS)
            lengths[done], returns[done] = 0, 0.0
        else:
            assert "final_obs" not in infos and "final_info" not in infos
    assert seen > 0


def test_reset_seeds_and_options(tiny_checkpoint):
    venv = FastChargeVectorEnv(3, surrogate=str(tiny_checkpoint), **KW)
    a, _ = venv.reset(seed=5)
    b, _ = venv.reset(seed=[5, 6, 7])
    np.testing.assert_array_equal(a, b)
    c, _ = venv.reset()  # no seed: the generators carry on
    assert not np.array_equal(a, c)
    _, infos = venv.reset(seed=5, options={"soc_start": 0.5, "ambient_temperature": 300.0})
    assert (infos["soc"] == 0.5).all() and (infos["ambient_temperature"] == 300.0).all()
    with pytest.raises(ValueError, match="unknown reset options"):
        venv.reset(options={"soc": 0.5})
    with pytest.raises(ValueError, match="3 cells"):
        venv.reset(seed=[1, 2])
