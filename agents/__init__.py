"""Charging agents: stable-baselines3 training, rule-based baselines, evaluation.

* :mod:`agents.algorithms`: the algorithm map (name -> SB3 class), the hyperparameter files, saved agents
* :mod:`agents.train`: one training run (what ``experiments/train_agent.py`` runs)
* :mod:`agents.callbacks`: TensorBoard statistics and figures, the diagnostic warm-up
* :mod:`agents.baselines`: CC-CV and multi-step CC policies
* :mod:`agents.evaluation`: replays on either backend, the per-charge summary and the profile figure
* :mod:`agents.oracle`: the oracle, greedy on the limits with the DFN's state (the physical limit)
* :mod:`agents.tuning`: the fastest safe multi-stage CC-CV per start condition (CMA-ES, COBYLA)
* :mod:`agents.references`: the grid of start conditions and the committed reference table
* :mod:`agents.yardstick`: a policy over the grid against the references: table, summary, figure
"""

from pathlib import Path

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""rl-baselines3-zoo YAML files, one per algorithm, keyed by env id (see :mod:`agents.algorithms`)."""
