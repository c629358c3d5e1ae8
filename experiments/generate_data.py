"""Simulate randomized protocols on the PyBaMM DFN into a sharded HDF5 dataset.

    python experiments/generate_data.py --chemistry nmc --num-sequences 3000 --seed 0 --out data/nmc

Runs on all cores by default (``--workers``), shows a progress bar, writes each shard
atomically and resumes: rerun the same command after an interruption and only the missing
shards are simulated. ``--backend ray`` runs the same worker as Ray tasks (extra
``distributed``; set RAY_ADDRESS to use a cluster). Settings can also come from a YAML
file (``--config``), e.g. to change the protocol distribution.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.data.generate import DatagenConfig, generate  # noqa: E402


def _extra(parser):
    parser.add_argument("--out", required=True, help="dataset folder (created; resumed if it exists)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="where the workers run")


def main(argv=None) -> dict:
    # -- config
    config, args = parse_config(DatagenConfig, argv, description=__doc__, extra=_extra)
    from surrogates.physics.chemistry import get_chemistry

    get_chemistry(config.chemistry)  # fail fast on a wrong name, before any work
    print(f"{config.num_sequences} {config.chemistry} sequences, dt={config.dt} s, seed={config.seed} -> {args.out}")

    # -- simulate
    t0 = time.perf_counter()
    summary = generate(config, args.out, workers=args.workers, backend=args.backend)
    wall = time.perf_counter() - t0

    # -- report
    hours = summary["steps"] * config.dt / 3600.0
    summary.update(wall_s=round(wall, 1), simulated_hours=round(hours, 2),
                   simulated_hours_per_wall_s=round(hours / wall, 3) if wall > 0 else None)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
