"""Milliseconds per control step of the DFN: our DFNSimulator vs a plain pybamm.Simulation.step loop.

    python benchmarks/bench_dfn.py [--chemistry nmc] [--dt 10] [--hours 1]

A one-hour 0.7C charge from 10 % SOC (about 10 -> 80 %), stepped one interval at a time.
The plain loop keeps PyBaMM's default (``save=True``: the solution history grows), which is
what makes its late steps dearer than its early ones; ours keeps no history.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surrogates.physics.dfn import DFNSimulator  # noqa: E402
from surrogates.physics.reference import reference_parameters  # noqa: E402


def time_steps(step, n: int) -> list[float]:
    """Wall seconds of each of ``n`` calls of ``step()``."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def plain_loop(chemistry: str, current: float, dt: float, n: int, soc0: float) -> list[float]:
    import pybamm

    params = reference_parameters(chemistry, soc0, 298.15)
    params.update({"Current function [A]": current})
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(options={"thermal": "lumped"}), parameter_values=params,
                            solver=pybamm.IDAKLUSolver())
    return time_steps(lambda: sim.step(dt), n)


def ours(chemistry: str, current: float, dt: float, n: int, soc0: float) -> list[float]:
    sim = DFNSimulator(chemistry, dt=dt)
    sim.reset(soc0, 298.15)
    return time_steps(lambda: sim.step(current), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chemistry", default="nmc")
    parser.add_argument("--dt", type=float, default=10.0)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--c-rate", type=float, default=0.7)
    args = parser.parse_args()

    one_c = DFNSimulator(args.chemistry, dt=args.dt).one_c
    current, n = -args.c_rate * one_c, int(round(args.hours * 3600 / args.dt))
    rows = {"DFNSimulator.step": ours(args.chemistry, current, args.dt, n, 0.1),
            "pybamm.Simulation.step": plain_loop(args.chemistry, current, args.dt, n, 0.1)}
    k = max(1, n // 10)
    print(f"{args.chemistry}, DFN + lumped thermal, {args.c_rate}C charge from 10 %, {n} steps of {args.dt:g} s")
    print(f"{'':24s} {'median ms/step':>15s} {'first 10 % ms':>14s} {'last 10 % ms':>13s} {'total s':>8s}")
    for name, t in rows.items():
        t = np.array(t[1:]) * 1000  # the first step includes solver set-up
        print(f"{name:24s} {np.median(t):15.1f} {t[:k].mean():14.1f} {t[-k:].mean():13.1f} {t.sum() / 1000:8.1f}")


if __name__ == "__main__":
    main()
