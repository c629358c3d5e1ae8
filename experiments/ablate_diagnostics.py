"""Do the learned diagnostics buy safety, and at what cost in charge time? Train with and without, judge on the DFN.

    python experiments/ablate_diagnostics.py                       # PPO, nmc: two trainings + DFN replays
    python experiments/ablate_diagnostics.py --agent "{total_timesteps: 200000}" --out runs/ablation-quick

Top to bottom: config -> one training per variant (:func:`agents.train.train`, same seed, same
settings; the only difference is the diagnostic reward terms of the training env) -> replay every
policy, and a CC-CV reference, on PyBaMM's DFN *with* its degradation submodels (SEI growth and
lithium plating, ``DFNSimulator(degradation=True)``) from each start condition -> table: charge
time, lowest plating margin, time spent plating, capacity lost according to the DFN, and the
degradation estimator's own estimate of it -> ``<out>/ablation.md`` and ``.json``.

A variant whose run folder already holds a policy trained with the same settings is not
retrained, so an interrupted ablation resumes where it stopped.

Variants are training-env settings, so other questions are one flag away; e.g. what the
diagnostics buy when the reward cannot see the hidden plating margin (only what a BMS measures)::

    python experiments/ablate_diagnostics.py --out runs/ablation-bms --variants \
        '{"without diagnostics, no margin penalty": {"w_plating": 0.0, "diagnostics": []},
          "with diagnostics, no margin penalty": {"w_plating": 0.0, "diagnostics": ["plating", "degradation"]}}'
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import envs  # noqa: E402
from agents.algorithms import load_agent  # noqa: E402
from agents.baselines import CCCVPolicy  # noqa: E402
from agents.evaluation import CV_MARGIN, Start, rollout, summarize  # noqa: E402
from surrogates.common.tables import markdown_table  # noqa: E402
from agents.train import AgentConfig, is_trained, train  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.diagnostics import load_diagnostic  # noqa: E402


@dataclass
class AblationConfig:
    """The ablation (defaults: the README's numbers, about 18 min on a 2-core CPU)."""

    agent: dict = field(default_factory=dict)
    """Overrides of agents.train.AgentConfig shared by every variant, e.g. {total_timesteps: 1000000}."""
    variants: dict = field(default_factory=lambda: {
        "without diagnostics": {"diagnostics": []},
        "with diagnostics": {"diagnostics": ["plating", "degradation"]},
    })
    """Variant name -> training-env keyword arguments added to AgentConfig.train_env (over the hyperparameter
    file's env_kwargs: diagnostics and their weights; weights not given are the file's, then the env's)."""
    starts: list = field(default_factory=lambda: [[0.1, 298.15], [0.1, 288.15], [0.1, 308.15]])
    """Start conditions of the DFN replay: [[soc, ambient K], ...]."""
    cccv_reference: float = 1.0
    """C-rate of the CC-CV protocol replayed beside the agents (0: none)."""
    out: str = "runs/ablation"
    """Folder of the report; each variant trains in <out>/<variant>."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    progress: bool = True
    """Show progress bars."""


def variant_config(cfg: AblationConfig, name: str, settings: dict) -> AgentConfig:
    """The AgentConfig of one variant."""
    base = AgentConfig(**{"threads": cfg.threads, "progress": cfg.progress, **cfg.agent})
    base.train_env = {**base.train_env, **copy.deepcopy(settings)}
    base.out = str(Path(cfg.out) / name.replace(" ", "-"))
    return base


def diagnostic_settings(run_dir: Path) -> dict:
    """The diagnostics (and the weights of those used) a run's training env had."""
    env = yaml.safe_load((run_dir / "config.yml").read_text())["hyperparams"]["env_kwargs"]
    out = {"diagnostics": list(env.get("diagnostics", []))}
    if out["diagnostics"]:
        out["diagnostic_weights"] = {k: v for k, v in env.get("diagnostic_weights", {}).items() if k in out["diagnostics"]}
    return out


def charge_metrics(trace: dict, config, estimator=None) -> dict:
    """Ablation columns for one DFN replay (a trace of agents.evaluation.rollout with capacity_lost)."""
    row = summarize(trace, config)
    lost = trace["capacity_lost"]
    ok = np.isfinite(lost)
    row["capacity_lost_mAh"] = float(1e3 * lost[ok][-1]) if ok.any() else math.nan
    if estimator is not None:
        n = int(ok.sum())  # intervals 1..n-1 of the trace (index 0 is the rest state)
        est = estimator.charge_capacity_lost(trace["current"][1:n], trace["voltage"][1:n], trace["temperature"][1:n],
                                             trace["voltage"][0], trace["temperature"][0])
        row["estimated_capacity_lost_mAh"] = float(1e3 * est[0])
    return row


def _fmt(v) -> str:
    """A table cell: floats to 2 decimals, NaN as n/a, missing as empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.2f}"
    return str(v)


COLUMNS = [("charge_time_min", "charge time [min]"), ("min_plating_margin_mV", "min plating margin [mV]"),
           ("time_plating_min", "time plating [min]"), ("capacity_lost_mAh", "capacity lost, DFN [mA.h]"),
           ("estimated_capacity_lost_mAh", "estimated by the diagnostic [mA.h]"), ("max_temperature_C", "max T [C]"),
           ("max_voltage_V", "max V [V]"), ("violating_steps", "violating intervals")]
TABLE = [(label, lambda r, k=key: _fmt(r.get(k))) for key, label in [("start", "start"), ("policy", "policy")] + COLUMNS]
"""The ablation table's columns (surrogates.common.tables.markdown_table)."""


def main(argv=None) -> dict:
    # -- config
    cfg, _ = parse_config(AblationConfig, argv, description=__doc__)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))

    # -- train each variant (or reuse a finished run with the same settings)
    runs, train_minutes = {}, {}
    for name, settings in cfg.variants.items():
        agent_cfg = variant_config(cfg, name, settings)
        if is_trained(agent_cfg):
            print(f"{name}: reusing {agent_cfg.run_dir()}")
        else:
            print(f"{name}: training in {agent_cfg.run_dir()} with train_env {agent_cfg.train_env}")
            train_minutes[name] = train(agent_cfg, replay=False)["train_minutes"]
        runs[name] = agent_cfg.run_dir()

    # -- replay on the DFN with degradation submodels
    first = yaml.safe_load((next(iter(runs.values())) / "config.yml").read_text())["config"]
    env = gym.make(envs.FAST_CHARGE_ID, chemistry=first["chemistry"], backend="pybamm",
                   pybamm_options={"degradation": True}, **first["env"])
    config = env.unwrapped.config
    estimator = load_diagnostic("degradation", first["chemistry"])
    policies = {name: load_agent(path)[0] for name, path in runs.items()}
    if cfg.cccv_reference:
        policies[f"CC-CV {cfg.cccv_reference:g}C (reference)"] = CCCVPolicy.for_env(
            env, c_rate=cfg.cccv_reference, v_max=config.v_max - CV_MARGIN)
    rows = []
    t0 = time.perf_counter()
    for s in cfg.starts:
        start = Start(*s)
        for name, policy in policies.items():
            rows.append({"start": start.label, "policy": name,
                         **charge_metrics(rollout(policy, env.unwrapped, start), config, estimator)})
            print(f"{start.label}, {name}: " + ", ".join(f"{label} {rows[-1].get(k)}" for k, label in COLUMNS[:4]))
    env.close()
    replay_minutes = (time.perf_counter() - t0) / 60

    # -- report
    text = (f"# Diagnostic reward terms: ablation on the DFN ({first['chemistry']}, {first['algo'].upper()}, "
            f"{first['surrogate']} surrogate)\n\n"
            "Each variant trains the same agent (same seed and settings) on the surrogate; they differ only in the "
            "training env's diagnostic terms:\n\n"
            + "".join(f"- **{n}**: `{json.dumps(diagnostic_settings(path))}`\n" for n, path in runs.items())
            + f"\nReplayed on PyBaMM's DFN with SEI growth and lithium plating ({estimator.meta.get('data', {}).get('model')}; "
            f"degradation parameters {estimator.meta.get('data', {}).get('degradation_parameter_set')}), "
            f"limits V <= {config.v_max} V, T <= {config.t_max - 273.15:.0f} C, plating margin >= "
            f"{config.plating_limit * 1e3:.0f} mV, target SOC {config.soc_target:.0%}. Time plating: intervals whose "
            "lowest plating margin is below the limit. Capacity lost: lithium inventory lost to SEI, plated and dead "
            "lithium during the charge.\n\n" + markdown_table(rows, TABLE) + "\n"
            + f"\nTraining minutes: {json.dumps(train_minutes) if train_minutes else 'reused runs'}; "
            f"DFN replays: {replay_minutes:.1f} min.\n")
    (out / "ablation.md").write_text(text)
    report = {"rows": rows, "runs": {k: str(v) for k, v in runs.items()}, "train_minutes": train_minutes,
              "replay_minutes": round(replay_minutes, 2)}
    (out / "ablation.json").write_text(json.dumps(report, indent=2, default=float))
    print(text)
    return report


if __name__ == "__main__":
    main()
