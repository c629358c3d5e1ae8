"""The envs run in forked worker processes (Gymnasium's AsyncVectorEnv, SB3's SubprocVecEnv with fork): torch's
thread pool does not survive a fork, and a child used to hang on its first step (surrogates.common.threads)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {
    "gymnasium async, fork": """
        venv = gym.make_vec(envs.FAST_CHARGE_ID, num_envs=2, vectorization_mode="async",
                            vector_kwargs={"context": "fork"})
        venv.reset(seed=0)
        for _ in range(5):
            venv.step(np.zeros((2, 1), dtype=np.float32))
        venv.close()
    """,
    "sb3 SubprocVecEnv, fork": """
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import SubprocVecEnv

        venv = make_vec_env(envs.FAST_CHARGE_ID, n_envs=2, vec_env_cls=SubprocVecEnv,
                            vec_env_kwargs={"start_method": "fork"})
        venv.reset()
        for _ in range(5):
            venv.step(np.zeros((2, 1), dtype=np.float32))
        venv.close()
    """,
}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_forked_workers_step_the_env(client):
    """The parent runs torch first (warming its thread pool), as a training script does; the workers must not hang."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {root!r})
        import gymnasium as gym
        import numpy as np
        import torch
        import envs

        warm = gym.make(envs.FAST_CHARGE_ID)  # the parent steps the surrogate: torch's pool is up before the fork
        warm.reset(seed=0)
        warm.step(np.zeros(1, dtype=np.float32))
        torch.ones(256, 256) @ torch.ones(256, 256)
    """).format(root=str(ROOT)) + textwrap.dedent(CLIENTS[client]) + "\nprint('stepped')\n"
    out = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "stepped" in out.stdout, out.stderr[-3000:]
