"""An independent PyBaMM solve of a piecewise-constant current, for checking our wrappers.

It goes through ``pybamm.Experiment`` and ``initial_soc`` (PyBaMM's own paths), not through
``DFNSimulator``'s input parameters and stepping. Its cut-offs are the operating ones, so
protocols checked with it must stay inside them.
"""

import numpy as np
import pybamm

from surrogates.chemistry import get_chemistry


def experiment_voltage(chemistry: str, currents, dt: float, soc0: float, ambient: float) -> np.ndarray:
    """Voltage [V] at the end of each interval of ``currents`` [A] (PyBaMM sign)."""
    params = get_chemistry(chemistry).parameter_values("operating")
    params.update({"Ambient temperature [K]": ambient, "Initial temperature [K]": ambient})
    steps = []
    for current in currents:
        if current < 0:
            steps.append(f"Charge at {-current} A for {dt} seconds")
        elif current > 0:
            steps.append(f"Discharge at {current} A for {dt} seconds")
        else:
            steps.append(f"Rest for {dt} seconds")
    experiment = pybamm.Experiment(steps, period=f"{dt} seconds")
    model = pybamm.lithium_ion.DFN(options={"thermal": "lumped"})
    sim = pybamm.Simulation(model, parameter_values=params, experiment=experiment, solver=pybamm.IDAKLUSolver())
    solution = sim.solve(initial_soc=soc0)
    times = dt * np.arange(1, len(currents) + 1)
    return np.asarray(solution["Voltage [V]"](times))
