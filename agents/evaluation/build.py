"""Building the reference table: every reference at every grid point on the DFN, resumable and in parallel.

``python experiments/build_references.py`` runs :func:`build_references`. Each grid point is independent, so
``workers`` > 1 computes points in that many processes; every finished (point, reference) is written at once,
atomically, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import envs
from agents.charge import Start, charge_row, point_key, rollout, summarize
from agents.control.oracle import DFNOracle
from agents.control.tuning import Protocol, encode_profile, fastest_cccv, scaled, tune_protocol
from agents.evaluation.references import COMPUTE_ORDER, REFERENCES, REGENERATE, references_markdown, task_env_kwargs, task_record
from envs.config import ChargingConfig
from surrogates.common.files import atomic_write_text
from surrogates.physics.dfn import DFNSimulator


class PointWorker:
    """Computes the references of one grid point at a time (one DFN and one env per process)."""

    def __init__(self, config: ChargingConfig, buffers: tuple[float, float, float], evaluations: int, seed: int):
        self.config, self.buffers, self.evaluations, self.seed = config, tuple(buffers), evaluations, seed
        self.sim = DFNSimulator(config.chemistry, dt=config.dt)
        self.env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm", **task_env_kwargs(config)).unwrapped

    def verified(self, protocol, start: Start):
        """Replay through the env; scale the rates down by 0.5 % steps until the replay breaks nothing."""
        for _ in range(40):
            trace = rollout(protocol.policy(self.config), self.env, start)
            if summarize(trace, self.config).safe:
                return protocol, trace
            protocol = scaled(protocol, 0.995)
        raise RuntimeError(f"no safe scaling of {protocol.label} from {start.label}")

    def compute(self, start: Start, entry: dict, which, done=None, tick=None) -> dict:
        """Add the references in ``which`` that ``entry`` lacks (in :data:`REFERENCES`' order); ``done(entry)``
        after each one, ``tick(n)`` as the tuning's charges run. Returns the entry."""
        config = self.config
        for ref in [r for r in COMPUTE_ORDER if r in which and r not in entry]:
            if ref in ("oracle", "oracle_buffered"):
                oracle = DFNOracle(config, self.buffers if ref == "oracle_buffered" else (0.0, 0.0, 0.0), sim=self.sim)
                entry[ref] = charge_row(oracle.run(start), config).to_json()
            elif ref == "cccv":
                protocol, _ = fastest_cccv(self.sim, start, config)
                protocol, trace = self.verified(protocol, start)
                entry[ref] = {**charge_row(trace, config).to_json(), "protocol": protocol.to_json()}
            else:
                if "cccv" not in entry:
                    raise RuntimeError("the tuned protocol starts from the fastest CC-CV: compute 'cccv' first")
                cccv = Protocol.from_json(entry["cccv"]["protocol"])
                # the oracle's profile, held under its lowest rate per stage (and scaled until safe), is a
                # second place to start from
                guess = None
                if "oracle" in entry:
                    guess = encode_profile(np.asarray(entry["oracle"]["c_rate_profile"]), start, config)
                protocol, _, record = tune_protocol(self.sim, start, config, cccv, evaluations=self.evaluations,
                                                    seed=self.seed, guess=guess, progress=tick)
                protocol, trace = self.verified(protocol, start)
                entry[ref] = {**charge_row(trace, config).to_json(), "protocol": protocol.to_json(), "search": record}
            if done is not None:
                done(entry)
        return entry


_WORKER: PointWorker | None = None


def _init_worker(config, buffers, evaluations, seed):
    global _WORKER
    _WORKER = PointWorker(config, buffers, evaluations, seed)


def _compute_point(start: Start, entry: dict, which) -> dict:
    return _WORKER.compute(start, entry, which)


def build_references(config: ChargingConfig, starts: list[Start], path: Path, buffers: tuple[float, float, float],
                     evaluations: int = 200, seed: int = 0, which=tuple(REFERENCES), workers: int = 1,
                     progress: bool = True) -> dict:
    """Compute the missing references of ``starts`` into ``path`` (resuming what is there); the table.

    ``buffers`` (V, K, V): the agent's safety buffers for ``oracle_buffered``. ``evaluations``: the
    tuning's budget per grid point. ``workers`` > 1 computes grid points in that many processes
    (each point is independent); the table is saved after every point (with one worker, after every
    reference).
    """
    from tqdm.auto import tqdm

    task = task_record(config)
    table = json.loads(path.read_text()) if path.exists() else {}
    if table and table.get("task") != task:
        raise ValueError(f"{path} was built for another task ({table.get('task')}), not {task}: move it away to rebuild")
    table.update(task=task, buffers=list(buffers), evaluations=evaluations, seed=seed,
                 command=REGENERATE.format(chemistry=config.chemistry))
    points = table.setdefault("points", {})

    def save(*_):
        atomic_write_text(path, json.dumps(table, indent=1))
        atomic_write_text(path.with_suffix(".md"), references_markdown(table))

    todo = [s for s in starts if any(r not in points.get(point_key(s), {}) for r in which)]
    for s in todo:
        points.setdefault(point_key(s), {"soc": s.soc, "ambient_temperature": s.ambient_temperature})
    bar = tqdm(total=len(todo), desc=f"references ({config.chemistry}, {workers} worker(s))", disable=not progress,
               unit="point")
    if todo and workers <= 1:
        worker = PointWorker(config, buffers, evaluations, seed)
        for start in todo:
            bar.set_postfix_str(start.label)
            worker.compute(start, points[point_key(start)], which, done=save)
            bar.update(1)
        worker.env.close()
    elif todo:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(config, tuple(buffers), evaluations, seed)) as pool:
            futures = {pool.submit(_compute_point, s, points[point_key(s)], tuple(which)): s for s in todo}
            for future in as_completed(futures):
                start = futures[future]
                points[point_key(start)] = future.result()
                save()
                bar.set_postfix_str(f"{start.label} done")
                bar.update(1)
    bar.close()
    save()
    return table


__all__ = ["PointWorker", "build_references"]
