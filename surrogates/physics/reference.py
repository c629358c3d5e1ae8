"""Plain PyBaMM, without our wrapper: the independent path that checks and benchmarks it.

A piecewise-constant current is solved as a ``pybamm.Experiment`` on a freshly built DFN
with a lumped thermal model, its initial state set by PyBaMM's own ``set_initial_state``.
Tests compare :class:`surrogates.physics.dfn.DFNSimulator` and generated datasets against it;
benchmarks time it as the naive baseline.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

from surrogates.physics.chemistry import get_chemistry  # noqa: E402


def reference_parameters(chemistry: str, soc0: float, ambient_temperature: float,
                         window: str = "operating") -> pybamm.ParameterValues:
    """Completed parameters at ``soc0`` and ``ambient_temperature`` [K].

    The initial state always comes from the operating cut-offs (which define SOC, as in
    ``DFNSimulator``); ``window="simulation"`` then widens the cut-offs so the solve is not
    stopped at the operating limits.
    """
    params = get_chemistry(chemistry).parameter_values("operating")
    params.set_initial_state(soc0)
    if window != "operating":
        wide = get_chemistry(chemistry).parameter_values(window)
        params.update({k: wide[k] for k in ("Upper voltage cut-off [V]", "Lower voltage cut-off [V]")})
    params.update({"Ambient temperature [K]": ambient_temperature, "Initial temperature [K]": ambient_temperature})
    return params


def experiment_steps(currents, dt: float) -> list[str]:
    """PyBaMM experiment steps for per-interval ``currents`` [A] (PyBaMM sign), runs merged."""
    currents = np.asarray(currents, dtype=float)
    edges = np.flatnonzero(np.diff(currents)) + 1
    steps = []
    for segment in np.split(np.arange(len(currents)), edges):
        current, seconds = float(currents[segment[0]]), len(segment) * dt
        if current < 0:
            steps.append(f"Charge at {-current!r} A for {seconds!r} seconds")
        elif current > 0:
            steps.append(f"Discharge at {current!r} A for {seconds!r} seconds")
        else:
            steps.append(f"Rest for {seconds!r} seconds")
    return steps


def solve_piecewise(chemistry: str, currents, dt: float, soc0: float, ambient_temperature: float,
                    window: str = "operating") -> pybamm.Solution:
    """Solve ``currents`` [A], one per interval of ``dt`` [s], from rest at ``soc0``."""
    params = reference_parameters(chemistry, soc0, ambient_temperature, window)
    experiment = pybamm.Experiment(experiment_steps(currents, dt), period=f"{dt!r} seconds")
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(options={"thermal": "lumped"}), parameter_values=params,
                            experiment=experiment, solver=pybamm.IDAKLUSolver())
    return sim.solve()


def experiment_voltage(chemistry: str, currents, dt: float, soc0: float, ambient_temperature: float) -> np.ndarray:
    """Voltage [V] at the end of each interval (operating cut-offs: stay inside them)."""
    solution = solve_piecewise(chemistry, currents, dt, soc0, ambient_temperature)
    return np.asarray(solution["Voltage [V]"](dt * np.arange(1, len(currents) + 1)))
