"""Ground truth (PyBaMM DFN), protocols, datasets and neural surrogates of a Li-ion cell."""

import os

# PyBaMM ships opt-in telemetry; a library must not phone home from users' machines.
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


def __getattr__(name):
    # Lazy, so `import surrogates.physics.dfn` in a data worker does not import torch.
    if name in ("load_surrogate", "Surrogate", "SurrogateState"):
        from surrogates.models import surrogate

        return getattr(surrogate, name)
    raise AttributeError(name)
