"""The degradation measurement end to end: baselines and agents on the ground truth, then the report.

What ``experiments/measure_degradation.py`` and the ablation (:mod:`agents.rl.ablation`) run
(:func:`measure_degradation`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agents.ageing.life import LifeConfig, life_starts
from agents.ageing.measure import PolicySpec, baseline_policies, measure_policies
from agents.ageing.report import load_baselines, ship_baselines, write_report
from agents.evaluation.references import load_references, reference_starts
from envs.config import ChargingConfig
from surrogates.diagnostics import load_diagnostic





@dataclass
class MeasureConfig:
    """A measurement (defaults: the baselines of the committed table, ``experiments/measure_degradation.py``)."""

    chemistry: str = "nmc"
    """Cell (its reference table gives the grid and the tuned protocols)."""
    cccv: list = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5])
    """C-rates of the CC-CV family [1/h] (agents.control.rules.CCCVPolicy, CV 5 mV below v_max as in the references)."""
    tuned: bool = True
    """Measure the tuned 5-stage protocol of each grid point."""
    runs: dict = field(default_factory=dict)
    """Agents: family label -> run folders (seeds) of experiments/train_agent.py."""
    compare: bool = True
    """Add the committed baselines (agents/references/<chemistry>-degradation.json) to the report where they were not
    measured here."""
    n_cycles: int = 100
    """Cycles of each life."""
    life_soc: float = 0.1
    """Start SOC of the lives, at 25 C and at the grid's hottest ambient (the grid's lowest SOC where it lacks this one)."""
    references: str = ""
    """Reference table whose grid is measured on and whose oracle and tuned protocols judge the times (default: the
    chemistry's committed one)."""
    out: str = "runs/degradation"
    """Report folder; one JSON per policy under <out>/policies/."""
    ship: bool = False
    """Write the baselines' results to agents/references/<chemistry>-degradation.json, and the report's figures beside
    it (-fronts.png, -capacity.png, of every policy measured)."""
    progress: bool = True
    """Show progress bars."""


SHIP_COMMAND = "python experiments/measure_degradation.py --ship"


def measure_degradation(cfg: MeasureConfig, agents: Iterable[PolicySpec] = ()) -> dict:
    """The baselines ``cfg`` names and ``agents`` (the policies of ``cfg.runs``) on the ground truth into
    ``cfg.out/policies/`` (resumable), then the report (:func:`agents.ageing.report.write_report`) and, with
    ``cfg.ship``, the baselines committed. Returns ``{name: result}``."""
    out = Path(cfg.out)
    table = load_references(ChargingConfig(chemistry=cfg.chemistry), cfg.references or None)
    starts = reference_starts(table)
    lives_at = life_starts(starts, cfg.life_soc)
    life_config = LifeConfig(n_cycles=cfg.n_cycles)
    estimator = None
    if cfg.runs:
        estimator = load_diagnostic("degradation", cfg.chemistry)  # its estimate of each agent's charge, beside the DFN's
    policies = itertools.chain(baseline_policies(cfg.chemistry, cfg.cccv, cfg.tuned, cfg.references or None), agents)
    results = measure_policies(policies, starts, lives_at, life_config, out / "policies", estimator, cfg.progress)
    if cfg.compare:
        for name, res in load_baselines(cfg.chemistry).items():
            results.setdefault(name, res)
    print(write_report(results, table, starts, lives_at, out))
    if cfg.ship:
        path = ship_baselines(results, table, lives_at, life_config, cfg.chemistry, starts, SHIP_COMMAND)
        print(f"shipped the baselines to {path} (and its -fronts.png, -capacity.png)")
    return results


__all__ = ["MeasureConfig", "SHIP_COMMAND", "measure_degradation"]
