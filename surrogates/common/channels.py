"""Channel names, units and the control interval: the one place they are defined.

Every module (DFN wrapper, datasets, surrogates, envs) imports these names rather than
spelling them out, so a dataset written by one part is read by another without a mapping.

Sign convention (PyBaMM's): current in amperes, positive = discharge, negative = charge.

Alignment, for a sequence of T control intervals of length ``dt`` seconds:
``current[k]`` is applied, constant, during interval k; ``voltage[k]``, ``temperature[k]``,
``plating_margin[k]`` and ``soc[k]`` are the values at the *end* of interval k, and
``voltage_max[k]``, ``temperature_max[k]``, ``plating_margin_min[k]`` are the extremes
*within* interval k (sampled every ``dt / substeps`` seconds, ends included).
"""

from __future__ import annotations

DEFAULT_DT = 10.0
"""Default control interval [s]. Datasets, surrogates and envs record theirs and refuse another."""

# Inputs of the cell: what a charger and the environment impose.
INPUT_CHANNELS: tuple[str, ...] = ("current", "ambient_temperature")

# Outputs at the end of each interval.
STATE_CHANNELS: tuple[str, ...] = ("voltage", "temperature", "plating_margin", "soc")

# Extremes within each interval, for constraint checks.
EXTREME_CHANNELS: tuple[str, ...] = ("voltage_max", "temperature_max", "plating_margin_min")

OUTPUT_CHANNELS: tuple[str, ...] = STATE_CHANNELS + EXTREME_CHANNELS

# Only from a DFN run with degradation submodels (``DFNSimulator(degradation=True)``).
DEGRADATION_CHANNELS: tuple[str, ...] = ("capacity_lost", "lithium_irreversible", "lithium_plated")

# Channels a surrogate learns (SOC is coulomb-counted from current and capacity, never learned).
LEARNED_CHANNELS: tuple[str, ...] = ("voltage", "temperature", "plating_margin")

UNITS: dict[str, str] = {
    "current": "A",
    "ambient_temperature": "K",
    "voltage": "V",
    "temperature": "K",
    "plating_margin": "V",
    "soc": "1",
    "voltage_max": "V",
    "temperature_max": "K",
    "plating_margin_min": "V",
    "capacity_lost": "A.h",
    "lithium_irreversible": "A.h",
    "lithium_plated": "A.h",
}

DESCRIPTIONS: dict[str, str] = {
    "current": "applied current, PyBaMM sign (positive = discharge, negative = charge)",
    "ambient_temperature": "ambient temperature; the cell starts at it",
    "voltage": "terminal voltage at the end of the interval",
    "temperature": "lumped (volume-averaged) cell temperature at the end of the interval",
    "plating_margin": "negative-electrode phi_s - phi_e at the negative/separator interface; "
    "lithium plating is thermodynamically possible where it is < 0",
    "soc": "state of charge, coulomb-counted from current and nominal capacity",
    "voltage_max": "highest terminal voltage within the interval",
    "temperature_max": "highest cell temperature within the interval",
    "plating_margin_min": "lowest plating margin within the interval",
    "capacity_lost": "lithium inventory lost to side reactions (SEI, plated and dead lithium) since the "
    "start of the sequence, as capacity, at the end of the interval",
    "lithium_irreversible": "lithium inventory lost for good since the start of the sequence [A.h]: SEI plus dead "
    "lithium (plated lithium that lost contact), at the end of the interval",
    "lithium_plated": "reversibly plated lithium on the negative electrode [A.h] at the end of the interval (it strips "
    "back in a rest or discharge, or slowly turns into dead lithium)",
}

# PyBaMM's names for the channels it computes (kept unit-bracketed, as PyBaMM spells them).
PYBAMM_VARIABLES: dict[str, str] = {
    "voltage": "Voltage [V]",
    "temperature": "Volume-averaged cell temperature [K]",
    "plating_margin": "Negative electrode surface potential difference at separator interface [V]",
}

PYBAMM_DEGRADATION_VARIABLES: dict[str, str] = {
    "capacity_lost": "Total capacity lost to side reactions [A.h]",
    # Not PyBaMM's own variables: DFNSimulator defines them from PyBaMM's (see IRREVERSIBLE_LITHIUM).
    "lithium_irreversible": "Irreversible lithium lost [A.h]",
    "lithium_plated": "Reversibly plated lithium [A.h]",
}

SECONDS_PER_HOUR = 3600.0


def celsius_to_kelvin(t_c: float) -> float:
    """Temperature in degrees Celsius -> kelvin."""
    return t_c + 273.15


KELVIN_RANGE = (200.0, 400.0)
"""Temperatures [K] a cell can have; a value outside is almost surely degrees Celsius."""


def check_kelvin(value, name: str = "ambient_temperature") -> None:
    """Refuse a temperature (scalar or array) that is not finite and inside :data:`KELVIN_RANGE`."""
    import numpy as np

    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v) & (v > KELVIN_RANGE[0]) & (v < KELVIN_RANGE[1])):
        raise ValueError(f"{name} is in kelvin and must be in {KELVIN_RANGE}, got {value!r}; "
                         "did you pass degrees Celsius? add 273.15")
