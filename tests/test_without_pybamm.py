"""Only the DFN, data generation and validation need PyBaMM: reading data, training a surrogate,
`import envs` and stepping the surrogate env run with PyBaMM blocked from import."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from surrogates.data.generate import generate
from surrogates.data.protocols import ProtocolConfig
from surrogates.data.schema import DatagenConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_data_training_and_the_surrogate_env_import_no_pybamm(tmp_path):
    data = tmp_path / "data"
    generate(DatagenConfig(num_sequences=8, shard_size=4, seed=5, protocols=ProtocolConfig(max_duration_s=200.0)),
             data, workers=1, progress=False)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pybamm"] = None  # any `import pybamm` now raises ImportError
        sys.path.insert(0, {str(ROOT)!r})
        import gymnasium as gym
        import numpy as np
        import envs
        from envs.vector import SurrogateVecEnv
        from surrogates.data.dataset import open_dataset
        from surrogates.models.features import Featurizer

        ds = open_dataset({str(data)!r})
        featurizer = Featurizer.from_dataset(ds)
        assert featurizer.capacity_ah == 5.0 and len(featurizer.ocv) == 101

        env = gym.make("cellgym/FastCharge-v2")
        obs, info = env.reset(seed=0)
        done, steps = False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(np.array([0.0], dtype=np.float32))
            done, steps = terminated or truncated, steps + 1
        assert steps > 1 and np.isfinite(info["soc"])

        venv = SurrogateVecEnv(4, diagnostics=["plating", "degradation"], seed=0)
        venv.reset()
        for _ in range(5):
            venv.step(np.zeros((4, 1), dtype=np.float32))

        sys.path.insert(0, {str(ROOT / "experiments")!r})
        import train_surrogate
        train_surrogate.main(["--arch", "transformer", "--data", {str(data)!r}, "--out", {str(tmp_path / "run")!r},
                              "--max-epochs", "1", "--holdout-family", "", "--val-fraction", "0.25",
                              "--test-fraction", "0.25", "--threads", "1", "--progress", "false",
                              "--model", "{{d_model: 16, n_layer: 1, n_head: 2, mlp_hidden: 32, max_len: 64}}"])
        print("episode steps", steps)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "run" / "best.pt").exists()
