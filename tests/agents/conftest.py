"""Shared by the agents' tests: the cached 2-point reference table, the DFN and an env on it.

The cached table ``tests/support/references-2pt.json`` is the yardstick on a 2-point grid (70 %
SOC at 25 and 40 C, short charges), built by
``python experiments/build_references.py --socs "[0.7]" --ambients "[298.15, 313.15]" --evaluations 16
--out tests/support/references-2pt.json``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import envs
from agents.evaluation.references import load_references
from envs.config import ChargingConfig

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tests" / "support" / "references-2pt.json"


@pytest.fixture(scope="module")
def table():
    return load_references(ChargingConfig(), TABLE)


@pytest.fixture(scope="module")
def dfn_env():
    env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm")
    yield env.unwrapped
    env.close()


@pytest.fixture(scope="module")
def sim():
    from surrogates.physics.dfn import DFNSimulator

    return DFNSimulator("nmc")
