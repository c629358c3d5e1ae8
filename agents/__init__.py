"""Charging agents: stable-baselines3 hyperparameters, rule-based baselines, evaluation."""

from pathlib import Path

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""rl-baselines3-zoo style YAML files, one per algorithm, keyed by env id."""
