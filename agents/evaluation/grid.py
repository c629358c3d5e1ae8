"""The grid of start conditions (initial SOC x ambient temperature) every policy is judged at."""

from __future__ import annotations

from agents.charge.start import Start

GRID_SOCS: tuple[float, ...] = (0.05, 0.10, 0.20, 0.30)
"""Initial SOCs of the grid [1]."""
GRID_AMBIENTS: tuple[float, ...] = (283.15, 298.15, 313.15)
"""Ambient temperatures of the grid [K] (10, 25, 40 C: the surrogates' training range)."""
PROFILE_START = Start(0.1, 298.15)
"""Where the profile figures are drawn (the headline condition)."""


def grid(socs=GRID_SOCS, ambients=GRID_AMBIENTS) -> list[Start]:
    """The grid's start conditions, SOC-major."""
    return [Start(float(s), float(t)) for s in socs for t in ambients]


__all__ = ["GRID_SOCS", "GRID_AMBIENTS", "PROFILE_START", "grid"]
