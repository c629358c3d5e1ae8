"""The ablation of the reward: variants of the training env x seeds, trained alike and judged on the ground truth.

What ``experiments/ablate_diagnostics.py`` runs (:func:`ablate`). A variant differs only in what its training
reward sees (the privileged plating margin, the learned diagnostics); each trains with :func:`agents.rl.train.train`
(a run folder holding a policy trained with the same settings is reused), then every policy is measured on the
degradation DFN beside the committed baselines (:func:`agents.ageing.pipeline.measure_degradation`), resumably.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

import envs
from agents.ageing.pipeline import MeasureConfig, measure_degradation
from agents.rl.evaluate import run_policies
from agents.rl.train import AgentConfig, is_trained, train


@dataclass
class AblationConfig:
    """The ablation (defaults: 4 variants x 3 seeds at the default's 4 M steps, each measured with 100-cycle lives;
    the sweep of docs/degradation.md: experiments/configs/degradation_sweep.yml)."""

    agent: dict = field(default_factory=dict)
    """Overrides of agents.rl.train.AgentConfig shared by every variant, e.g. {total_timesteps: 1000000}."""
    variants: dict = field(default_factory=lambda: {
        "margin, no diagnostics": {"train_env": {"diagnostics": []}},
        "margin + diagnostics": {},
        "BMS only, no diagnostics": {"env_id": envs.FAST_CHARGE_BMS_ID, "train_env": {"diagnostics": []}},
        "BMS only + diagnostics": {"env_id": envs.FAST_CHARGE_BMS_ID},
    })
    """Variant name -> overrides of AgentConfig over ``agent`` (``env_id``; ``train_env``: keyword arguments over the
    hyperparameter file's env_kwargs, e.g. diagnostics and their weights; ``seeds``: this variant's own seeds)."""
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    """Seeds trained per variant."""
    n_cycles: int = 100
    """Cycles of each life in the measurement."""
    life_soc: float = 0.1
    """Start SOC of the lives (at 25 C and the grid's hottest ambient)."""
    references: str = ""
    """Reference table: the grid measured on and the times judged against (default: the chemistry's committed one)."""
    compare: bool = True
    """Show the committed baselines beside the agents."""
    out: str = "runs/ablation"
    """Folder of the report; each variant and seed trains in <out>/<variant>-s<seed>."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    progress: bool = True
    """Show progress bars."""


def variant_config(cfg: AblationConfig, name: str, settings: dict, seed: int) -> AgentConfig:
    """The AgentConfig of one variant and seed."""
    base = AgentConfig(**{"threads": cfg.threads, "progress": cfg.progress, "backend": "surrogate", **cfg.agent})
    settings = copy.deepcopy(settings)
    settings.pop("seeds", None)  # which seeds run, not how
    base.train_env = {**base.train_env, **settings.pop("train_env", {})}
    for key, value in settings.items():
        setattr(base, key, value)
    base.seed = int(seed)
    base.out = str(Path(cfg.out) / f"{name.replace(' ', '-').replace(',', '')}-s{seed}")
    return base


def ablate(cfg: AblationConfig) -> dict:
    """Train every variant and seed of ``cfg`` (reusing finished runs), then measure them all on the ground truth;
    variant name -> its run folders."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))

    # -- train each variant and seed (or reuse a finished run with the same settings); seed-major, so that a
    #    stopped ablation has every variant at its first seeds
    runs, train_minutes = {name: [] for name in cfg.variants}, {}
    for seed in sorted({s for settings in cfg.variants.values() for s in settings.get("seeds", cfg.seeds)}):
        for name, settings in cfg.variants.items():
            if seed not in settings.get("seeds", cfg.seeds):
                continue
            agent_cfg = variant_config(cfg, name, settings, seed)
            if is_trained(agent_cfg):
                print(f"{name}, seed {seed}: reusing {agent_cfg.run_dir()}")
            else:
                print(f"{name}, seed {seed}: training in {agent_cfg.run_dir()} ({agent_cfg.env_id}, train_env "
                      f"{agent_cfg.train_env})")
                train_minutes[f"{name} s{seed}"] = train(agent_cfg, replay=False)["train_minutes"]
            runs[name].append(str(agent_cfg.run_dir()))

    # -- every policy on the ground truth, beside the committed baselines
    measured = MeasureConfig(chemistry=AgentConfig(**cfg.agent).chemistry, cccv=[], tuned=False, runs=runs,
                             compare=cfg.compare, n_cycles=cfg.n_cycles, life_soc=cfg.life_soc,
                             references=cfg.references, out=str(out), progress=cfg.progress)
    measure_degradation(measured, run_policies(runs))
    (out / "runs.json").write_text(json.dumps({"runs": runs, "train_minutes": train_minutes}, indent=1))
    return runs


__all__ = ["AblationConfig", "variant_config", "ablate"]
