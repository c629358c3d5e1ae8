"""What a charge achieved, as one typed record, and the one definition of a broken limit.

Glossary (units as in :mod:`surrogates.common.channels`):

    charge time     minutes from the start SOC to the target SOC (NaN if never reached)
    slack           signed distance of an interval to a limit (negative: broken): v_max - V_max [V],
                    t_max - T_max [K], plating margin min - plating_limit [V], each less a buffer
    violating step  an interval with a negative slack to any limit (the env's limits, checked on the
                    interval's sub-samples, every dt / substeps seconds on the DFN)
    worst excess    the largest single-interval excess over each limit: voltage [mV], temperature [K],
                    plating margin below its limit [mV]
    safe            reached the target with no violating step and no solver failure

The record is what travels between the controllers, the yardstick, the reference table and the
ageing reports; its JSON form (:meth:`ChargeResult.to_json`) is the rows of the committed tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from envs.charging import limit_slack as env_limit_slack

LIMITS = ("V", "T", "plating")
"""The limits, in the order of :func:`interval_slack`'s keys and of a buffer triple (V [V], T [K], plating [V])."""
NO_BUFFERS = (0.0, 0.0, 0.0)


def interval_slack(channels: dict, config, buffers=NO_BUFFERS) -> dict[str, np.ndarray]:
    """Each interval's slack to each limit held ``buffers`` (V, K, V) inside it (negative: broken), by :data:`LIMITS`.

    ``channels`` holds ``voltage_max``, ``temperature_max`` and ``plating_margin_min`` of the intervals (scalars or
    arrays). The env's own definition (:func:`envs.charging.limit_slack`, which its reward and termination read):
    the records, the oracle's admissible currents and the protocol search's penalty and constraints all read it.
    """
    as_float = {k: np.asarray(channels[k], dtype=np.float64) for k in ("voltage_max", "temperature_max",
                                                                        "plating_margin_min")}
    return dict(zip(LIMITS, env_limit_slack(as_float, config, buffers)))


def within_limits(channels: dict, config, buffers=NO_BUFFERS) -> bool:
    """Every interval of ``channels`` keeps every limit (held ``buffers`` inside it)."""
    return all(bool(np.all(s >= 0)) for s in interval_slack(channels, config, buffers).values())


def limit_slack(trace: dict, config) -> dict[str, np.ndarray]:
    """:func:`interval_slack` of a trace's intervals (index 0, the rest state, left out), ``[n_intervals]``."""
    return interval_slack({k: trace[k][1:] for k in ("voltage_max", "temperature_max", "plating_margin_min")}, config)


def minutes(t) -> str:
    """A charge time [min] as the tables print it: one decimal, or "not reached"."""
    return "not reached" if t is None or not math.isfinite(t) else f"{t:.1f}"


@dataclass(frozen=True)
class WorstExcess:
    """The largest single-interval excess over each limit (0 when the limit held)."""

    V_mV: float = 0.0
    T_K: float = 0.0
    plating_mV: float = 0.0

    @classmethod
    def of(cls, trace: dict, config) -> WorstExcess:
        slack = limit_slack(trace, config)
        worst = {k: max(-float(np.min(v)), 0.0) if len(v) else 0.0 for k, v in slack.items()}
        return cls(worst["V"] * 1e3, worst["T"], worst["plating"] * 1e3)

    def label(self) -> str:
        return f"V +{self.V_mV:.1f} mV, T +{self.T_K:.2f} K, plating -{self.plating_mV:.1f} mV"


@dataclass(frozen=True)
class ChargeResult:
    """One charge: how long, how close to each limit, how often over it. ``charge_time_min`` is NaN if never reached."""

    charge_time_min: float
    reached_target: bool
    max_voltage_V: float
    max_temperature_C: float
    min_plating_margin_mV: float
    violating_steps: int
    voltage_steps: int
    temperature_steps: int
    plating_steps: int
    time_plating_min: float
    solver_failure: bool
    hard_violation: bool
    reward: float
    """The episode's return (``"return"`` in JSON); NaN for a controller that runs outside the env."""
    c_rate_profile: tuple[float, ...] | None = None
    """The charging C-rate of every interval [1/h], 3 decimals: enough to redraw the charge."""
    worst_excess: WorstExcess | None = None

    @property
    def reached(self) -> bool:
        return bool(self.reached_target)

    @property
    def safe(self) -> bool:
        """Reached the target with no violating step and no solver failure."""
        return bool(self.reached_target and self.violating_steps == 0 and not self.solver_failure)

    @property
    def time(self) -> float:
        """The charge time [min], NaN if it never arrived."""
        t = self.charge_time_min
        return math.nan if t is None else float(t)

    @classmethod
    def of(cls, trace: dict, config, profile: bool = False, excess: bool = False) -> ChargeResult:
        """The record of a trace (:func:`agents.charge.rollout.rollout`); with ``profile`` its C-rate profile, with
        ``excess`` its :class:`WorstExcess`."""
        steps = slice(1, None)  # the intervals, not the rest state
        slack = limit_slack(trace, config)
        over_v, over_t, plating = slack["V"] < 0, slack["T"] < 0, slack["plating"] < 0
        reached = bool(trace["reached_target"])
        return cls(
            charge_time_min=float(trace["elapsed"][-1] / 60.0) if reached else math.nan,
            reached_target=reached,
            max_voltage_V=float(np.max(trace["voltage_max"][steps])),
            max_temperature_C=float(np.max(trace["temperature_max"][steps]) - 273.15),
            min_plating_margin_mV=float(np.min(trace["plating_margin_min"][steps]) * 1e3),
            violating_steps=int(np.sum(over_v | over_t | plating)),
            voltage_steps=int(over_v.sum()),
            temperature_steps=int(over_t.sum()),
            plating_steps=int(plating.sum()),
            time_plating_min=float(plating.sum() * config.dt / 60.0),
            solver_failure=bool(trace["solver_failure"]),
            hard_violation=bool(trace["hard_violation"]),
            reward=float(trace["return"]),
            c_rate_profile=tuple(round(float(c), 3) for c in trace["c_rate"][1:]) if profile else None,
            worst_excess=WorstExcess.of(trace, config) if excess else None,
        )

    def to_json(self) -> dict:
        """The row as the tables store it (``"return"`` for :attr:`reward`; fields that are None left out)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "worst_excess":
                value = asdict(value)
            elif f.name == "c_rate_profile":
                value = list(value)
            out["return" if f.name == "reward" else f.name] = value
        return out

    @classmethod
    def from_json(cls, row: dict) -> ChargeResult:
        """A stored row back as a record (keys it does not know, an ageing row's, are ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in row.items() if k in known}
        kw["reward"] = row.get("return", math.nan)
        if kw.get("charge_time_min") is None:
            kw["charge_time_min"] = math.nan
        if kw.get("c_rate_profile") is not None:
            kw["c_rate_profile"] = tuple(kw["c_rate_profile"])
        if kw.get("worst_excess") is not None:
            kw["worst_excess"] = WorstExcess(**kw["worst_excess"])
        return cls(**kw)


def summarize(trace: dict, config) -> ChargeResult:
    """The record of a trace from :func:`agents.charge.rollout.rollout` (no profile, no worst excess)."""
    return ChargeResult.of(trace, config)


def charge_row(trace: dict, config) -> ChargeResult:
    """The record with the C-rate profile: enough to redraw the charge (a reference table's row)."""
    return ChargeResult.of(trace, config, profile=True)


__all__ = ["LIMITS", "NO_BUFFERS", "interval_slack", "within_limits", "limit_slack", "minutes", "WorstExcess",
           "ChargeResult", "summarize", "charge_row"]
