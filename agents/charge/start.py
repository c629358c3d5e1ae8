"""Where a charge starts: SOC [1] and ambient temperature [K], and its key in the tables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Start:
    """A start condition: SOC [1] and ambient temperature [K] (the cell starts at it)."""

    soc: float = 0.1
    ambient_temperature: float = 298.15

    @property
    def label(self) -> str:
        return f"{self.soc:.0%} SOC, {self.ambient_temperature - 273.15:.0f} C"

    @property
    def key(self) -> str:
        """The start's key in a table: ``"0.10@298.15"``."""
        return f"{self.soc:.2f}@{self.ambient_temperature:.2f}"

    @property
    def options(self) -> dict:
        """The env's ``reset`` options that start a charge here."""
        return {"soc_start": self.soc, "ambient_temperature": self.ambient_temperature}


def point_key(start: Start) -> str:
    """A start's key in a table: ``"0.10@298.15"`` (:attr:`Start.key`)."""
    return start.key


__all__ = ["Start", "point_key"]
