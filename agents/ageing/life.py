"""A charge over life: its cycle repeated on the degradation DFN, the fade per 100 cycles and the cycles to 90 %.

Glossary (units as in :mod:`surrogates.common.channels`; the cycle in :mod:`agents.ageing.cycle`):

    life                the cycle repeated ``n_cycles`` times with the charge's C-rate profile replayed open
                        loop (averaged over ``segment_s``) and the discharge taking back exactly what the
                        charge put in, so every charge starts at the same SOC
    retention           1 - (irreversible lithium lost) / nominal capacity: the capacity a lithium-inventory-
                        limited cell keeps (the only fade mechanism these submodels have)
    cycles to 90 %      the cycle at which retention reaches 0.9; beyond the simulated cycles it is
                        extrapolated with the law of SEI growth limited by solvent diffusion (thickness as the
                        square root of time), ``a * (sqrt(1 + n / b) - 1)``, fitted to every simulated cycle
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agents.ageing.cycle import DISCHARGE_C, REST_S
from agents.charge import Start

RETENTION_END = 0.9
"""End of life: retention 90 %."""
LIFE_STARTS: tuple[Start, ...] = (Start(0.1, 298.15), Start(0.1, 313.15))
"""Where life is simulated: the headline start at 25 C and at the grid's hottest ambient (40 C)."""
def life_starts(starts, soc: float = 0.1) -> list[Start]:
    """Where life is simulated on a grid of ``starts``: ``soc`` (the grid's lowest SOC where it lacks it) at 25 C and at
    the grid's hottest ambient (:data:`LIFE_STARTS` on the yardstick's grid)."""
    socs = sorted({s.soc for s in starts})
    soc = soc if any(abs(soc - s) < 1e-9 for s in socs) else socs[0]
    return [Start(soc, t) for t in sorted({298.15, max(s.ambient_temperature for s in starts)})]


@dataclass(frozen=True)
class LifeConfig:
    """The repeated cycle (defaults: what ``experiments/measure_degradation.py`` reports)."""

    n_cycles: int = 100
    """Cycles simulated."""
    segment_s: float = 60.0
    """The charge's C-rate profile is replayed as its means over segments this long [s] (one DFN solve each)."""


def segments(c_rate_profile, dt: float, segment_s: float, tolerance: float = 1e-3) -> list[tuple[float, int]]:
    """A per-interval C-rate profile -> (mean C-rate, intervals) per segment of ``segment_s``, neighbours
    within ``tolerance`` [1/h] merged (a CC phase is one solve); the charge is kept exactly."""
    c = np.asarray(c_rate_profile, dtype=np.float64)
    k = max(1, int(round(segment_s / dt)))
    out: list[tuple[float, int]] = []
    for i in range(0, len(c), k):
        rate, n = float(c[i:i + k].mean()), len(c[i:i + k])
        if out and abs(out[-1][0] - rate) <= tolerance:
            r0, n0 = out[-1]
            out[-1] = ((r0 * n0 + rate * n) / (n0 + n), n0 + n)
        else:
            out.append((rate, n))
    return out


def _run_for(sim, current: float, intervals: float) -> list[dict[str, np.ndarray]]:
    """``current`` [A] for a possibly fractional number of intervals: the fraction as the same charge in one interval.
    The simulator's outputs, one dict per solve, with the ``current`` applied in each interval."""
    whole = int(intervals + 1e-9)
    runs = [(current, whole)] if whole else []
    if intervals - whole > 1e-9:
        runs.append((current * (intervals - whole), 1))
    return [{**sim.run(i, n), "current": np.full(n, i)} for i, n in runs]


TRACE_CHANNELS = ("current", "voltage", "temperature")
"""What a BMS measures of each recorded life cycle (:func:`life`'s ``record``)."""


def life(c_rate_profile, start: Start, chemistry: str = "nmc", dt: float = 10.0, config: LifeConfig = LifeConfig(),
         progress: bool = False, record: int = 0) -> dict:
    """The cycle repeated with the charge's ``c_rate_profile`` (charging C-rate [1/h] per interval of ``dt``).

    Returns ``irreversible_mAh`` (after each cycle, ``[n]``), ``retention`` ``[n]``, ``fade_per_100``
    [%] (over the first 100 cycles, from the SEI law's fit when fewer were run), ``cycles_to_90`` (extrapolated where
    ``extrapolated``), the SEI law's ``fit`` (a [A.h], b [cycles]) and ``cycles`` completed (fewer than asked if the
    replayed charge left the simulation window as the cell aged; ``stopped`` then says why). With ``record`` > 0,
    ``traces`` holds the first ``record`` cycles as a BMS logs them: per cycle, :data:`TRACE_CHANNELS` (current [A],
    PyBaMM sign; voltage [V]; temperature [K]) at the end of each interval of ``segment_s``, as lists.
    """
    from tqdm.auto import tqdm

    from surrogates.physics.dfn import DFNError, DFNSimulator

    # the life's simulator steps whole segments: fewer output samples per solve, same solution
    k = max(1, int(round(config.segment_s / dt)))
    segs = [(c, n / k) for c, n in segments(c_rate_profile, dt, config.segment_s)]  # n in segments, maybe fractional
    dt = dt * k
    sim = DFNSimulator(chemistry, dt=dt, degradation=True, substeps=1)
    sim.reset(start.soc, start.ambient_temperature)
    one_c = sim.one_c
    charged_steps = sum(c * n for c, n in segs) / DISCHARGE_C  # intervals of 1C discharge that give it back
    n_rest = int(round(REST_S / dt))
    lost, stopped, traces = [], None, []
    for _ in tqdm(range(config.n_cycles), desc="life", unit="cycle", disable=not progress, leave=False):
        try:
            outs = [o for c, n in segs for o in _run_for(sim, -c * one_c, n)]
            outs += _run_for(sim, 0.0, n_rest)
            outs += _run_for(sim, DISCHARGE_C * one_c, charged_steps)
            outs += _run_for(sim, 0.0, n_rest)
        except DFNError as err:
            stopped = f"{type(err).__name__} in cycle {len(lost) + 1}: {err}"
            break
        lost.append(float(outs[-1]["lithium_irreversible"][-1]))
        if len(traces) < record:
            traces.append({k: np.concatenate([o[k] for o in outs]).tolist() for k in TRACE_CHANNELS})
    q = np.asarray(lost)
    cap = sim.capacity_ah
    result = {"cycles": len(q), "irreversible_mAh": (1e3 * q).tolist(), "retention": (1.0 - q / cap).tolist(),
              "stopped": stopped, "start": [start.soc, start.ambient_temperature], "segment_s": config.segment_s}
    if record:
        result["traces"] = traces
    result.update(fade_and_end_of_life(q, cap))
    return result


def sei_law(n, a: float, b: float):
    """Irreversible loss after ``n`` cycles under solvent-diffusion-limited SEI growth [A.h]: ``a * (sqrt(1 + n / b) - 1)``
    (SEI thickness grows as the square root of time, from the initial thickness)."""
    return a * (np.sqrt(1.0 + np.asarray(n, dtype=np.float64) / b) - 1.0)


def fit_sei_law(lost_ah: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of :func:`sei_law` through the loss after each cycle (``a`` in closed form for each ``b``)."""
    from scipy.optimize import minimize_scalar

    n = np.arange(1, len(lost_ah) + 1, dtype=np.float64)

    def a_of(b: float) -> float:
        g = sei_law(n, 1.0, b)
        return float(g @ lost_ah / (g @ g))

    def sse(log_b: float) -> float:
        b = math.exp(log_b)
        return float(np.sum((sei_law(n, a_of(b), b) - lost_ah) ** 2))

    log_b = minimize_scalar(sse, bounds=(math.log(1e-3), math.log(1e6)), method="bounded",
                            options={"xatol": 1e-10}).x
    b = math.exp(log_b)
    return a_of(b), b


def fade_and_end_of_life(lost_ah: np.ndarray, capacity_ah: float) -> dict:
    """Fade per 100 cycles [%] and cycles to 90 % retention from the irreversible loss after each cycle [A.h].

    Beyond the simulated cycles both come from :func:`sei_law` fitted to them (``extrapolated``; ``fit`` = (a [A.h], b
    [cycles])). On the DFN's lives the law fits to 0.05 % of the loss: a fit to 30 cycles predicts the 100th to
    0.05 % and cycles to 90 % to 0.3 % of a fit to 100 (``tests/agents/test_ageing.py``).
    """
    lost_ah = np.asarray(lost_ah, dtype=np.float64)
    out = {"fade_per_100": math.nan, "cycles_to_90": math.nan, "extrapolated": True, "fit": None}
    if len(lost_ah) < 3:
        return out
    a, b = fit_sei_law(lost_ah)
    out["fit"] = [a, b]
    q100 = lost_ah[99] if len(lost_ah) >= 100 else float(sei_law(100, a, b))
    out["fade_per_100"] = float(100.0 * q100 / capacity_ah)
    target = (1.0 - RETENTION_END) * capacity_ah
    reached = np.nonzero(lost_ah >= target)[0]
    if len(reached):
        out.update(cycles_to_90=float(reached[0] + 1), extrapolated=False)
    else:
        out["cycles_to_90"] = float(b * ((target / a + 1.0) ** 2 - 1.0)) if a > 0 else math.inf
    return out


__all__ = ["RETENTION_END", "LIFE_STARTS", "life_starts", "LifeConfig", "segments", "TRACE_CHANNELS", "life", "sei_law",
           "fit_sei_law", "fade_and_end_of_life"]
