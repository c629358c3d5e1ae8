"""Ground-truth degradation of one charge: the charge on the degradation DFN, then rest, discharge and rest.

Glossary (units as in :mod:`surrogates.common.channels`; the DFN's lithium split is
:func:`surrogates.physics.dfn.lithium_split`):

    cycle               the policy's charge from the start SOC to the target (closed loop, on the DFN with
                        SEI growth and partially reversible plating), 1 h rest, 1C discharge to the cell's
                        v_min, 1 h rest
    irreversible loss   lithium lost for good over the cycle [mA.h]: the change of ``lithium_irreversible``
                        (PyBaMM's "Loss of lithium to negative SEI [mol]" plus the dead lithium). What a fast
                        charge costs in capacity.
    total lost          the change of PyBaMM's "Total capacity lost to side reactions [A.h]" over the cycle:
                        the irreversible loss plus whatever plated lithium has not stripped back by the end
    plating exposure    the hazard, kept apart from the loss: minutes with the plating margin below 0 V in an
                        interval (its sub-sampled minimum), how far below integrated over time [mV.min], and
                        the peak reversibly plated lithium during the charge above the cell's at the start
                        (at rest) [mA.h]

The cycle starts a fresh cell (the parameter set's initial SEI, no plated lithium), so every policy
is charged on the same cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from agents.charge import ChargeResult, Start, charge_row, rollout

REST_S = 3600.0
"""Rest after the charge and after the discharge [s]."""
DISCHARGE_C = 1.0
"""Discharge C-rate of the cycle [1/h]."""
DEGRADATION = {"degradation": True}
"""``pybamm_options`` of the env whose DFN computes the ground truth."""


def _run_to_voltage(sim, current: float, v_cut: float, chunk: int = 30) -> int:
    """Discharge ``sim`` at ``current`` [A] until the voltage at an interval's end reaches ``v_cut`` [V].

    Chunks of ``chunk`` intervals are solved at once and the last one is stepped interval by interval.
    Where ``v_cut`` is also the edge of the simulation window, the interval that would cross it is
    taken back: the cell stops within one interval of ``v_cut``. Returns the intervals run.
    """
    from surrogates.physics.dfn import SimulationWindowError

    steps = 0
    while True:
        snap = sim.snapshot()
        try:
            if sim.run(current, chunk)["voltage"].min() > v_cut:
                steps += chunk
                continue
        except SimulationWindowError:
            pass
        sim.restore(snap)
        while True:
            snap = sim.snapshot()
            try:
                v = sim.step(current)["voltage"]
            except SimulationWindowError:
                sim.restore(snap)
                return steps
            steps += 1
            if v <= v_cut:
                return steps


def finish_cycle(sim, rest_s: float = REST_S) -> dict[str, float]:
    """Complete a cycle after the charge: rest, 1C discharge to the cell's v_min, rest. The channels at the end."""
    n_rest = max(1, int(round(rest_s / sim.dt)))
    sim.run(0.0, n_rest)
    _run_to_voltage(sim, DISCHARGE_C * sim.one_c, sim.chemistry.v_min)
    out = sim.run(0.0, n_rest)
    return {k: float(v[-1]) for k, v in out.items()}


def exposure(trace: dict, dt: float) -> dict[str, float]:
    """Plating exposure of a charge trace (:func:`agents.charge.rollout` on the degradation DFN)."""
    steps = slice(1, None)
    below = np.maximum(-trace["plating_margin_min"][steps], 0.0)  # V below 0
    plated = trace["lithium_plated"]
    return {
        "plating_time_min": float(np.sum(below > 0) * dt / 60.0),
        "plating_exposure_mVmin": float(np.sum(below) * 1e3 * dt / 60.0),
        "plated_peak_mAh": float(1e3 * (np.nanmax(plated) - plated[0])),
    }


@dataclass(frozen=True)
class CycleResult:
    """One ground-truth cycle: the charge's record, what the cycle cost the cell [mA.h] and the charge's plating
    exposure (see the glossary). A charge that did not arrive (or failed) has NaN cycle figures."""

    charge: ChargeResult
    """The charge (with its C-rate profile)."""
    plating_time_min: float
    plating_exposure_mVmin: float
    plated_peak_mAh: float
    irreversible_charge_mAh: float
    """Lithium lost for good during the charge."""
    irreversible_cycle_mAh: float
    total_lost_cycle_mAh: float
    plated_end_mAh: float
    estimated_charge_mAh: float | None = None
    """The degradation estimator's view of ``irreversible_charge_mAh`` from the charge's I, V, T (None: not asked)."""

    @property
    def reached(self) -> bool:
        """The charge arrived at the target and the cycle after it was simulated."""
        return bool(self.charge.reached_target and math.isfinite(self.irreversible_cycle_mAh))

    @property
    def safe(self) -> bool:
        return self.charge.safe

    def to_json(self) -> dict:
        """The row as the result files store it: the charge's columns, then the cycle's (None left out)."""
        out = self.charge.to_json()
        for f in fields(self)[1:]:
            if getattr(self, f.name) is not None:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_json(cls, row: dict) -> CycleResult:
        return cls(ChargeResult.from_json(row), **{f.name: row.get(f.name, f.default) for f in fields(cls)[1:]})


def cycle(policy, env, start: Start, estimator=None) -> tuple[dict, CycleResult]:
    """One ground-truth cycle of ``policy`` from ``start`` on ``env`` (a ``FastChargeEnv`` on the pybamm
    backend with ``pybamm_options=DEGRADATION``). Returns the charge's trace and the :class:`CycleResult`. With
    ``estimator`` (the degradation diagnostic), ``estimated_charge_mAh`` is its estimate from the charge's I, V, T.
    """
    env = env.unwrapped
    trace = rollout(policy, env, start)
    sim = getattr(env.backend, "sim", None)
    if sim is None or not sim.degradation:
        raise ValueError("the ground-truth cycle needs the pybamm backend with pybamm_options={'degradation': True}")
    charge = charge_row(trace, env.config)
    estimated = None
    if estimator is not None:
        n = int(np.isfinite(trace["lithium_irreversible"]).sum())  # a failed interval measured nothing
        est = estimator.charge_loss(trace["current"][1:n], trace["voltage"][1:n], trace["temperature"][1:n],
                                    trace["voltage"][0], trace["temperature"][0])
        estimated = float(1e3 * est[0])
    end = {"lithium_irreversible": math.nan, "capacity_lost": math.nan, "lithium_plated": math.nan}
    if charge.reached_target and not charge.solver_failure:
        end = finish_cycle(sim)
    return trace, CycleResult(charge, **exposure(trace, env.config.dt),
                              irreversible_charge_mAh=float(1e3 * trace["lithium_irreversible"][-1]),
                              irreversible_cycle_mAh=1e3 * end["lithium_irreversible"],
                              total_lost_cycle_mAh=1e3 * end["capacity_lost"], plated_end_mAh=1e3 * end["lithium_plated"],
                              estimated_charge_mAh=estimated)


__all__ = ["REST_S", "DISCHARGE_C", "DEGRADATION", "CycleResult", "finish_cycle", "exposure", "cycle"]
