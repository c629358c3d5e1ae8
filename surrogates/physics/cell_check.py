"""A new cell from a PyBaMM parameter set or a BPX file, checked before any work is spent on it.

:func:`new_cell` turns what a user names (``--parameter-set Ecker2015`` or ``--bpx cell.json``, plus
a small YAML of what the set lacks) into a complete :class:`~surrogates.physics.chemistry.Chemistry`,
or raises :class:`CellError` saying what is wrong and what to do: an unknown parameter set (with the
valid ones), a BPX file that fails validation (with bpx's or PyBaMM's message, which names the
field), parameters the DFN with a lumped thermal model needs and the set lacks (with a YAML
template to fill in), or limits that contradict each other.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from surrogates.physics.chemistry import CELL_FIELDS, DFN_OPTIONS, Chemistry, _pybamm, cell_from_mapping
SIM_V_MARGIN = 0.2
"""Default simulation window above the operating upper voltage [V] (as nmc and lfp)."""
SET_BY_THE_SIMULATOR = ("Ambient temperature [K]", "Initial temperature [K]")
"""Set per episode, so a parameter set need not carry them."""
BPX_DEFAULTED = ("Total heat transfer coefficient [W.m-2.K-1]",)
"""PyBaMM fills these with a silent default (0: an adiabatic cell) when a BPX file lacks them; a BPX
cell must give them in its values YAML."""
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class CellError(ValueError):
    """A cell that cannot be built as given; the message says what to change."""


def parameter_sets() -> list[str]:
    """PyBaMM's lithium-ion parameter sets, by name."""
    pybamm = _pybamm()
    names = []
    for name in sorted(pybamm.parameter_sets.keys()):
        try:
            if pybamm.parameter_sets[name].get("chemistry", "lithium_ion") == "lithium_ion":
                names.append(name)
        except Exception:  # a broken third-party entry point must not hide the others
            continue
    return names


def read_values(path: str | Path | None) -> dict:
    """The values YAML: cell keys (``v_max``, ``cell``, ``extra_parameters``: {PyBaMM name: value}, ...)."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise CellError(f"no values file at {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise CellError(f"{path} must be a YAML mapping of cell keys ({', '.join(CELL_FIELDS)})")
    bad = sorted(set(data) - set(CELL_FIELDS) - {"name", "parameter_set", "bpx"})
    if bad:
        raise CellError(f"{path}: unknown keys {bad}; valid keys: {', '.join(k for k in CELL_FIELDS if k != 'name')}")
    return data


def load_bpx(path: str | Path):
    """``pybamm.ParameterValues`` from a BPX file, or :class:`CellError` with the validator's message."""
    path = Path(path)
    if not path.is_file():
        raise CellError(f"no BPX file at {path}")
    try:
        import bpx  # noqa: F401  (PyBaMM reads BPX through it)
    except ImportError:
        raise CellError("reading BPX files needs the `bpx` package: pip install bpx") from None
    pybamm = _pybamm()
    try:
        return pybamm.ParameterValues.create_from_bpx(path)
    except Exception as err:  # pydantic's ValidationError, ValueError, JSONDecodeError: all say what is wrong
        raise CellError(f"{path} is not a valid BPX file ({type(err).__name__}):\n{err}") from None


def missing_parameters(values) -> list[str]:
    """Parameters the DFN with a lumped thermal model reads and ``values`` (a ``pybamm.ParameterValues``
    or a mapping) lacks."""
    pybamm = _pybamm()
    model = pybamm.lithium_ion.DFN(options=DFN_OPTIONS)
    have = set(values.keys())
    needed = set(model.get_parameter_info()) - set(SET_BY_THE_SIMULATOR)
    return sorted(n for n in needed if n not in have)


def new_cell(name: str, parameter_set: str | None = None, bpx: str | Path | None = None,
             values: dict | None = None) -> Chemistry:
    """A complete, checked cell. ``values`` (from :func:`read_values`) overrides and completes what the
    parameter set or BPX file gives; the capacity and the operating window default to the set's
    "Nominal cell capacity [A.h]" and voltage cut-offs, the simulation window to 0.2 V above them."""
    values = dict(values or {})
    if not _NAME.match(name or ""):
        raise CellError(f"cell name {name!r}: use 1-32 lower-case letters, digits, '-' or '_', starting with a letter")
    if (parameter_set is None) == (bpx is None):
        raise CellError("name the cell's parameters with exactly one of --parameter-set NAME or --bpx FILE")
    extra = {str(k): float(v) for k, v in (values.pop("extra_parameters", None) or {}).items()}
    if bpx is not None:
        base = load_bpx(bpx)
        set_name = f"bpx:{Path(bpx).name}"
    else:
        valid = parameter_sets()
        if parameter_set not in valid:
            raise CellError(f"unknown PyBaMM parameter set {parameter_set!r}; valid lithium-ion sets: {', '.join(valid)}")
        base = _pybamm().ParameterValues(parameter_set)
        set_name = parameter_set

    completed = dict(base.items())
    completed.update(extra)
    missing = missing_parameters(completed)
    if bpx is not None:
        missing += [k for k in BPX_DEFAULTED if k not in extra and k not in missing]
    if missing:
        template = "extra_parameters:\n" + "".join(f"  {k}: ...\n" for k in sorted(missing))
        raise CellError(f"{set_name} lacks {len(missing)} parameter(s) the DFN with a lumped thermal model needs: "
                        f"{', '.join(sorted(missing))}. Give them in a values file (--values cell.yml), with the "
                        f"source of each value in a comment:\n{template}")

    def number(key: str, default):
        value = values.get(key, default)
        if value is None:
            raise CellError(f"{set_name} gives no {key}; set `{key}:` in the values file (--values)")
        return float(value)

    capacity = number("capacity_ah", completed.get("Nominal cell capacity [A.h]"))
    v_max = number("v_max", completed.get("Upper voltage cut-off [V]"))
    v_min = number("v_min", completed.get("Lower voltage cut-off [V]"))
    spec = {
        "name": name,
        "parameter_set": set_name,
        "cell": values.get("cell") or f"{set_name} cell, {capacity:g} Ah",
        "capacity_ah": capacity,
        "v_max": v_max,
        "v_min": v_min,
        "sim_v_max": number("sim_v_max", v_max + SIM_V_MARGIN),
        "sim_v_min": number("sim_v_min", v_min),
        "sim_t_max": number("sim_t_max", Chemistry.sim_t_max),
        "extra_parameters": extra,
        "degradation_parameter_set": values.get("degradation_parameter_set"),
        "bpx": str(Path(bpx).resolve()) if bpx is not None else None,
    }
    if not (spec["sim_v_min"] <= v_min < v_max <= spec["sim_v_max"]):
        raise CellError(f"voltage limits must satisfy sim_v_min <= v_min < v_max <= sim_v_max; got "
                        f"{spec['sim_v_min']} <= {v_min} < {v_max} <= {spec['sim_v_max']}")
    if capacity <= 0:
        raise CellError(f"capacity_ah must be positive, not {capacity}")
    return cell_from_mapping(spec, "<new cell>")  # spec["bpx"] is absolute, so the anchor does not matter


def same_cell(a: Chemistry, b: Chemistry) -> list[str]:
    """The YAML fields in which two cells differ (a BPX file compared by name)."""
    diff = []
    for key in CELL_FIELDS:
        x, y = getattr(a, key), getattr(b, key)
        if key == "bpx":
            x, y = (Path(x).name if x else None), (Path(y).name if y else None)
        if x != y:
            diff.append(key)
    return diff
