"""The reference table: what the physical limit and the best tuned protocols do at every start condition.

Glossary (units as in :mod:`surrogates.common.channels`):

    grid        start conditions (initial SOC x ambient temperature) every policy is judged at
    reference   a controller replayed on the DFN at every grid point:
                  oracle           :class:`agents.control.oracle.DFNOracle`, the physical limit
                  oracle_buffered  the oracle held to the agent's safety buffers
                  tuned            the fastest safe 5-stage CC-CV found by CMA-ES then COBYLA (:mod:`agents.control.tuning`)
                  cccv             the fastest safe single CC-CV (bisected)

The references are expensive (minutes per grid point on one core), so they are computed once by
``python experiments/build_references.py`` (:mod:`agents.evaluation.build`) into ``agents/references/<chemistry>.json`` (and a
markdown copy), committed, and reused by every evaluation. The file records the task it was built
for (:func:`task_record`: limits, ``dt``, ``c_max``, target, PyBaMM version, the DFN's settings);
:func:`load_references` refuses a table whose task differs from the env's, and says how to rebuild
it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from agents.charge import Start, minutes
from envs.config import ChargingConfig
from surrogates.common.tables import markdown_table
from surrogates.physics.chemistry import artefact_dir

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "references"
"""Committed reference tables, one per chemistry."""
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


def task_record(config: ChargingConfig) -> dict:
    """What the references depend on: the env's task and the DFN (a change means rebuilding)."""
    import pybamm  # the table records its version; PyBaMM itself loads only where a task record is made

    from surrogates.physics.dfn import describe

    return {
        "chemistry": config.chemistry, "dt": config.dt, "c_max": config.c_max, "soc_target": config.soc_target,
        "v_max": config.v_max, "t_max": config.t_max, "plating_limit": config.plating_limit,
        "hard_voltage_margin": config.hard_voltage_margin, "hard_temperature_margin": config.hard_temperature_margin,
        "time_limit": config.time_limit, "pybamm": pybamm.__version__, "dfn": describe(),
    }


def reference_path(chemistry: str) -> Path:
    """``{chemistry}.json``: in :data:`REFERENCE_DIR` for a shipped cell, in the cell's folder for a user's."""
    return artefact_dir(chemistry, "references", REFERENCE_DIR) / f"{chemistry}.json"


def task_env_kwargs(config: ChargingConfig) -> dict:
    """The env keyword arguments that reproduce ``config``'s task (limits, target, interval; not its reward)."""
    return {k: getattr(config, k) for k in ("chemistry", "dt", "c_max", "soc_target", "v_max", "t_max", "plating_limit",
                                            "hard_voltage_margin", "hard_temperature_margin", "time_limit")}


def load_references(config: ChargingConfig, path: Path | None = None) -> dict:
    """The committed reference table for ``config``'s task; a clear error if missing or built for another task."""
    path = Path(path) if path else reference_path(config.chemistry)
    cmd = REGENERATE.format(chemistry=config.chemistry)
    if not path.exists():
        raise FileNotFoundError(f"no reference table at {path}: build it with `{cmd}` (DFN charges: long; "
                                "--workers N runs grid points in parallel)")
    table = json.loads(path.read_text())
    task = task_record(config)
    if table.get("task") != task:
        diff = {k: (table.get("task", {}).get(k), v) for k, v in task.items() if table.get("task", {}).get(k) != v}
        raise ValueError(f"{path} was built for another task (table vs env: {diff}); rebuild it with `{cmd}`")
    return table


def reference_starts(table: dict) -> list[Start]:
    """The grid points of a table, in its order."""
    return [Start(e["soc"], e["ambient_temperature"]) for e in table["points"].values()]


def reference_time(entry: dict, name: str) -> float:
    """Reference ``name``'s charge time [min] at a table's grid point (NaN where it never arrived or is not there)."""
    t = entry[name]["charge_time_min"] if name in entry else None
    return float("nan") if t is None else float(t)


def references_markdown(table: dict) -> str:
    """The table as markdown: one row per grid point, charge time [min] of each reference."""
    task = table["task"]
    b = table.get("buffers", [0, 0, 0])
    cols: list[tuple[str, Callable]] = [("start", lambda e: Start(e["soc"], e["ambient_temperature"]).label)]
    cols += [(f"{REFERENCES[r]} [min]", (lambda r: lambda e: minutes(reference_time(e, r)) if r in e else "-")(r)) for r in REFERENCES]
    cols += [("tuned protocol", lambda e: e["tuned"]["protocol"]["label"] if "tuned" in e else "-")]
    head = (f"# Reference charge times, {task['chemistry']}, {task['soc_target']:.0%} target, on the PyBaMM DFN\n\n"
            f"Limits V <= {task['v_max'] or 'cut-off'} V, T <= {task['t_max'] - 273.15:.0f} C, plating margin >= "
            f"{task['plating_limit'] * 1e3:.0f} mV, checked on each {task['dt']:g} s interval's sub-samples; c_max "
            f"{task['c_max']:g}C; PyBaMM {task['pybamm']}. The buffered oracle keeps {b[0] * 1e3:.0f} mV, {b[1]:g} K "
            f"and {b[2] * 1e3:.0f} mV inside the limits. Optimiser budget {table.get('evaluations')} DFN charges per point "
            f"(seed {table.get('seed')}). Regenerate (resumes): `{table.get('command')}`.\n\n")
    return head + markdown_table(list(table.get("points", {}).values()), cols) + "\n"


__all__ = ["REFERENCE_DIR", "REFERENCES", "COMPUTE_ORDER", "REGENERATE", "task_record", "task_env_kwargs", "reference_path",
           "load_references", "reference_starts", "reference_time", "references_markdown"]
