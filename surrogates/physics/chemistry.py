"""Cells by name: PyBaMM parameter set or BPX file, voltage limits and the simulation window.

A cell is a small YAML file (:data:`CELL_FIELDS`), never code. Shipped cells live in
``surrogates/physics/cells/<name>.yml`` with their artefacts in the package's checkpoint, validation
and reference folders; a user's own cells (``experiments/build_cell.py``) live in
:func:`user_cells_dir` as ``<name>/cell.yml`` with every artefact in that folder
(:func:`artefact_dir`). Both are found by name, by :func:`get_chemistry`.

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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import pybamm


DFN_OPTIONS: dict[str, str] = {"thermal": "lumped"}
"""PyBaMM model options of the DFN every cell runs (:class:`surrogates.physics.dfn.DFNSimulator`); a new
cell must complete this model (:mod:`surrogates.physics.cell_check`)."""

DEGRADATION_OPTIONS: dict[str, str] = {
    "SEI": "solvent-diffusion limited",
    "lithium plating": "partially reversible",
}
"""PyBaMM model options of the degradation DFN (O'Kane et al. 2022's SEI and plating submodels)."""

_DEGRADATION_OVERRIDES: tuple[str, ...] = ("Ratio of lithium moles to SEI moles", "SEI growth activation energy [J.mol-1]")
"""Parameters the base set has but the degradation set refits together with its SEI model."""


@dataclass(frozen=True)
class Chemistry:
    """A cell: which PyBaMM parameter set (or BPX file), and the limits that go with it."""

    name: str
    """Our short name (``nmc``, ``lfp``)."""
    parameter_set: str
    """PyBaMM parameter set, recorded by its name in every artefact (``bpx:<file name>`` for a BPX cell)."""
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
    bpx: str | None = None
    """BPX file the parameters come from (instead of a named PyBaMM set); relative paths are
    relative to the cell's YAML file."""
    folder: str | None = None
    """A user cell's folder (its YAML and every artefact); None for a shipped cell. Not part of the YAML."""

    def base_parameter_values(self) -> pybamm.ParameterValues:
        """The parameter set or BPX file as PyBaMM reads it, before anything is added."""
        pybamm = _pybamm()
        if self.bpx is not None:
            return pybamm.ParameterValues.create_from_bpx(self.bpx)
        return pybamm.ParameterValues(self.parameter_set)

    def to_yaml(self) -> str:
        """The cell as the YAML :func:`load_cell` reads (``folder`` left out; ``bpx`` by file name)."""
        data = {k: v for k, v in asdict(self).items() if k != "folder"}
        data["extra_parameters"] = {k: float(v) for k, v in self.extra_parameters.items()}
        if self.bpx is not None:
            data["bpx"] = Path(self.bpx).name
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def parameter_values(self, window: str = "operating", degradation: bool = False) -> pybamm.ParameterValues:
        """A fresh, completed copy of the PyBaMM parameters.

        ``window="operating"`` keeps the operating cut-offs, which define 0 % and 100 % SOC
        (PyBaMM's electrode-SOH calculation reads them); ``window="simulation"`` moves the
        cut-offs (and so PyBaMM's termination events) out to the simulation window.
        ``degradation=True`` adds the degradation parameters (see :meth:`degradation_parameters`).
        """
        if window not in ("operating", "simulation"):
            raise ValueError(f"window must be 'operating' or 'simulation', not {window!r}")
        values = self.base_parameter_values()
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
        base = self.base_parameter_values()
        source = pybamm.ParameterValues(self.degradation_parameter_set)
        keys = [k for k in source.keys() if k != "citations" and (k not in base.keys() or k in _DEGRADATION_OVERRIDES)]
        return {k: source[k] for k in sorted(keys)}


def _pybamm():
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # no network calls from a library
    import pybamm

    return pybamm


SHIPPED_CELLS_DIR = Path(__file__).resolve().parent / "cells"
"""The shipped cells' YAML files, ``<name>.yml``."""
USER_CELLS_ENV = "CELLGYM_CELLS"
"""Environment variable naming the folder of a user's own cells (default ``~/.cellgym/cells``)."""
CELL_FILE = "cell.yml"
CELL_FIELDS = tuple(f.name for f in fields(Chemistry) if f.name != "folder")
"""Keys of a cell's YAML file."""
REQUIRED_FIELDS = ("name", "parameter_set", "cell", "capacity_ah", "v_max", "v_min", "sim_v_max", "sim_v_min")
"""Keys a cell's YAML file must give (the rest have defaults)."""


def user_cells_dir() -> Path:
    """The folder of a user's own cells: ``$CELLGYM_CELLS``, else ``~/.cellgym/cells``."""
    return Path(os.environ.get(USER_CELLS_ENV) or Path.home() / ".cellgym" / "cells").expanduser()


def cell_from_mapping(data: dict, source: str | Path, folder: str | None = None) -> Chemistry:
    """A :class:`Chemistry` from a YAML mapping; ``source`` (the file) names it in errors and anchors ``bpx``."""
    unknown = sorted(set(data) - set(CELL_FIELDS))
    if unknown:
        raise ValueError(f"{source}: unknown cell keys {unknown}; valid keys: {', '.join(CELL_FIELDS)}")
    missing = [k for k in REQUIRED_FIELDS if data.get(k) is None]
    if missing:
        raise ValueError(f"{source}: missing cell keys {missing}")
    data = dict(data)
    data["extra_parameters"] = {str(k): float(v) for k, v in (data.get("extra_parameters") or {}).items()}
    if data.get("bpx"):
        data["bpx"] = str((Path(source).parent / data["bpx"]).resolve())
    for key in ("capacity_ah", "v_max", "v_min", "sim_v_max", "sim_v_min", "sim_t_max"):
        if key in data:
            data[key] = float(data[key])
    return Chemistry(**data, folder=folder)


def load_cell(path: str | Path, folder: str | None = None) -> Chemistry:
    """Read a cell's YAML file."""
    path = Path(path)
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    return cell_from_mapping(data, path, folder)


def shipped_cells() -> dict[str, Chemistry]:
    """The cells shipped with the package, by name."""
    cells = {p.stem: load_cell(p) for p in sorted(SHIPPED_CELLS_DIR.glob("*.yml"))}
    for stem, cell in cells.items():
        if cell.name != stem:
            raise ValueError(f"{SHIPPED_CELLS_DIR / (stem + '.yml')} names its cell {cell.name!r}, not {stem!r}")
    return cells


def user_cells() -> dict[str, Chemistry]:
    """The user's own cells in :func:`user_cells_dir`, by name."""
    root = user_cells_dir()
    if not root.is_dir():
        return {}
    return {p.parent.name: load_cell(p, folder=str(p.parent)) for p in sorted(root.glob(f"*/{CELL_FILE}"))}


CHEMISTRIES: dict[str, Chemistry] = shipped_cells()
"""The shipped cells (read once at import; :func:`get_chemistry` also finds the user's own)."""


def find_user_cell(name: str) -> Chemistry | None:
    """The user's cell ``name`` (``<user_cells_dir>/<name>/cell.yml``), or None if there is none."""
    path = user_cells_dir() / name / CELL_FILE
    return load_cell(path, folder=str(path.parent)) if path.is_file() else None


def get_chemistry(name: str) -> Chemistry:
    """Look a cell up by name: shipped cells first, then the user's; an unknown name lists the valid ones."""
    if name in CHEMISTRIES:
        return CHEMISTRIES[name]
    cell = find_user_cell(name)
    if cell is not None:
        return cell
    valid = ", ".join(sorted(CHEMISTRIES) + sorted(user_cells()))
    raise ValueError(f"unknown chemistry {name!r}; valid chemistries are: {valid} (your own cells live in "
                     f"{user_cells_dir()}, set by ${USER_CELLS_ENV}; build one with experiments/build_cell.py)")


def artefact_dir(chemistry: str, role: str, shipped: Path) -> Path:
    """Where the artefacts of ``role`` (``surrogates``, ``diagnostics``, ``validation``, ``baselines``,
    ``references``) for ``chemistry`` live: ``shipped`` for a shipped cell (or a name no cell has, so
    that the caller's own not-found error speaks), ``<cell folder>/<role>`` for a user's cell."""
    cell = None if chemistry in CHEMISTRIES else find_user_cell(chemistry)
    return Path(cell.folder) / role if cell is not None else shipped
