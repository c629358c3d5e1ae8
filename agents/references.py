"""The reference table: what the physical limit and the best tuned protocols do at every start condition.

Glossary (units as in :mod:`surrogates.common.channels`):

    grid        start conditions (initial SOC x ambient temperature) every policy is judged at
    reference   a controller replayed on the DFN at every grid point:
                  oracle           :class:`agents.oracle.DFNOracle`, the physical limit
                  oracle_buffered  the oracle held to the agent's safety buffers
                  tuned            the fastest safe 5-stage CC-CV found by CMA-ES then COBYLA (:mod:`agents.tuning`)
                  cccv             the fastest safe single CC-CV (bisected)

The references are expensive (minutes per grid point on one core), so they are computed once by
``python experiments/build_references.py`` into ``agents/references/<chemistry>.json`` (and a
markdown copy), committed, and reused by every evaluation. The file records the task it was built
for (:func:`task_record`: limits, ``dt``, ``c_max``, target, PyBaMM version, the DFN's settings);
:func:`load_references` refuses a table whose task differs from the env's, and says how to rebuild
it. Building is resumable: every finished (point, reference) is written at once, atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agents.evaluation import Start, charge_row, is_safe, rollout, summarize
from envs.config import ChargingConfig
from surrogates.common.files import atomic_write_text
from surrogates.common.tables import markdown_table

REFERENCE_DIR = Path(__file__).resolve().parent / "references"
"""Committed reference tables, one per chemistry."""
GRID_SOCS: tuple[float, ...] = (0.05, 0.10, 0.20, 0.30)
"""Initial SOCs of the grid [1]."""
GRID_AMBIENTS: tuple[float, ...] = (283.15, 298.15, 313.15)
"""Ambient temperatures of the grid [K] (10, 25, 40 C: the surrogates' training range)."""
REFERENCES: dict[str, str] = {
    "oracle": "oracle (DFN state, greedy on the limits)",
    "oracle_buffered": "oracle held to the agent's buffers",
    "tuned": "tuned 5-stage CC-CV (CMA-ES + COBYLA on the DFN)",
    "cccv": "fastest safe CC-CV",
}
"""Reference name -> its label in tables and figures."""
COMPUTE_ORDER = ("oracle", "oracle_buffered", "cccv", "tuned")
"""The order references are computed in: the tuned protocol starts from the CC-CV and the oracle's profile."""
REGENERATE = "python experiments/build_references.py --chemistry {chemistry}"


def grid(socs=GRID_SOCS, ambients=GRID_AMBIENTS) -> list[Start]:
    """The grid's start conditions, SOC-major."""
    return [Start(float(s), float(t)) for s in socs for t in ambients]


def point_key(start: Start) -> str:
    """A grid point's key in the table: ``"0.10@298.15"``."""
    return f"{start.soc:.2f}@{start.ambient_temperature:.2f}"


def task_record(config: ChargingConfig) -> dict:
    """What the references depend on: the env's task and the DFN (a change means rebuilding)."""
    import pybamm

    return {
        "chemistry": config.chemistry, "dt": config.dt, "c_max": config.c_max, "soc_target": config.soc_target,
        "v_max": config.v_max, "t_max": config.t_max, "plating_limit": config.plating_limit,
        "hard_voltage_margin": config.hard_voltage_margin, "hard_temperature_margin": config.hard_temperature_margin,
        "time_limit": config.time_limit, "pybamm": pybamm.__version__, "dfn": "DFN + lumped thermal, substeps 5, IDAKLU rtol 1e-4",
    }


def agent_buffers(config: ChargingConfig, algo: str = "ppo") -> tuple[float, float, float]:
    """The safety buffers (V, K, V) of the default training env (``agents/hyperparams/<algo>.yml``)
    inside ``config``'s limits: how much tighter the agent is trained than it is judged."""
    from agents.algorithms import load_hyperparams
    from envs import FAST_CHARGE_ID
    from surrogates.physics.chemistry import get_chemistry

    kw = load_hyperparams(algo, FAST_CHARGE_ID).get("env_kwargs") or {}
    v_written = get_chemistry(kw.get("chemistry", "nmc")).v_max
    return (round(v_written - kw.get("v_max", v_written), 9), round(config.t_max - kw.get("t_max", config.t_max), 9),
            round(kw.get("plating_limit", config.plating_limit) - config.plating_limit, 9))


def reference_path(chemistry: str) -> Path:
    """``{chemistry}.json``: in :data:`REFERENCE_DIR` for a shipped cell, in the cell's folder for a user's."""
    from surrogates.physics.chemistry import artefact_dir

    return artefact_dir(chemistry, "references", REFERENCE_DIR) / f"{chemistry}.json"


class PointWorker:
    """Computes the references of one grid point at a time (one DFN and one env per process)."""

    def __init__(self, config: ChargingConfig, buffers: tuple[float, float, float], evaluations: int, seed: int):
        import gymnasium as gym

        import envs
        from surrogates.physics.dfn import DFNSimulator

        self.config, self.buffers, self.evaluations, self.seed = config, tuple(buffers), evaluations, seed
        self.sim = DFNSimulator(config.chemistry, dt=config.dt)
        self.env = gym.make(envs.FAST_CHARGE_ID, backend="pybamm", **task_env_kwargs(config)).unwrapped

    def verified(self, protocol, start: Start):
        """Replay through the env; scale the rates down by 0.5 % steps until the replay breaks nothing."""
        from agents.tuning import scaled

        for _ in range(40):
            trace = rollout(protocol.policy(self.config), self.env, start)
            if is_safe(summarize(trace, self.config)):
                return protocol, trace
            protocol = scaled(protocol, 0.995)
        raise RuntimeError(f"no safe scaling of {protocol.label} from {start.label}")

    def compute(self, start: Start, entry: dict, which, done=None, tick=None) -> dict:
        """Add the references in ``which`` that ``entry`` lacks (in :data:`REFERENCES`' order); ``done(entry)``
        after each one, ``tick(n)`` as the tuning's charges run. Returns the entry."""
        from agents.oracle import DFNOracle
        from agents.tuning import Protocol, encode_profile, fastest_cccv, tune_protocol

        config = self.config
        for ref in [r for r in COMPUTE_ORDER if r in which and r not in entry]:
            if ref in ("oracle", "oracle_buffered"):
                oracle = DFNOracle(config, self.buffers if ref == "oracle_buffered" else (0.0, 0.0, 0.0), sim=self.sim)
                entry[ref] = charge_row(oracle.run(start), config)
            elif ref == "cccv":
                protocol, _ = fastest_cccv(self.sim, start, config)
                protocol, trace = self.verified(protocol, start)
                entry[ref] = {**charge_row(trace, config), "protocol": protocol.to_json()}
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
                entry[ref] = {**charge_row(trace, config), "protocol": protocol.to_json(), "search": record}
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


def task_env_kwargs(config: ChargingConfig) -> dict:
    """The env keyword arguments that reproduce ``config``'s task (limits, target, interval; not its reward)."""
    return {k: getattr(config, k) for k in ("chemistry", "dt", "c_max", "soc_target", "v_max", "t_max", "plating_limit",
                                            "hard_voltage_margin", "hard_temperature_margin", "time_limit")}


def load_references(config: ChargingConfig, path: Path | None = None) -> dict:
    """The committed reference table for ``config``'s task; a clear error if missing or built for another task."""
    path = Path(path) if path else reference_path(config.chemistry)
    cmd = REGENERATE.format(chemistry=config.chemistry)
    if not path.exists():
        raise FileNotFoundError(f"no reference table at {path}: build it with `{cmd}` (about an hour on one core)")
    table = json.loads(path.read_text())
    task = task_record(config)
    if table.get("task") != task:
        diff = {k: (table.get("task", {}).get(k), v) for k, v in task.items() if table.get("task", {}).get(k) != v}
        raise ValueError(f"{path} was built for another task (table vs env: {diff}); rebuild it with `{cmd}`")
    return table


def reference_starts(table: dict) -> list[Start]:
    """The grid points of a table, in its order."""
    return [Start(e["soc"], e["ambient_temperature"]) for e in table["points"].values()]


def _time(row: dict | None) -> str:
    if row is None:
        return "-"
    t = row["charge_time_min"]
    return "not reached" if t is None or (isinstance(t, float) and math.isnan(t)) else f"{t:.1f}"


def references_markdown(table: dict) -> str:
    """The table as markdown: one row per grid point, charge time [min] of each reference."""
    task = table["task"]
    b = table.get("buffers", [0, 0, 0])
    cols: list[tuple[str, Callable]] = [("start", lambda e: Start(e["soc"], e["ambient_temperature"]).label)]
    cols += [(f"{REFERENCES[r]} [min]", (lambda r: lambda e: _time(e.get(r)))(r)) for r in REFERENCES]
    cols += [("tuned protocol", lambda e: e["tuned"]["protocol"]["label"] if "tuned" in e else "-")]
    head = (f"# Reference charge times, {task['chemistry']}, {task['soc_target']:.0%} target, on the PyBaMM DFN\n\n"
            f"Limits V <= {task['v_max'] or 'cut-off'} V, T <= {task['t_max'] - 273.15:.0f} C, plating margin >= "
            f"{task['plating_limit'] * 1e3:.0f} mV, checked on each {task['dt']:g} s interval's sub-samples; c_max "
            f"{task['c_max']:g}C; PyBaMM {task['pybamm']}. The buffered oracle keeps {b[0] * 1e3:.0f} mV, {b[1]:g} K "
            f"and {b[2] * 1e3:.0f} mV inside the limits. Optimiser budget {table.get('evaluations')} DFN charges per point "
            f"(seed {table.get('seed')}). Regenerate (resumes): `{table.get('command')}`.\n\n")
    return head + markdown_table(list(table.get("points", {}).values()), cols) + "\n"


__all__ = ["task_env_kwargs", "GRID_SOCS", "GRID_AMBIENTS", "REFERENCES", "grid", "point_key", "task_record", "build_references",
           "load_references", "reference_starts", "agent_buffers", "references_markdown", "reference_path"]
