"""Ground truth (PyBaMM DFN), protocols, datasets and neural surrogates of a Li-ion cell."""

import os

# PyBaMM ships opt-in telemetry; a library must not phone home from users' machines.
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
