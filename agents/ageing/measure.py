"""Policies on the ground truth: each one's cycle from every grid start and its life, kept one file a policy.

:func:`measure` is one policy; :func:`measure_policies` is many, resumable (a policy measured with the same
settings is read back, not measured again); :mod:`agents.ageing.pipeline` runs it for the scripts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym

import envs
from agents.ageing.cycle import DEGRADATION, CycleResult, cycle
from agents.ageing.life import LIFE_STARTS, LifeConfig, life
from agents.charge import Start
from agents.control.rules import CV_MARGIN, CCCVPolicy
from agents.control.tuning import Protocol
from agents.evaluation.references import load_references, task_env_kwargs
from envs.config import ChargingConfig
from surrogates.common.files import atomic_write_text, safe_name

BASELINE_FAMILIES = ("CC-CV", "tuned 5-stage")
"""Families of the protocols every agent is compared with."""
PolicySpec = tuple[str, str, Callable, dict]
"""(name, family, ``policy_at(start)`` -> the policy charging from there, env keyword arguments)."""


def measure(policy_at, env, starts, life_starts=LIFE_STARTS, life_config: LifeConfig = LifeConfig(),
            progress: bool = False, estimator=None) -> dict:
    """A policy's ground truth: one :func:`cycle` per start and :func:`life` at ``life_starts`` (which must be
    among ``starts``; a start whose charge failed gets no life).

    ``policy_at(start)`` -> the policy to charge from ``start`` (a tuned protocol differs per start);
    ``env``: the env on the degradation DFN (:data:`DEGRADATION`). Returns ``{"grid": {point key:
    CycleResult}, "life": {point key: life result}}``. ``estimator``: see :func:`cycle`.
    """
    from tqdm.auto import tqdm

    config = env.unwrapped.config
    grid = {}
    for start in tqdm(starts, desc="cycles", unit="charge", disable=not progress, leave=False):
        _, grid[start.key] = cycle(policy_at(start), env, start, estimator)
    lives = {}
    for start in life_starts:
        row = grid[start.key]
        if row.reached:
            lives[start.key] = life(row.charge.c_rate_profile, start, config.chemistry, config.dt, life_config, progress)
    return {"grid": grid, "life": lives}


def result_to_json(result: dict) -> dict:
    """A policy's measurement (:func:`measure`'s, with anything added to it) as the result files store it."""
    return {**result, "grid": {k: r.to_json() for k, r in result["grid"].items()}}


def result_from_json(result: dict) -> dict:
    """A stored measurement back with its grid rows as :class:`CycleResult` records."""
    return {**result, "grid": {k: CycleResult.from_json(r) for k, r in result["grid"].items()}}


def measure_policies(policies: Iterable[PolicySpec], starts: list[Start], lives_at: list[Start], life_config: LifeConfig,
                     folder: Path, estimator=None, progress: bool = True) -> dict:
    """Every policy's :func:`measure` on the degradation DFN into ``folder/<name>.json`` (atomically); a file with the
    same settings is read back instead. ``estimator`` (the degradation diagnostic) estimates each charge's loss, for
    policies outside :data:`BASELINE_FAMILIES`. Returns ``{name: result}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, family, policy_at, env_kwargs in policies:
        path = folder / f"{safe_name(name)}.json"
        settings = {"name": name, "family": family, "env": env_kwargs, "life": asdict(life_config),
                    "starts": [s.key for s in starts], "life_starts": [s.key for s in lives_at]}
        if path.exists():
            done = json.loads(path.read_text())
            if done.get("settings") == json.loads(json.dumps(settings)):
                results[name] = result_from_json(done)
                print(f"{name}: measured already ({path})")
                continue
        t0 = time.time()
        env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm", pybamm_options=DEGRADATION, **env_kwargs)
        res = measure(policy_at, env, starts, lives_at, life_config, progress=progress,
                      estimator=estimator if family not in BASELINE_FAMILIES else None)
        env.close()
        res.update(settings=settings, minutes=(time.time() - t0) / 60.0)
        atomic_write_text(path, json.dumps(result_to_json(res), indent=1, default=float))
        results[name] = res
        print(f"{name}: {res['minutes']:.1f} min")
    return results


def measure_lives(protocols: Iterable[tuple[str, list, Start]], chemistry: str, dt: float, life_config: LifeConfig,
                  folder: Path, record: int = 0, progress: bool = True) -> dict[str, dict]:
    """Each protocol's :func:`agents.ageing.life.life` into ``folder/<name>.json`` (atomically), resumable: a file with the
    same settings is read back instead. ``protocols``: (name, C-rate profile [1/h] per interval of ``dt`` [s], start).
    Returns ``{name: life result}``, each with its ``settings``."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lives = {}
    for name, profile, start in tqdm(list(protocols), desc="lives", unit="life", disable=not progress):
        path = folder / f"{safe_name(name, keep='-.@')}.json"
        settings = {"chemistry": chemistry, "profile": profile, "start": [start.soc, start.ambient_temperature],
                    "life": asdict(life_config), "record": record}
        res = json.loads(path.read_text()) if path.exists() else {}
        if res.get("settings") != json.loads(json.dumps(settings)):
            res = life(profile, start, chemistry, dt, life_config, record=record)
            res["settings"] = settings
            atomic_write_text(path, json.dumps(res, default=float))
        lives[name] = res
    return lives


def baseline_policies(chemistry: str, cccv=(0.5, 0.75, 1.0, 1.25, 1.5), tuned: bool = True, references=None):
    """The baselines as :data:`PolicySpec`: CC-CV at each rate in ``cccv`` [1/h] (CV 5 mV below v_max, as in the
    references) and, with ``tuned``, the tuned protocol of each grid point of the reference table."""
    config = ChargingConfig(chemistry=chemistry)
    base_env = task_env_kwargs(config)
    for c in cccv:
        yield (f"CC-CV {c:g}C", BASELINE_FAMILIES[0],
               lambda start, c=c: CCCVPolicy(c, v_max=config.v_max - CV_MARGIN, config=config), base_env)
    if tuned:
        table = load_references(config, references)

        def tuned_at(start):
            return Protocol.from_json(table["points"][start.key]["tuned"]["protocol"]).policy(config)

        yield "tuned 5-stage", BASELINE_FAMILIES[1], tuned_at, base_env


__all__ = ["BASELINE_FAMILIES", "PolicySpec", "baseline_policies", "measure", "measure_policies", "measure_lives",
           "result_to_json", "result_from_json"]
