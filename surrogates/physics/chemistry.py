"""Chemistries by name: PyBaMM parameter set, voltage limits and the simulation window.

Add a chemistry by adding a :class:`Chemistry` to :data:`CHEMISTRIES`, never by forking code.

A chemistry is plain data: importing this module does not import PyBaMM (the env and the
surrogates need the limits and the capacity, not the solver). :meth:`Chemistry.parameter_values`
imports PyBaMM when the DFN is built.

Two windows matter and they differ on purpose:

* the *operating* limits (``v_max``, ``v_min``) are what the environment constrains and
  penalises (4.2 V for nmc, 3.6 V for lfp);
* the *simulation* window (``sim_v_max``, ``sim_v_min``, ``sim_t_max``) is where the DFN is
  still trusted to run. It is wider than the operating limits so that PyBaMM's own cut-off
  events never stop a simulation inside the window we constrain ourselves: an agent (or a
  data protocol) must be able to overshoot 4.2 V and be penalised for it, not crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pybamm


# A123 ANR26650M1 (Prada2013's cell) has no thermal or current-collector parameters in
# PyBaMM. These are documented engineering values, not a fit:
# - geometry: 26650 can, 26 mm diameter x 65 mm height -> volume pi*0.013^2*0.065 m3 and
#   cooling area = side + both ends (A123 datasheet dimensions);
# - current collectors: copper 10 um / aluminium 20 um foils (typical for power cells),
#   bulk Cu/Al densities, heat capacities and conductivities (same values as Chen2020);
# - electrode/separator densities and heat capacities: graphite and LiFePO4 composite
#   electrodes, ~700-1100 J/(kg K) (Forgez et al., J. Power Sources 195 (2010) 2961 report
#   an effective cell heat capacity of about 1100 J/(kg K) for this cell);
# - heat transfer coefficient 10 W/(m2 K): natural convection in still air, as Chen2020.
_LFP_THERMAL: dict[str, float] = {
    "Cell volume [m3]": 3.14159265 * 0.013**2 * 0.065,
    "Cell cooling surface area [m2]": 2 * 3.14159265 * 0.013 * 0.065 + 2 * 3.14159265 * 0.013**2,
    "Total heat transfer coefficient [W.m-2.K-1]": 10.0,
    "Negative current collector thickness [m]": 10e-6,
    "Positive current collector thickness [m]": 20e-6,
    "Negative current collector conductivity [S.m-1]": 5.96e7,
    "Positive current collector conductivity [S.m-1]": 3.69e7,
    "Negative current collector density [kg.m-3]": 8960.0,
    "Positive current collector density [kg.m-3]": 2700.0,
    "Negative current collector specific heat capacity [J.kg-1.K-1]": 385.0,
    "Positive current collector specific heat capacity [J.kg-1.K-1]": 897.0,
    "Negative electrode density [kg.m-3]": 1657.0,
    "Positive electrode density [kg.m-3]": 2260.0,
    "Separator density [kg.m-3]": 397.0,
    "Negative electrode specific heat capacity [J.kg-1.K-1]": 1100.0,
    "Positive electrode specific heat capacity [J.kg-1.K-1]": 1100.0,
    "Separator specific heat capacity [J.kg-1.K-1]": 1100.0,
}


DEGRADATION_OPTIONS: dict[str, str] = {
    "SEI": "solvent-diffusion limited",
    "lithium plating": "partially reversible",
}
"""PyBaMM model options of the degradation DFN (O'Kane et al. 2022's SEI and plating submodels)."""

_DEGRADATION_OVERRIDES: tuple[str, ...] = ("Ratio of lithium moles to SEI moles", "SEI growth activation energy [J.mol-1]")
"""Parameters the base set has but the degradation set refits together with its SEI model."""


@dataclass(frozen=True)
class Chemistry:
    """A cell chemistry: which PyBaMM parameter set, and the limits that go with it."""

    name: str
    """Our short name (``nmc``, ``lfp``)."""
    parameter_set: str
    """PyBaMM parameter set, recorded by its name in every artefact."""
    cell: str
    """The physical cell the parameter set describes."""
    capacity_ah: float
    """Nominal capacity [A.h] (1C in amperes): the parameter set's "Nominal cell capacity [A.h]",
    kept here so that nothing but the DFN needs PyBaMM (a test checks they agree)."""
    v_max: float
    """Operating upper voltage limit [V] (the constraint agents must respect)."""
    v_min: float
    """Operating lower voltage limit [V]."""
    sim_v_max: float
    """Upper edge of the simulation window [V]; PyBaMM's cut-off event is set here."""
    sim_v_min: float
    """Lower edge of the simulation window [V]."""
    sim_t_max: float = 353.15
    """Highest cell temperature [K] the DFN is run to (80 C)."""
    extra_parameters: dict[str, float] = field(default_factory=dict)
    """Parameters the set lacks, with where they come from documented beside them."""
    degradation_parameter_set: str | None = None
    """PyBaMM set whose SEI and lithium-plating parameters :meth:`parameter_values` adds when
    ``degradation=True``; None: no degradation model for this chemistry."""

    def parameter_values(self, window: str = "operating", degradation: bool = False) -> pybamm.ParameterValues:
        """A fresh, completed copy of the PyBaMM parameters.

        ``window="operating"`` keeps the operating cut-offs, which define 0 % and 100 % SOC
        (PyBaMM's electrode-SOH calculation reads them); ``window="simulation"`` moves the
        cut-offs (and so PyBaMM's termination events) out to the simulation window.
        ``degradation=True`` adds the degradation parameters (see :meth:`degradation_parameters`).
        """
        if window not in ("operating", "simulation"):
            raise ValueError(f"window must be 'operating' or 'simulation', not {window!r}")
        pybamm = _pybamm()
        values = pybamm.ParameterValues(self.parameter_set)
        values.update(self.extra_parameters, check_already_exists=False)
        if degradation:
            values.update(self.degradation_parameters(), check_already_exists=False)
        if window == "operating":
            values.update({"Upper voltage cut-off [V]": self.v_max, "Lower voltage cut-off [V]": self.v_min})
        else:
            values.update({"Upper voltage cut-off [V]": self.sim_v_max, "Lower voltage cut-off [V]": self.sim_v_min})
        return values

    def degradation_parameters(self) -> dict:
        """SEI-growth and lithium-plating parameters from :attr:`degradation_parameter_set`.

        Only what the base set lacks, plus the two SEI constants the degradation set refits
        (:data:`_DEGRADATION_OVERRIDES`): OKane2022 also changes Chen2020's OCPs, diffusivities
        and kinetics, and taking those would make the degrading cell a different cell from the
        one the surrogates learned, so its I-V-T traces would not be the env's.
        """
        if self.degradation_parameter_set is None:
            have = ", ".join(sorted(n for n, c in CHEMISTRIES.items() if c.degradation_parameter_set))
            raise ValueError(f"chemistry {self.name!r} has no degradation parameters; chemistries with them: {have}")
        pybamm = _pybamm()
        base = pybamm.ParameterValues(self.parameter_set)
        source = pybamm.ParameterValues(self.degradation_parameter_set)
        keys = [k for k in source.keys() if k != "citations" and (k not in base.keys() or k in _DEGRADATION_OVERRIDES)]
        return {k: source[k] for k in sorted(keys)}


def _pybamm():
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # no network calls from a library
    import pybamm

    return pybamm


CHEMISTRIES: dict[str, Chemistry] = {
    "nmc": Chemistry(
        name="nmc",
        parameter_set="Chen2020",
        cell="LG M50 21700, NMC811 / graphite-SiOx, 5 Ah",
        capacity_ah=5.0,
        v_max=4.2,
        v_min=2.5,
        sim_v_max=4.4,
        sim_v_min=2.5,
        # O'Kane et al. (2022) parameterised SEI growth and lithium plating for this same cell.
        degradation_parameter_set="OKane2022",
    ),
    "lfp": Chemistry(
        name="lfp",
        parameter_set="Prada2013",
        cell="A123 ANR26650M1, LFP / graphite, 2.3 Ah",
        capacity_ah=2.3,
        v_max=3.6,
        v_min=2.0,
        sim_v_max=3.8,
        sim_v_min=2.0,
        extra_parameters=_LFP_THERMAL,
    ),
}


def get_chemistry(name: str) -> Chemistry:
    """Look a chemistry up by name; an unknown name lists the valid ones."""
    try:
        return CHEMISTRIES[name]
    except KeyError:
        valid = ", ".join(sorted(CHEMISTRIES))
        raise ValueError(f"unknown chemistry {name!r}; valid chemistries are: {valid}") from None
