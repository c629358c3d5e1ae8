"""Reinforcement learning: the SB3 algorithms and their hyperparameter files (:mod:`.algorithms`, ``hyperparams/``),
TensorBoard callbacks (:mod:`.callbacks`), one training run (:mod:`.train`), a run judged on the DFN
(:mod:`.evaluate`) and the ablation of the reward (:mod:`.ablation`)."""

from pathlib import Path

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""rl-baselines3-zoo YAML files, one per algorithm, keyed by env id (see :mod:`agents.rl.algorithms`)."""
