"""Dataset generation speed: simulated hours per wall second, 1 and 2 workers, vs a naive loop.

    python benchmarks/bench_datagen.py [--num-sequences 16] [--chemistry nmc]

The naive loop solves the very same piecewise-constant currents (read back from the
generated data) with one ``pybamm.Simulation(experiment=...).solve`` per sequence, which
rebuilds the model each time. The last line extrapolates to the default dataset.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surrogates.data.dataset import open_dataset  # noqa: E402
from surrogates.data.generate import DatagenConfig, generate  # noqa: E402
from surrogates.physics.reference import solve_piecewise  # noqa: E402


def naive(ds, chemistry: str, limit: int) -> tuple[float, float]:
    hours, t0 = 0.0, time.perf_counter()
    for i in range(min(limit, len(ds))):
        n = int(ds.lengths[i])
        if n == 0:
            continue
        try:
            solve_piecewise(chemistry, ds.arrays["current"][i, :n], ds.dt, float(ds.initial["soc"][i]),
                            float(ds.initial["ambient_temperature"][i]), window="simulation")
        except Exception as err:  # noqa: BLE001 - a naive loop that fails still cost the time
            print(f"  naive solve of sequence {i} failed: {type(err).__name__}")
        hours += n * ds.dt / 3600
    return hours, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-sequences", type=int, default=16)
    parser.add_argument("--chemistry", default="nmc")
    parser.add_argument("--naive-sequences", type=int, default=8)
    parser.add_argument("--default-size", type=int, default=DatagenConfig().num_sequences)
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            config = DatagenConfig(chemistry=args.chemistry, num_sequences=args.num_sequences, shard_size=2, seed=123)
            out = Path(tmp) / f"w{workers}"
            t0 = time.perf_counter()
            summary = generate(config, out, workers=workers, progress=False)
            wall = time.perf_counter() - t0
            rows[f"generate, {workers} worker{'s' * (workers > 1)}"] = (summary["steps"] * config.dt / 3600, wall)
        ds = open_dataset(Path(tmp) / "w1")
        rows["naive Simulation.solve loop"] = naive(ds, args.chemistry, args.naive_sequences)
        mean_len = float(ds.lengths.mean()) * ds.dt / 3600

    print(f"{args.chemistry}, {args.num_sequences} default-distribution sequences, mean {mean_len:.2f} h each")
    print(f"{'':30s} {'sim hours':>10s} {'wall s':>8s} {'sim h / wall s':>15s}")
    for name, (hours, wall) in rows.items():
        print(f"{name:30s} {hours:10.2f} {wall:8.1f} {hours / wall:15.3f}")
    hours, wall = rows["generate, 2 workers"]
    est = args.default_size * mean_len / (hours / wall) / 60
    print(f"estimated default dataset ({args.default_size} sequences) with 2 workers: {est:.0f} min")


if __name__ == "__main__":
    main()
