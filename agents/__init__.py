"""Charging agents and what they are judged by, one sub-package per role (each imports only those above it here):

* :mod:`agents.charge`: one charge: its start, its trace on an env, the typed record of what it achieved
* :mod:`agents.control`: controllers that do not learn: CC-CV, multi-step CC, the greedy oracle, tuned protocols
* :mod:`agents.evaluation`: the yardstick: the grid, the committed reference table, scoring, the report
* :mod:`agents.ageing`: ground-truth degradation of a charge and over life, and its report
* :mod:`agents.rl`: stable-baselines3 training, its hyperparameter files, a trained run judged on the DFN
"""
