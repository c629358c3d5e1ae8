"""The oracle: the fastest charge a controller that sees the DFN's hidden state can make, interval by interval.

Glossary (units as in :mod:`surrogates.common.channels`):

    c        charging C-rate [1/h] of one interval, in [0, c_max]
    buffers  (volts, kelvin, volts) the controller keeps inside v_max, t_max and the plating limit

Time-optimal charging rides the active constraint. The oracle does that greedily: before each
interval it snapshots the DFN, bisects the largest ``c`` whose interval stays inside every limit
(checked on the interval's sub-samples, as the env checks), and applies it. Resting is always
safe (the voltage relaxes down, the plating margin up, the cell cools), so the greedy controller
never paints itself into a corner and never violates a limit. It is a one-step look-ahead, not a
proof of optimality, but no policy that sees only what a BMS measures can know more than it does.

Held to an agent's safety buffers (``buffers=(0.010, 2.0, 0.004)``) it tells how much of an
agent's gap to the oracle is the price of the buffers, and how much is the policy.
"""

from __future__ import annotations

import math

import numpy as np

from agents.charge import TRACE_KEYS, Start, within_limits
from envs.config import ChargingConfig
from surrogates.physics.dfn import DFNError, DFNSimulator


class DFNOracle:
    """Greedy limit-riding controller on the DFN (see the module docstring).

    Args:
        config: the task (limits, ``c_max``, ``soc_target``, ``dt``, ``time_limit``).
        buffers: (V, K, V) kept inside ``v_max``, ``t_max`` and ``plating_limit``.
        tol: bisection resolution [C].
        sim: a :class:`DFNSimulator` of ``config``'s chemistry and ``dt`` (built if None).
    """

    def __init__(self, config: ChargingConfig, buffers: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 tol: float = 0.02, sim: DFNSimulator | None = None):
        self.config = config
        self.buffers = tuple(float(b) for b in buffers)
        self.tol = float(tol)
        self.sim = sim or DFNSimulator(config.chemistry, dt=config.dt)
        if self.sim.dt != config.dt:
            raise ValueError(f"the simulator's dt={self.sim.dt} differs from the task's dt={config.dt}")

    def _try(self, snap, c: float) -> dict | None:
        """The interval's channels at ``c`` if it stays inside the limits, else None; the DFN is left after it."""
        self.sim.restore(snap)
        try:
            out = self.sim.step(-c * self.sim.one_c)
        except DFNError:
            return None
        return out if within_limits(out, self.config, self.buffers) else None

    def next_interval(self) -> tuple[float, dict]:
        """Bisect and apply the largest safe C-rate of the next interval; (c, channels)."""
        snap = self.sim.snapshot()
        c_max = self.config.c_max
        best = self._try(snap, c_max)
        if best is not None:
            return c_max, best
        lo, hi, lo_out, last_safe = 0.0, c_max, None, False
        while hi - lo > self.tol:
            mid = 0.5 * (lo + hi)
            out = self._try(snap, mid)
            last_safe = out is not None
            if last_safe:
                lo, lo_out = mid, out
            else:
                hi = mid
        if last_safe:  # the DFN already stands after the best safe interval
            return lo, lo_out
        self.sim.restore(snap)
        if lo_out is None:  # nothing above 0 C is safe: rest (always safe)
            return 0.0, self.sim.step(0.0)
        return lo, self.sim.step(-lo * self.sim.one_c)

    def run(self, start: Start) -> dict:
        """One charge from ``start``: a trace like :func:`agents.charge.rollout`'s (index 0 the rest state)."""
        cfg = self.config
        rest = self.sim.reset(start.soc, start.ambient_temperature)
        trace = {k: [rest[k]] for k in TRACE_KEYS if k in rest}
        trace.update(elapsed=[0.0], c_rate=[0.0], current=[0.0])
        reached, k = False, 0
        while not reached and k < cfg.max_steps:
            c, out = self.next_interval()
            k += 1
            for key in out:
                if key in trace:
                    trace[key].append(out[key])
            trace["elapsed"].append(k * cfg.dt)
            trace["c_rate"].append(c)
            trace["current"].append(-c * self.sim.one_c)
            reached = out["soc"] >= cfg.soc_target - 1e-9
        result = {k: np.asarray(v, dtype=np.float64) for k, v in trace.items()}
        result.update(reached_target=reached, hard_violation=False, solver_failure=False, truncated=not reached,
                      **{"return": math.nan})
        return result


__all__ = ["DFNOracle"]
