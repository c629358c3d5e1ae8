"""Do the learned diagnostics (and the privileged plating margin) buy anything? Train variants, judge them on the ground truth.

    python experiments/ablate_diagnostics.py                       # PPO, nmc: 4 variants x 3 seeds, then the DFN
    python experiments/ablate_diagnostics.py --config experiments/configs/degradation_sweep.yml   # degradation weights
    python experiments/ablate_diagnostics.py --agent "{total_timesteps: 200000}" --seeds "[0]" --out runs/ablation-quick

Top to bottom: config -> one training per variant and seed (:func:`agents.train.train`, same settings; the
variants differ in what their training reward sees) -> every policy's ground truth on the degradation DFN over
the yardstick's grid and over life (``experiments/measure_degradation.py``: irreversible loss per cycle,
plating exposure, fade, and the yardstick's charge-time ratio on the same charges), next to the committed
baselines (CC-CV 0.5-1.5C, the tuned protocols) -> ``<out>/degradation.md``, ``fronts.png``, ``capacity.png``.

The default variants are the ablation of the reward:

- **margin, no diagnostics**: the surrogate's plating margin penalised (``w_plating``), no diagnostic terms;
- **margin + diagnostics**: the default agent (``cellgym/FastCharge-v0``'s hyperparameters);
- **BMS only, no diagnostics**: neither (voltage and temperature limits only);
- **BMS only + diagnostics**: ``cellgym/FastChargeBMS-v0``, the learned diagnostics as the only plating and
  degradation signals: what a real charger could be trained with.

A run folder that already holds a policy trained with the same settings is not retrained, and every measured
policy is kept, so an interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import yaml  # noqa: E402

import envs  # noqa: E402
from agents.train import AgentConfig, is_trained, train  # noqa: E402
from surrogates.common.cli import load_script, parse_config  # noqa: E402


@dataclass
class AblationConfig:
    """The ablation (defaults: 4 variants x 3 seeds at the default's 4 M steps, about 8 min a training and 6-8 min a
    measurement with 100-cycle lives on 2 cores; the README's sweep: experiments/configs/degradation_sweep.yml)."""

    agent: dict = field(default_factory=dict)
    """Overrides of agents.train.AgentConfig shared by every variant, e.g. {total_timesteps: 1000000}."""
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


def main(argv=None) -> dict:
    # -- config
    cfg, _ = parse_config(AblationConfig, argv, description=__doc__)
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
    measure = load_script(Path(__file__).with_name("measure_degradation.py")).main

    chemistry = AgentConfig(**cfg.agent).chemistry
    measure(["--chemistry", chemistry, "--cccv", "[]", "--tuned", "false", "--runs", json.dumps(runs),
             "--n-cycles", str(cfg.n_cycles), "--life-soc", str(cfg.life_soc), "--references", cfg.references,
             "--compare", str(cfg.compare).lower(), "--out", str(out), "--progress", str(cfg.progress).lower()])
    (out / "runs.json").write_text(json.dumps({"runs": runs, "train_minutes": train_minutes}, indent=1))
    return runs


if __name__ == "__main__":
    main()
