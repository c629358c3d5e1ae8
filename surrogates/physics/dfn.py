"""Ground truth: a steppable PyBaMM DFN with a lumped thermal model.

Glossary (units as everywhere, see :mod:`surrogates.common.channels`):

    I     applied current [A], PyBaMM sign (positive = discharge, negative = charge)
    T_amb ambient temperature [K]; the cell starts at it
    V     terminal voltage [V]
    T     volume-averaged cell temperature [K] (lumped thermal model)
    eta   plating margin [V]: negative-electrode phi_s - phi_e at the separator interface
    dt    control interval [s]; I is constant over an interval

The model is discretised once; the current, ambient temperature and initial electrode
concentrations are PyBaMM input parameters, so ``reset`` and ``step`` never rebuild it.
Each solve starts from the last state and keeps no history (``save=False``), so the cost
of a step is flat over an episode. PyBaMM's voltage cut-off events sit at the edges of the
chemistry's *simulation* window (wider than its operating limits), so the solver never
stops inside the window an agent is constrained to; leaving the simulation window raises
:class:`SimulationWindowError`, an IDA failure raises :class:`DFNSolverError`. Both leave
the simulator usable after ``reset``.
"""

from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

from surrogates.common.channels import (  # noqa: E402
    DEFAULT_DT,
    DEGRADATION_CHANNELS,
    OUTPUT_CHANNELS,
    PYBAMM_DEGRADATION_VARIABLES,
    PYBAMM_VARIABLES,
    SECONDS_PER_HOUR,
    check_kelvin,
)
from surrogates.physics.chemistry import DEGRADATION_OPTIONS, DFN_OPTIONS, Chemistry, get_chemistry  # noqa: E402

_CURRENT = "Current function [A]"
_AMBIENT = "Ambient temperature [K]"
_T_INIT = "Initial temperature [K]"
_C_NEG = "Initial concentration in negative electrode [mol.m-3]"
_C_POS = "Initial concentration in positive electrode [mol.m-3]"


SINCE_RESET = ("capacity_lost", "lithium_irreversible")
"""Degradation channels counted from ``reset`` (the others are the cell's state)."""


def lithium_split(model) -> dict:
    """The degradation DFN's lithium loss split into what stays lost and what strips back, as PyBaMM expressions [A.h].

    ``Irreversible lithium lost [A.h]``: "Loss of lithium to negative SEI [mol]" (and "... on cracks") plus
    the dead lithium, "Volume-averaged negative dead lithium concentration [mol.m-3]" times the negative
    electrode's volume. ``Reversibly plated lithium [A.h]``: "Volume-averaged negative lithium plating
    concentration [mol.m-3]" times that volume. PyBaMM's "Loss of lithium to negative lithium plating [mol]"
    is their sum (plated + dead), so the two with the SEI add up to "Total capacity lost to side reactions".
    """
    volume = (pybamm.Parameter("Negative electrode thickness [m]") * pybamm.Parameter("Electrode height [m]")
              * pybamm.Parameter("Electrode width [m]"))
    to_ah = pybamm.constants.F / SECONDS_PER_HOUR
    v = model.variables
    sei = v["Loss of lithium to negative SEI [mol]"] + v["Loss of lithium to negative SEI on cracks [mol]"]
    dead = v["Volume-averaged negative dead lithium concentration [mol.m-3]"] * volume
    plated = v["Volume-averaged negative lithium plating concentration [mol.m-3]"] * volume
    return {PYBAMM_DEGRADATION_VARIABLES["lithium_irreversible"]: (sei + dead) * to_ah,
            PYBAMM_DEGRADATION_VARIABLES["lithium_plated"]: plated * to_ah}


class DFNError(RuntimeError):
    """The DFN could not simulate the requested interval. Call ``reset`` to go on.

    ``partial`` holds the channels of the intervals completed before the failure in the
    same call (arrays, possibly empty), so a caller that solved many intervals at once
    loses nothing that was computed.
    """

    def __init__(self, message: str, partial: dict[str, np.ndarray] | None = None):
        super().__init__(message)
        self.partial = partial if partial is not None else {k: np.empty(0) for k in OUTPUT_CHANNELS + DEGRADATION_CHANNELS}


class DFNSolverError(DFNError):
    """PyBaMM's IDA solver failed (typically convergence at an aggressive current)."""


class SimulationWindowError(DFNError):
    """The cell left the simulation window (voltage or temperature) where the DFN is trusted."""


SUBSTEPS = 5
"""Samples per interval for the interval extremes, ends included (the simulator's default)."""
RTOL, ATOL = 1e-4, 1e-6
"""IDA tolerances (the simulator's defaults)."""


def describe(substeps: int = SUBSTEPS, rtol: float = RTOL) -> str:
    """The model and solver settings a result depends on, in words: ``"DFN + lumped thermal, substeps 5, IDAKLU rtol
    1e-4"``."""
    rtol_text = np.format_float_scientific(rtol, trim="-", exp_digits=1)
    return f"DFN + {DFN_OPTIONS['thermal']} thermal, substeps {int(substeps)}, IDAKLU rtol {rtol_text}"


class DFNSimulator:
    """PyBaMM DFN + lumped thermal, stepped one control interval at a time.

    Args:
        chemistry: a cell name (:func:`surrogates.physics.chemistry.get_chemistry`: ``nmc``, ``lfp``, ``lco`` or your own).
        dt: control interval [s].
        substeps: samples per interval used for the interval extremes (``voltage_max``,
            ``temperature_max``, ``plating_margin_min``), ends included.
        rtol, atol: IDA tolerances (PyBaMM's defaults; tighter ones move voltage by well under a
            millivolt at a higher cost per step: ``benchmarks/bench_dfn.py``).
        degradation: add SEI growth and partially reversible lithium plating
            (:data:`surrogates.physics.chemistry.DEGRADATION_OPTIONS`, the chemistry's degradation
            parameters) and the channels ``capacity_lost`` and ``lithium_irreversible`` [A.h], lost since
            ``reset``, and ``lithium_plated`` [A.h], plated now (:func:`lithium_split`, :data:`SINCE_RESET`).
            Each ``reset`` starts a fresh cell (the set's initial SEI, no plated lithium). It costs more
            per step.

    ``reset(soc, ambient_temperature)`` -> channels at t = 0 (at rest);
    ``step(current)`` -> channels at the end of one interval plus its extremes;
    ``run(current, n_steps)`` -> the same for ``n_steps`` intervals at one constant current,
    solved in one PyBaMM call (much faster than stepping when the current is constant).
    """

    def __init__(
        self,
        chemistry: str = "nmc",
        dt: float = DEFAULT_DT,
        substeps: int = SUBSTEPS,
        rtol: float = RTOL,
        atol: float = ATOL,
        degradation: bool = False,
    ):
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        if int(substeps) < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps!r}")
        self.chemistry: Chemistry = get_chemistry(chemistry)
        self.dt = float(dt)
        self.substeps = int(substeps)
        self.description = describe(self.substeps, rtol)
        """The settings in words (:func:`describe`)."""
        self.parameter_set = self.chemistry.parameter_set
        self.degradation = bool(degradation)
        self.channels: tuple[str, ...] = OUTPUT_CHANNELS + (DEGRADATION_CHANNELS if self.degradation else ())
        self._variables = {**PYBAMM_VARIABLES, **(PYBAMM_DEGRADATION_VARIABLES if self.degradation else {})}
        self._lost_at_reset: dict[str, float] = {}

        operating = self.chemistry.parameter_values("operating")
        self.capacity_ah = float(operating["Nominal cell capacity [A.h]"])
        # SOC 0 and 1 are the electrode stoichiometries at the operating cut-offs; the
        # stoichiometry is linear in SOC between them, so one electrode-SOH solve serves
        # every reset.
        x0, x100, y100, y0 = pybamm.lithium_ion.get_min_max_stoichiometries(operating)
        self._stoich = (float(x0), float(x100), float(y100), float(y0))
        self._c_max = (
            float(operating["Maximum concentration in negative electrode [mol.m-3]"]),
            float(operating["Maximum concentration in positive electrode [mol.m-3]"]),
        )

        params = self.chemistry.parameter_values("simulation", degradation=self.degradation)
        params.update({_CURRENT: "[input]", _AMBIENT: "[input]", _T_INIT: "[input]", _C_NEG: "[input]", _C_POS: "[input]"})
        options = {**DFN_OPTIONS, **(DEGRADATION_OPTIONS if self.degradation else {})}
        model = pybamm.lithium_ion.DFN(options=options)
        if self.degradation:
            model.variables.update(lithium_split(model))
        model.events.append(
            pybamm.Event(
                "Maximum temperature [K]",
                self.chemistry.sim_t_max - model.variables[PYBAMM_VARIABLES["temperature"]],
            )
        )
        self.solver = pybamm.IDAKLUSolver(rtol=rtol, atol=atol)
        sim = pybamm.Simulation(model, parameter_values=params, solver=self.solver)
        sim.build()
        self._model = sim.built_model

        self._solution = None
        self._inputs: dict[str, float] | None = None
        self._soc = float("nan")
        self._time = 0.0
        self._needs_reset = True

    # ------------------------------------------------------------------ state
    @property
    def soc(self) -> float:
        """Coulomb-counted state of charge (fraction of nominal capacity)."""
        return self._soc

    @property
    def time(self) -> float:
        """Simulated time since ``reset`` [s]."""
        return self._time

    @property
    def one_c(self) -> float:
        """The 1C current [A] (nominal capacity in A.h over one hour)."""
        return self.capacity_ah

    def initial_inputs(self, soc: float, ambient_temperature: float) -> dict[str, float]:
        """PyBaMM input parameters for a cell at rest at ``soc`` and ``ambient_temperature`` [K]."""
        x0, x100, y100, y0 = self._stoich
        x = x0 + soc * (x100 - x0)
        y = y0 - soc * (y0 - y100)
        return {
            _CURRENT: 0.0,
            _AMBIENT: float(ambient_temperature),
            _T_INIT: float(ambient_temperature),
            _C_NEG: x * self._c_max[0],
            _C_POS: y * self._c_max[1],
        }

    # ------------------------------------------------------------------ API
    def reset(self, soc: float, ambient_temperature: float = 298.15) -> dict[str, float]:
        """Start a new cell at rest at ``soc`` (0..1) and ``ambient_temperature`` [K].

        Returns the channels at t = 0 (open-circuit, current 0) as floats.
        """
        if not (math.isfinite(soc) and 0.0 <= soc <= 1.0):
            raise ValueError(f"soc must be in [0, 1], got {soc!r}")
        check_kelvin(ambient_temperature)
        self._inputs = self.initial_inputs(soc, ambient_temperature)
        self._solution = None
        self._soc = float(soc)
        self._time = 0.0
        # The channels at t = 0: one tiny solve at rest, whose first point is the
        # consistent initial state. The next step starts again from the initial
        # conditions, so this probe does not shift the time origin.
        try:
            probe = self.solver.step(None, self._model, 1e-3, inputs=self._inputs, save=False)
        except pybamm.SolverError as err:
            self._needs_reset = True
            raise DFNSolverError(
                f"PyBaMM could not find a consistent initial state at soc={soc}, "
                f"T_amb={ambient_temperature} K ({self.parameter_set}): {err}"
            ) from err
        self._needs_reset = False
        values = {ch: float(probe[var].entries[0]) for ch, var in self._variables.items()}
        if self.degradation:
            self._lost_at_reset = {ch: values[ch] for ch in SINCE_RESET}
            values.update({ch: 0.0 for ch in SINCE_RESET})
        return {
            **values,
            "soc": self._soc,
            "voltage_max": values["voltage"],
            "temperature_max": values["temperature"],
            "plating_margin_min": values["plating_margin"],
        }

    def step(self, current: float) -> dict[str, float]:
        """Apply ``current`` [A] (PyBaMM sign) for one interval; the channels as floats."""
        out = self.run(current, 1)
        return {k: float(v[0]) for k, v in out.items()}

    def run(self, current: float, n_steps: int) -> dict[str, np.ndarray]:
        """Apply a constant ``current`` [A] for ``n_steps`` intervals in one PyBaMM solve.

        Returns a dict channel -> float64 array ``[n_steps]`` aligned as in
        :mod:`surrogates.common.channels`. On a failure, the exception's ``partial`` holds the
        intervals completed before it, and the simulator needs ``reset``.
        """
        current = _check_current(current)
        n_steps = int(n_steps)
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if self._needs_reset:
            raise RuntimeError("DFNSimulator needs reset(soc, ambient_temperature) before step/run")

        inputs = dict(self._inputs)
        inputs[_CURRENT] = current
        duration = n_steps * self.dt
        t_interp = np.linspace(0.0, duration, n_steps * self.substeps + 1)
        try:
            solution = self.solver.step(
                self._solution, self._model, duration, inputs=inputs, save=False, t_interp=t_interp
            )
        except pybamm.SolverError as err:
            self._needs_reset = True
            raise DFNSolverError(
                f"PyBaMM's IDA solver failed at I={current:.4g} A ({current / self.one_c:+.3g}C) "
                f"after t={self._time:.0f} s, soc={self._soc:.3f} ({self.parameter_set}); "
                f"the cell state is lost, call reset(). Solver said: {err}"
            ) from err

        t_rel = solution.t - solution.t[0]
        completed = n_steps
        if not str(solution.termination).startswith("final time"):
            completed = int(math.floor((t_rel[-1] + 1e-9) / self.dt))
        out = self._channels(solution, t_rel, completed, current)
        self._soc = float(out["soc"][-1]) if completed else self._soc
        self._time += completed * self.dt
        if completed < n_steps:
            self._needs_reset = True
            raise SimulationWindowError(
                f"the cell left the simulation window ({solution.termination}) at "
                f"t={self._time + (t_rel[-1] - completed * self.dt):.0f} s, I={current:.4g} A "
                f"({current / self.one_c:+.3g}C), soc={self._soc:.3f}; window for "
                f"{self.chemistry.name}: {self.chemistry.sim_v_min}-{self.chemistry.sim_v_max} V, "
                f"T <= {self.chemistry.sim_t_max} K. Call reset() to go on.",
                partial=out,
            )
        self._solution = solution
        return out

    def snapshot(self) -> tuple:
        """The simulator's state (cell state, SOC, time), to :meth:`restore` later.

        Lets a controller try an interval and take it back (the oracle of :mod:`agents.control.oracle`
        bisects the largest safe current this way). Solves never modify a state, so a snapshot
        stays valid however often it is restored.
        """
        if self._needs_reset:
            raise RuntimeError("DFNSimulator needs reset(soc, ambient_temperature) before snapshot")
        return (self._solution, dict(self._inputs), self._soc, self._time)

    def restore(self, snapshot: tuple) -> None:
        """Return to a :meth:`snapshot` (also after a failed step, which otherwise needs ``reset``)."""
        solution, inputs, self._soc, self._time = snapshot
        self._solution, self._inputs = solution, dict(inputs)
        self._needs_reset = False

    # ------------------------------------------------------------------ helpers
    def _channels(self, solution, t_rel: np.ndarray, completed: int, current: float) -> dict[str, np.ndarray]:
        """Per-interval end values and extremes for the first ``completed`` intervals."""
        n_sub = self.substeps
        grid = np.arange(completed * n_sub + 1) * (self.dt / n_sub)
        # The solution is sampled on `t_interp` (plus, after an event, the event time);
        # pick the samples on the interval grid.
        idx = np.searchsorted(t_rel, grid - 1e-6)
        idx = np.minimum(idx, len(t_rel) - 1)
        out: dict[str, np.ndarray] = {}
        for ch, var in self._variables.items():
            values = np.asarray(solution[var].entries, dtype=np.float64)[idx]
            if completed == 0:
                out[ch] = np.empty(0)
                continue
            if ch in SINCE_RESET:
                out[ch] = values[n_sub::n_sub] - self._lost_at_reset[ch]
                continue
            if ch in DEGRADATION_CHANNELS:
                out[ch] = values[n_sub::n_sub]
                continue
            windows = np.lib.stride_tricks.sliding_window_view(values, n_sub + 1)[::n_sub]  # (n, n_sub+1)
            out[ch] = values[n_sub::n_sub]
            if ch == "plating_margin":
                out["plating_margin_min"] = windows.min(axis=1)
            else:
                out[f"{ch}_max"] = windows.max(axis=1)
        if completed == 0:
            out.update({"voltage_max": np.empty(0), "temperature_max": np.empty(0), "plating_margin_min": np.empty(0)})
        charge_ah = current * self.dt * np.arange(1, completed + 1) / SECONDS_PER_HOUR
        out["soc"] = self._soc - charge_ah / self.capacity_ah
        return {k: out[k] for k in self.channels}


def _check_current(current) -> float:
    try:
        value = float(current)
    except (TypeError, ValueError):
        raise ValueError(f"current must be a number of amperes, got {current!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"current must be finite, got {value!r}; refusing to pass it to PyBaMM")
    return value
