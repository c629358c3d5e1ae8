"""What a charge costs the cell: policies and protocol families on the degradation DFN, per cycle and over life.

    python experiments/measure_degradation.py                  # the baselines: CC-CV 0.5-1.5C, the tuned protocols
    python experiments/measure_degradation.py --ship           # ... and commit them as agents/references/nmc-degradation.json
    python experiments/measure_degradation.py --runs '{"PPO, w_deg 0": ["runs/sweep/w0-s0", "runs/sweep/w0-s1"]}'

Top to bottom: config -> for every policy (a CC-CV rate, the tuned protocol of each grid point, each
agent run) one ground-truth cycle from every start of the yardstick's grid and life at
:data:`agents.ageing.LIFE_STARTS` (:func:`agents.ageing.measure`) -> ``<out>/policies/<name>.json``
(atomically, so a killed run resumes at the next policy) -> ``<out>/degradation.md`` (the tables),
``fronts.png`` (charge time vs irreversible loss per cycle, one point per policy, families as fronts)
and ``capacity.png`` (retention vs cycle) -> with ``--ship``, the baselines' results beside the
reference table, for ``evaluate_policy.py`` to compare agents with.

The PyBaMM variables read are named in :mod:`agents.ageing` and :func:`surrogates.physics.dfn.lithium_split`.
About 25 min on 2 cores for the baselines (8 s a charge, 1-2 min a life of 100 cycles).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402
from agents.ageing import DEGRADATION, LifeConfig, life_starts, measure  # noqa: E402
from agents.degradation_report import (  # noqa: E402
    BASELINE_FAMILIES,
    degradation_path,
    judge,
    load_baselines,
    plot_capacity,
    plot_fronts,
    report,
)
from agents.evaluation import CV_MARGIN, Start  # noqa: E402
from agents.references import load_references, point_key, reference_starts, task_env_kwargs  # noqa: E402
from envs.config import ChargingConfig  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.common.files import atomic_write_text, safe_name  # noqa: E402


@dataclass
class MeasureConfig:
    """The measurement (defaults: the baselines of the README's table)."""

    chemistry: str = "nmc"
    """Cell (its reference table gives the grid and the tuned protocols)."""
    cccv: list = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5])
    """C-rates of the CC-CV family [1/h] (agents.baselines.CCCVPolicy, CV 5 mV below v_max as in the references)."""
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


def policies(cfg: MeasureConfig):
    """(name, family, policy_at(start), env kwargs) for every policy to measure."""
    from agents.algorithms import load_agent
    from agents.baselines import CCCVPolicy
    from agents.tuning import Protocol

    config = ChargingConfig(chemistry=cfg.chemistry)
    base_env = task_env_kwargs(config)
    for c in cfg.cccv:
        yield (f"CC-CV {c:g}C", BASELINE_FAMILIES[0], lambda start, c=c: CCCVPolicy(c, v_max=config.v_max - CV_MARGIN,
                                                                                    config=config), base_env)
    if cfg.tuned:
        table = load_references(config, cfg.references or None)

        def tuned_at(start):
            return Protocol.from_json(table["points"][point_key(start)]["tuned"]["protocol"]).policy(config)

        yield "tuned 5-stage", BASELINE_FAMILIES[1], tuned_at, base_env
    for family, dirs in cfg.runs.items():
        for d in dirs:
            agent, resolved = load_agent(d)
            env_kwargs = {"chemistry": resolved["config"]["chemistry"], **resolved["config"]["env"]}
            yield f"{family}: {Path(d).name}", family, (lambda start, a=agent: a), env_kwargs


def main(argv=None) -> dict:
    cfg, _ = parse_config(MeasureConfig, argv, description=__doc__)
    out = Path(cfg.out)
    (out / "policies").mkdir(parents=True, exist_ok=True)
    table = load_references(ChargingConfig(chemistry=cfg.chemistry), cfg.references or None)
    starts = reference_starts(table)
    lives_at = life_starts(starts, cfg.life_soc)
    life_config = LifeConfig(n_cycles=cfg.n_cycles)
    estimator = None
    if cfg.runs:
        from surrogates.diagnostics import load_diagnostic

        estimator = load_diagnostic("degradation", cfg.chemistry)  # its estimate of each agent's charge, beside the DFN's
    results = {}
    for name, family, policy_at, env_kwargs in policies(cfg):
        path = out / "policies" / f"{safe_name(name)}.json"
        settings = {"name": name, "family": family, "env": env_kwargs, "life": asdict(life_config),
                    "starts": [point_key(s) for s in starts], "life_starts": [point_key(s) for s in lives_at]}
        if path.exists():
            done = json.loads(path.read_text())
            if done.get("settings") == json.loads(json.dumps(settings)):
                results[name] = done
                print(f"{name}: measured already ({path})")
                continue
        t0 = time.time()
        env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm", pybamm_options=DEGRADATION, **env_kwargs)
        res = measure(policy_at, env, starts, lives_at, life_config, progress=cfg.progress,
                      estimator=estimator if family not in BASELINE_FAMILIES else None)
        env.close()
        res.update(settings=settings, minutes=(time.time() - t0) / 60.0)
        atomic_write_text(path, json.dumps(res, indent=1, default=float))
        results[name] = res
        print(f"{name}: {res['minutes']:.1f} min")

    if cfg.compare:
        for name, res in load_baselines(cfg.chemistry).items():
            results.setdefault(name, res)
    judge(results, table)
    text = report(results, starts, lives_at)
    (out / "degradation.md").write_text(text)
    cold = Start(cfg.life_soc, min(s.ambient_temperature for s in starts))  # where plating is the hazard
    plot_fronts(results, out / "fronts.png", lives_at, exposure_at=cold)
    plot_capacity(results, out / "capacity.png", lives_at)
    print(text)
    if cfg.ship:
        baselines = {n: {k: v for k, v in r.items() if k != "yardstick"} for n, r in results.items()
                     if r["settings"]["family"] in BASELINE_FAMILIES}
        ship = {"command": "python experiments/measure_degradation.py --ship", "task": table["task"],
                "life": asdict(life_config), "life_starts": [point_key(s) for s in lives_at], "policies": baselines}
        path = degradation_path(cfg.chemistry)
        atomic_write_text(path, json.dumps(ship, indent=1, default=float))
        plot_fronts(results, path.with_name(f"{path.stem}-fronts.png"), lives_at, exposure_at=cold)  # the README's
        plot_capacity(results, path.with_name(f"{path.stem}-capacity.png"), lives_at)
        print(f"shipped the baselines to {path} (and its -fronts.png, -capacity.png)")
    return results


if __name__ == "__main__":
    main()
