"""Randomized current protocols: what currents the DFN is driven with to make datasets.

A protocol is a small controller. At each decision it sees what a charger sees (the last
interval's voltage, temperature and the coulomb-counted SOC) and answers with a current
and how many intervals to hold it, or ``None`` when it is done. Open-loop parts (a CC
phase, a rest) ask for many intervals at once, which the DFN solves in one call; closed-
loop parts (constant voltage, a random walk) ask for one interval at a time.

Currents are specified in C-rates and converted with the cell's capacity, so one protocol
distribution serves every chemistry. Sign is PyBaMM's: negative C-rate = charge.

Families (:data:`FAMILIES`):

* ``random_steps``  piecewise-constant charge / discharge / rest, -4C..+2C, 10 s-10 min segments
* ``cccv``          constant current at a random C-rate up to the CV voltage, then constant voltage
* ``multistep_cc``  a C-rate per SOC window, decreasing, as in fast-charging studies, then CV
* ``pulse``         charge or discharge pulses separated by rests (HPPC-like trains)
* ``random_walk``   a smooth random walk of charging C-rate in [0, 5C], like an exploring agent,
                    with occasional jumps; it happily drives plating margin < 0, V past the
                    limit and T towards 45 C, which is what an agent in the env will do too

Every draw comes from the ``numpy.random.Generator`` passed in, so a seed fixes a protocol.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from surrogates.common.channels import celsius_to_kelvin

FAMILIES: tuple[str, ...] = ("random_steps", "cccv", "multistep_cc", "pulse", "random_walk")


@dataclass
class ProtocolConfig:
    """The distribution protocols are drawn from (C-rates: negative = charge)."""

    family_weights: dict[str, float] = field(
        default_factory=lambda: {"random_steps": 0.25, "cccv": 0.2, "multistep_cc": 0.2, "pulse": 0.1, "random_walk": 0.25}
    )
    """Probability of each family."""
    max_duration_s: float = 7200.0
    """Longest sequence [s]; sequences also end when a protocol finishes or the DFN stops."""
    ambient_c: tuple[float, float] = (10.0, 40.0)
    """Ambient (and initial cell) temperature range [C]."""
    charge_soc0: tuple[float, float] = (0.0, 0.5)
    """Initial SOC range for the charging families (cccv, multistep_cc, random_walk)."""
    any_soc0: tuple[float, float] = (0.05, 0.95)
    """Initial SOC range for random_steps and pulse."""
    max_charge_c: float = 4.0
    """Fastest charge in random_steps, cccv, multistep_cc and pulse [C]."""
    max_discharge_c: float = 2.0
    """Fastest discharge in random_steps and pulse [C]."""
    walk_max_c: float = 5.0
    """Top of the random walk's charging range [C] (the env's default c_max)."""
    soc_bounds: tuple[float, float] = (0.03, 0.97)
    """random_steps and pulse turn back towards the middle outside these SOCs."""


@dataclass
class Observation:
    """What a protocol sees before a decision (values at the end of the last interval)."""

    step: int
    """Intervals simulated so far."""
    soc: float
    """Coulomb-counted SOC (0..1)."""
    voltage: float
    """Terminal voltage [V]."""
    voltage_max: float
    """Highest voltage in the last interval [V] (the reset value before the first)."""
    temperature: float
    """Cell temperature [K]."""
    current: float
    """Last applied current [A] (0 before the first interval)."""


@dataclass
class ProtocolSpec:
    """A drawn protocol: its family, parameters and initial conditions (JSON-serialisable)."""

    family: str
    soc0: float
    """Initial SOC."""
    ambient_temperature: float
    """Ambient and initial cell temperature [K]."""
    params: dict
    """Family parameters (C-rates, breakpoints, the protocol's own seed...)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProtocolSpec":
        return cls(**json.loads(text))


# --------------------------------------------------------------------------- drawing
def sample_spec(rng: np.random.Generator, config: ProtocolConfig, family: str | None = None) -> ProtocolSpec:
    """Draw one protocol (family by ``config.family_weights`` unless given)."""
    if family is None:
        names = [f for f in FAMILIES if config.family_weights.get(f, 0.0) > 0]
        weights = np.array([config.family_weights[f] for f in names], dtype=float)
        family = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if family not in FAMILIES:
        raise ValueError(f"unknown protocol family {family!r}; valid families are: {', '.join(FAMILIES)}")
    for name in config.family_weights:
        if name not in FAMILIES:
            raise ValueError(f"unknown protocol family {name!r} in family_weights; valid: {', '.join(FAMILIES)}")
    ambient = celsius_to_kelvin(float(rng.uniform(*config.ambient_c)))
    charging = family in ("cccv", "multistep_cc", "random_walk")
    soc0 = float(rng.uniform(*(config.charge_soc0 if charging else config.any_soc0)))
    # Each protocol carries its own seed so replaying a spec needs nothing but the spec.
    params: dict = {"seed": int(rng.integers(2**31 - 1)), "max_duration_s": config.max_duration_s}
    if family == "random_steps":
        params.update(max_charge_c=config.max_charge_c, max_discharge_c=config.max_discharge_c,
                      soc_bounds=list(config.soc_bounds), max_segment_s=600.0)
    elif family == "cccv":
        params.update(
            c_rate=float(_log_uniform(rng, 0.3, config.max_charge_c)),
            cv_offset_v=float(rng.choice([0.0, 0.0, -0.05, -0.1, 0.05])),
            cutoff_c=float(rng.uniform(0.02, 0.1)),
        )
    elif family == "multistep_cc":
        n = int(rng.integers(2, 5))
        first = float(rng.uniform(1.0, config.max_charge_c))
        rates = np.sort(rng.uniform(0.3, first, n - 1))[::-1]
        breaks = np.sort(rng.uniform(soc0 + 0.05, 0.95, n - 1))
        params.update(
            c_rates=[first, *map(float, rates)],
            soc_breaks=[*map(float, breaks), 1.0],
            cv_offset_v=float(rng.choice([0.0, 0.0, -0.05, 0.05])),
            cutoff_c=float(rng.uniform(0.02, 0.1)),
        )
    elif family == "pulse":
        params.update(
            pulse_c=float(rng.uniform(0.5, config.max_charge_c)),
            discharge_fraction=float(rng.uniform(0.0, 0.6)),
            pulse_steps=[1, 6],
            rest_steps=[1, 30],
            max_discharge_c=config.max_discharge_c,
            soc_bounds=list(config.soc_bounds),
        )
    elif family == "random_walk":
        params.update(
            max_c=config.walk_max_c,
            start_c=float(rng.uniform(0.0, config.walk_max_c)),
            sigma_c=float(_log_uniform(rng, 0.05, 1.0)),
            jump_prob=float(rng.uniform(0.0, 0.1)),
            hold_steps=[1, 3],
        )
    return ProtocolSpec(family=family, soc0=soc0, ambient_temperature=ambient, params=params)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


# --------------------------------------------------------------------------- controllers
class Protocol:
    """Base controller: ``next(obs) -> (current [A], n_intervals) | None``."""

    def __init__(self, spec: ProtocolSpec, one_c: float, v_max: float, dt: float):
        self.spec = spec
        self.p = spec.params
        self.one_c = one_c
        self.v_max = v_max
        self.dt = dt
        self.max_steps = int(round(self.p["max_duration_s"] / dt))
        self.rng = np.random.default_rng(self.p["seed"])

    def next(self, obs: Observation) -> tuple[float, int] | None:
        remaining = self.max_steps - obs.step
        if remaining <= 0:
            return None
        decision = self._decide(obs)
        if decision is None:
            return None
        c_rate, n = decision
        return c_rate * self.one_c, max(1, min(int(n), remaining))

    def _decide(self, obs: Observation) -> tuple[float, int] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _steps_to_soc(self, soc_now: float, soc_goal: float, c_rate: float) -> int:
        """Intervals of charging at ``c_rate`` [C, > 0] to move SOC from now to goal."""
        per_step = abs(c_rate) * self.dt / 3600.0
        return max(1, int(math.ceil((soc_goal - soc_now) / per_step - 1e-9)))


class _CVMixin:
    """Constant voltage by a per-interval proportional controller on the charging current."""

    cv_gain_c_per_v = 10.0  # C-rate change per volt of error: stiff enough, never oscillates
    cv_hold_steps = 3
    cc_near_cv_v = 0.05  # within this of the CV voltage, CC steps one interval to catch the switch

    def _cc_hold(self, obs: Observation, v_cv: float, n: int) -> int:
        """Intervals to hold a CC current: up to ``n`` (one solve) far from ``v_cv``, else one."""
        return n if obs.voltage < v_cv - self.cc_near_cv_v else 1

    def _cv(self, obs: Observation, v_cv: float, cutoff_c: float) -> tuple[float, int] | None:
        charge_c = max(0.0, -obs.current / self.one_c)
        err = obs.voltage_max - v_cv
        charge_c = max(0.0, charge_c - self.cv_gain_c_per_v * err)
        if charge_c < cutoff_c or obs.soc >= 0.999:
            return None
        # Hold each CV correction for a few intervals: the current decays slowly there, and
        # every PyBaMM call costs ~15 ms of overhead however short the interval.
        return -charge_c, self.cv_hold_steps


class RandomSteps(Protocol):
    def _decide(self, obs):
        lo, hi = self.p["soc_bounds"]
        r = self.rng.random()
        kind = "charge" if r < 0.5 else ("discharge" if r < 0.8 else "rest")
        if (obs.soc > hi or obs.voltage_max > self.v_max) and kind == "charge":
            kind = "discharge"
        if obs.soc < lo and kind == "discharge":
            kind = "charge"
        n = int(self.rng.integers(1, int(self.p["max_segment_s"] / self.dt) + 1))
        if kind == "charge":
            c = -_log_uniform(self.rng, 0.1, self.p["max_charge_c"])
            n = min(n, self._steps_to_soc(obs.soc, 1.0, c))
        elif kind == "discharge":
            c = _log_uniform(self.rng, 0.1, self.p["max_discharge_c"])
            n = min(n, self._steps_to_soc(0.0, obs.soc, c))
        else:
            c = 0.0
        return c, n


class _CCThenCV(Protocol, _CVMixin):
    """Constant-current stage(s) (:meth:`_cc`) until the interval's highest voltage reaches the CV
    voltage, then constant voltage down to the cut-off C-rate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_cv = False

    def _decide(self, obs):
        v_cv = self.v_max + self.p["cv_offset_v"]
        if not self.in_cv and obs.voltage_max >= v_cv:
            self.in_cv = True
        if self.in_cv:
            return self._cv(obs, v_cv, self.p["cutoff_c"])
        return self._cc(obs, v_cv)


class CCCV(_CCThenCV):
    def _cc(self, obs, v_cv):
        # Far from the CV voltage, hold a minute at a time (one solve); close to it, step.
        return -self.p["c_rate"], self._cc_hold(obs, v_cv, 6)


class MultiStepCC(_CCThenCV):
    def _cc(self, obs, v_cv):
        for c_rate, soc_break in zip(self.p["c_rates"], self.p["soc_breaks"]):
            if obs.soc < soc_break - 1e-9:
                return -c_rate, self._cc_hold(obs, v_cv, min(self._steps_to_soc(obs.soc, soc_break, c_rate), 6))
        return None


class Pulse(Protocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resting = True

    def _decide(self, obs):
        self.resting = not self.resting
        if self.resting:
            return 0.0, int(self.rng.integers(self.p["rest_steps"][0], self.p["rest_steps"][1] + 1))
        lo, hi = self.p["soc_bounds"]
        discharge = self.rng.random() < self.p["discharge_fraction"]
        if obs.soc > hi:
            discharge = True
        if obs.soc < lo:
            discharge = False
        c = self.p["pulse_c"] * self.rng.uniform(0.5, 1.0)
        c = min(c, self.p["max_discharge_c"]) if discharge else -c
        return c, int(self.rng.integers(self.p["pulse_steps"][0], self.p["pulse_steps"][1] + 1))


class RandomWalk(Protocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.c = self.p["start_c"]

    def _decide(self, obs):
        if obs.soc >= 0.99:
            return None
        if obs.voltage_max > self.v_max + 0.05:
            # Back off as an agent penalised for over-voltage would, so sequences go on to
            # high SOC instead of all ending at the simulation window.
            self.c *= 0.5
        elif self.rng.random() < self.p["jump_prob"]:
            self.c = float(self.rng.uniform(0.0, self.p["max_c"]))
        else:
            self.c = float(np.clip(self.c + self.p["sigma_c"] * self.rng.standard_normal(), 0.0, self.p["max_c"]))
        n = int(self.rng.integers(self.p["hold_steps"][0], self.p["hold_steps"][1] + 1))
        return -self.c, n


_CONTROLLERS: dict[str, type[Protocol]] = {
    "random_steps": RandomSteps,
    "cccv": CCCV,
    "multistep_cc": MultiStepCC,
    "pulse": Pulse,
    "random_walk": RandomWalk,
}


def build_protocol(spec: ProtocolSpec, one_c: float, v_max: float, dt: float) -> Protocol:
    """The controller for ``spec``, for a cell whose 1C is ``one_c`` [A] and limit ``v_max`` [V]."""
    try:
        cls = _CONTROLLERS[spec.family]
    except KeyError:
        raise ValueError(f"unknown protocol family {spec.family!r}; valid families are: {', '.join(FAMILIES)}") from None
    return cls(spec, one_c=one_c, v_max=v_max, dt=dt)
