"""The cell at rest, tabulated once from the DFN: open-circuit voltage and plating margin vs SOC.

These tables are the physics the surrogates need not learn (:mod:`surrogates.models.features`
subtracts them). They are computed here, where PyBaMM is, written into every dataset manifest
and every checkpoint, and read from there by everything else, so that reading data, training
and stepping a surrogate import no PyBaMM.
"""

from __future__ import annotations

import numpy as np

REST_TEMPERATURE = 298.15
"""Temperature [K] of the tables (25 C)."""


def rest_tables(chemistry: str, points: int = 101) -> dict:
    """The DFN at rest at ``points`` SOCs (about a second).

    Returns ``{"soc_grid": [points], "ocv": [points] [V], "u_neg": [points] [V] (plating margin
    at rest), "capacity_ah": [A.h], "temperature": [K]}`` as plain lists and floats (JSON-ready).
    """
    from surrogates.physics.dfn import DFNSimulator

    sim = DFNSimulator(chemistry, substeps=1)
    # Not exactly 0: lfp's rest voltage at 0 % SOC sits on its simulation window's edge
    # (2.0 V), where PyBaMM's cut-off event fires at t = 0. np.interp holds the end values.
    grid = np.linspace(1e-3, 1.0, points)
    rest = [sim.reset(float(s), REST_TEMPERATURE) for s in grid]
    return {
        "soc_grid": grid.tolist(),
        "ocv": [r["voltage"] for r in rest],
        "u_neg": [r["plating_margin"] for r in rest],
        "capacity_ah": float(sim.capacity_ah),
        "temperature": REST_TEMPERATURE,
    }
