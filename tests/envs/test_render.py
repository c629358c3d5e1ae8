"""Rendering (render_mode None / "rgb_array" / "human") and the conventions SB3's make_vec_env and TorchRL rely on."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import envs
from envs import render as render_module
from envs.gym_vector import FastChargeVectorEnv
from envs.render import FRAME_SIZE, HISTORY_KEYS, RENDER_MODES
from envs.vector import SurrogateVecEnv

ID = envs.FAST_CHARGE_ID
IDS = (envs.FAST_CHARGE_ID, envs.FAST_CHARGE_DIAGNOSTICS_ID, envs.FAST_CHARGE_BMS_ID)
ROOT = Path(__file__).resolve().parents[2]
# Short episodes: cells finish (target or the 50 s limit) within a few steps.
SHORT = dict(soc_start=(0.6, 0.75), soc_target=0.8, time_limit=50.0)


def assert_frame(frame):
    assert isinstance(frame, np.ndarray) and frame.shape == (*FRAME_SIZE, 3) and frame.dtype == np.uint8
    assert frame.std() > 10 and len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # not blank


def run_steps(env, n, action=0.5, seed=0):
    env.reset(seed=seed)
    for _ in range(n):
        _, _, te, tr, _ = env.step(np.array([action], dtype=np.float32))
        if te or tr:
            break


# ---------------------------------------------------------------------- keywords
@pytest.mark.parametrize("env_id", IDS)
def test_unknown_keyword_is_pythons_type_error(tiny_checkpoint, env_id):
    with pytest.raises(TypeError, match=r"FastChargeEnv.__init__\(\) got an unexpected keyword argument 'frameskip'; "
                                        r"valid keyword arguments: chemistry,"):
        gym.make(env_id, surrogate=str(tiny_checkpoint), frameskip=1)
    with pytest.raises(TypeError, match=r"FastChargeVectorEnv.__init__\(\) got an unexpected keyword argument 'frameskip'"):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", surrogate=str(tiny_checkpoint),
                     frameskip=1)


def test_torchrl_pattern_drops_frameskip(tiny_checkpoint):
    """What TorchRL's GymEnv does: pass frameskip, and drop it on Python's own TypeError message."""
    kwargs = {"surrogate": str(tiny_checkpoint)}
    try:
        env = gym.make(ID, frameskip=1, **kwargs)
    except TypeError as err:
        if "unexpected keyword argument 'frameskip'" not in str(err):
            raise
        env = gym.make(ID, **kwargs)
    assert env.reset(seed=0)[0].shape == (6,)
    env.close()


def test_torchrl_gym_env(tiny_checkpoint):
    pytest.importorskip("torchrl")
    from torchrl.envs import GymEnv

    env = GymEnv(ID, surrogate=str(tiny_checkpoint))
    td = env.rollout(5)
    assert td.batch_size[0] >= 1
    env.close()


# ---------------------------------------------------------------------- the single env
def test_no_render_mode_records_nothing(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint))
    assert env.metadata["render_modes"] == list(RENDER_MODES) and env.metadata["render_fps"] > 0
    run_steps(env, 3)
    assert env.unwrapped._renderer is None and env.unwrapped.render_mode is None
    assert env.render() is None
    env.close()


@pytest.mark.parametrize("env_cls, kw", [(envs.FastChargeEnv, {}), (FastChargeVectorEnv, {"num_envs": 2}),
                                         (SurrogateVecEnv, {"num_envs": 2})])
def test_invalid_render_mode_names_the_valid_ones(tiny_checkpoint, env_cls, kw):
    with pytest.raises(ValueError, match=r"render_mode must be None or one of 'rgb_array', 'human', got 'rgb'"):
        env_cls(surrogate=str(tiny_checkpoint), render_mode="rgb", **kw)


def test_rgb_array_frames_show_the_charge_so_far(tiny_checkpoint):
    env = gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert_frame(first)
    for _ in range(5):
        env.step(np.array([0.5], dtype=np.float32))
    later = env.render()
    assert_frame(later)
    assert (later != first).any(axis=-1).mean() > 0.01  # the lines moved
    history = env.unwrapped._renderer.history
    assert len(history) == 6 and set(history.values) == set(HISTORY_KEYS)
    assert np.array_equal(env.render(), later)  # render() draws, it does not step
    env.reset(seed=0)
    assert len(history) == 1 and np.array_equal(env.render(), first)  # the same figure, redrawn from the reset
    env.close()


def test_gymnasium_wrappers_render_collection_and_record_video(tiny_checkpoint, tmp_path):
    env = gym.wrappers.RenderCollection(gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="rgb_array"))
    run_steps(env, 3)
    frames = env.render()
    assert len(frames) == 4 and all(f.shape == (*FRAME_SIZE, 3) for f in frames)
    env.close()
    pytest.importorskip("moviepy")
    env = gym.wrappers.RecordVideo(gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="rgb_array", **SHORT),
                                   str(tmp_path / "videos"), episode_trigger=lambda _: True, disable_logger=True)
    run_steps(env, 10)
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 0


def test_human_mode_without_a_display_warns_once_and_runs(tiny_checkpoint, monkeypatch, caplog):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(render_module, "_warned_no_display", False)
    backend = plt.get_backend()
    plt.switch_backend("Agg")
    try:
        with caplog.at_level(logging.WARNING, logger="envs.render"), warnings.catch_warnings():
            warnings.simplefilter("error")
            env = gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="human")
            run_steps(env, 3)
            assert env.render() is None
            env.close()
            env = gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="human")
            run_steps(env, 2)
            env.close()
        messages = [r.getMessage() for r in caplog.records if r.name == "envs.render"]
        assert len(messages) == 1 and "cannot show a window" in messages[0]
    finally:
        plt.switch_backend(backend)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_with_rgb_array(tiny_checkpoint, env_id):
    env = gym.make(env_id, surrogate=str(tiny_checkpoint), render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
    env.close()


# ---------------------------------------------------------------------- the batch envs
def test_vector_envs_render_the_chosen_cell(tiny_checkpoint):
    actions = [0.9, 0.2, -0.3, 0.6]
    single = gym.make(ID, surrogate=str(tiny_checkpoint), render_mode="rgb_array")
    single.reset(seed=11)  # cell 1 of a batch seeded 10
    for a in actions:
        single.step(np.array([a], dtype=np.float32))
    expected = single.unwrapped._renderer.history.arrays()

    gvec = gym.make_vec(ID, num_envs=3, vectorization_mode="vector_entry_point", surrogate=str(tiny_checkpoint),
                        render_mode="rgb_array", render_cell=1)
    svec = SurrogateVecEnv(3, surrogate=str(tiny_checkpoint), render_mode="rgb_array", render_cell=1, seed=10)
    assert gvec.metadata["render_modes"] == svec.metadata["render_modes"] == list(RENDER_MODES)
    gvec.reset(seed=10)
    svec.reset()
    for a in actions:
        gvec.step(np.full((3, 1), a, dtype=np.float32))
        svec.step(np.full((3, 1), a, dtype=np.float32))
    for core in (gvec.unwrapped.core, svec.core):
        got = core.renderer.history.arrays()
        for k in HISTORY_KEYS:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-9, err_msg=k)

    (frame,) = gvec.render()
    assert_frame(frame)
    assert np.array_equal(svec.render(), frame) and np.array_equal(svec.render("rgb_array"), frame)
    images = svec.get_images()
    assert len(images) == 3 and images[0] is None and images[2] is None and np.array_equal(images[1], frame)
    with pytest.warns(UserWarning, match="has to be the same"):  # SB3's contract for another mode
        assert svec.render("depth_array") is None

    # another cell: its history restarts from its present state
    svec.set_attr("render_cell", 2)
    assert svec.get_attr("render_cell") == [2] * 3 and len(svec.core.renderer.history) == 1
    assert not np.array_equal(svec.render(), frame)
    gvec.unwrapped.render_cell = 0
    assert gvec.unwrapped.core.render_cell == 0
    with pytest.raises(ValueError, match=r"render_cell must be a cell index in \[0, 3\)"):
        svec.render_cell = 3
    single.close(), gvec.close(), svec.close()


def test_a_restarted_cell_keeps_its_finished_charge_until_its_next_step(tiny_checkpoint):
    venv = SurrogateVecEnv(2, surrogate=str(tiny_checkpoint), render_mode="rgb_array", seed=0, **SHORT)
    venv.reset()
    history = venv.core.renderer.history
    for k in range(1, 20):
        _, _, dones, _ = venv.step(np.full((2, 1), -1.0))  # resting: the 50 s limit ends the charge after 5 steps
        if dones[0]:
            break
    assert len(history) == k + 1 and history.outcome == "time limit"
    assert_frame(venv.render())
    venv.step(np.full((2, 1), -1.0))
    assert len(history) == 2 and history.outcome is None and history.values["elapsed"] == [0.0, 10.0]
    venv.close()


def test_vector_env_human_mode_without_a_display(tiny_checkpoint, monkeypatch):
    import matplotlib.pyplot as plt

    backend = plt.get_backend()
    plt.switch_backend("Agg")
    monkeypatch.setattr(render_module, "_warned_no_display", True)  # warned already (tested above)
    try:
        for venv in (SurrogateVecEnv(2, surrogate=str(tiny_checkpoint), render_mode="human"),
                     FastChargeVectorEnv(2, surrogate=str(tiny_checkpoint), render_mode="human")):
            venv.reset()
            venv.step(np.zeros((2, 1)))
            assert venv.render() is None
            venv.close()
    finally:
        plt.switch_backend(backend)


# ---------------------------------------------------------------------- SB3's make_vec_env
def test_sb3_make_vec_env_dummy(tiny_checkpoint):
    venv = make_vec_env(ID, n_envs=2, seed=0, env_kwargs={"surrogate": str(tiny_checkpoint)})
    assert isinstance(venv, DummyVecEnv) and venv.render_mode == "rgb_array"  # SB3 asks for rgb_array
    obs = venv.reset()
    assert obs.shape == (2, 6)
    for _ in range(5):
        obs, rewards, dones, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
    assert obs.shape == (2, 6) and rewards.shape == (2,) and len(infos) == 2
    tiled = venv.render()
    assert tiled.shape == (2 * FRAME_SIZE[0], FRAME_SIZE[1], 3) and tiled.dtype == np.uint8
    venv.close()


_SUBPROC_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
import envs  # registers the ids in the spawned workers too (they re-import this script)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

if __name__ == "__main__":
    venv = make_vec_env("cellgym/FastCharge-v2", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                        vec_env_kwargs={{"start_method": "spawn"}}, env_kwargs={{"surrogate": {ckpt!r}}})
    obs = venv.reset()
    assert obs.shape == (2, 6), obs.shape
    for _ in range(5):
        obs, rewards, dones, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
    assert obs.shape == (2, 6) and rewards.shape == (2,)
    assert venv.render().dtype == np.uint8
    venv.close()
    print("SUBPROC OK")
"""


@pytest.mark.slow
def test_sb3_make_vec_env_subproc_spawn(tiny_checkpoint, tmp_path):
    script = tmp_path / "subproc_make_vec_env.py"
    script.write_text(textwrap.dedent(_SUBPROC_SCRIPT.format(root=str(ROOT), ckpt=str(tiny_checkpoint))))
    out = subprocess.run([sys.executable, str(script)], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "SUBPROC OK" in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]
