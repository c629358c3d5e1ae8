"""Build the reference table every policy is judged against: oracle, buffered oracle, tuned protocols.

    python experiments/build_references.py --workers 2          # nmc, the default grid
    python experiments/build_references.py --chemistry lfp
    python experiments/build_references.py --socs "[0.1]" --ambients "[298.15]" --out /tmp/refs.json

For every grid point (initial SOC x ambient temperature) it replays on the PyBaMM DFN: the oracle
(the physical limit), the oracle held to the agent's safety buffers, the fastest safe CC-CV
(bisected) and the fastest safe 5-stage CC-CV found by CMA-ES then COBYLA (agents/tuning.py). Writes
agents/references/<chemistry>.json and .md (committed: every evaluation reads them). Resumes: each
finished reference is saved at once, so rerunning the command after a kill only computes the rest.
Rebuild (move the old file away) when the env's task changes; evaluations refuse a stale table.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from agents.evaluation.grid import GRID_AMBIENTS, GRID_SOCS  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402


@dataclass
class ReferenceConfig:
    """What to build."""

    chemistry: str = "nmc"
    """Cell chemistry."""
    socs: tuple[float, ...] = GRID_SOCS
    """Initial SOCs of the grid."""
    ambients: tuple[float, ...] = GRID_AMBIENTS
    """Ambient temperatures of the grid [K]."""
    evaluations: int = 200
    """Tuning budget per grid point (DFN charges, CMA-ES then COBYLA)."""
    seed: int = 0
    """Optimiser seed."""
    references: tuple[str, ...] = ("oracle", "oracle_buffered", "cccv", "tuned")
    """Which references to compute (the tuned protocol starts from the CC-CV)."""
    workers: int = 1
    """Processes computing grid points in parallel (every point is independent); 2 on a 2-core machine."""
    out: str = ""
    """Table path (default agents/references/<chemistry>.json)."""


def main(argv=None) -> dict:
    # -- config
    cfg, _ = parse_config(ReferenceConfig, argv, description=__doc__)
    from agents.evaluation.build import build_references
    from agents.evaluation.grid import grid
    from agents.evaluation.references import reference_path
    from agents.rl.algorithms import agent_buffers
    from envs.config import ChargingConfig

    config = ChargingConfig(chemistry=cfg.chemistry)  # the env's task, its own limits
    path = Path(cfg.out) if cfg.out else reference_path(cfg.chemistry)
    starts = grid(cfg.socs, cfg.ambients)
    buffers = agent_buffers(config)
    print(f"{len(starts)} grid points x {len(cfg.references)} references on the {cfg.chemistry} DFN -> {path} "
          f"(agent buffers {buffers})")

    # -- build (resumes)
    t0 = time.perf_counter()
    table = build_references(config, starts, path, buffers, evaluations=cfg.evaluations, seed=cfg.seed,
                             which=cfg.references, workers=cfg.workers)
    print(path.with_suffix(".md").read_text())
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min")
    return table


if __name__ == "__main__":
    main()
