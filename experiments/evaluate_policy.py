"""Replay a saved policy (a run folder of train_agent.py) next to the baselines, on either backend.

    python experiments/evaluate_policy.py runs/agents/ppo-nmc-jepa-s0                     # on the PyBaMM DFN
    python experiments/evaluate_policy.py runs/agents/ppo-nmc-jepa-s0 --backend surrogate
    python experiments/evaluate_policy.py RUN_DIR --starts "[[0.1, 298.15], [0.1, 288.15]]"

Writes <RUN_DIR>/evaluation-<backend>.md, .png and .json and prints the table, with the agent's
charge-time gap between the surrogate and the DFN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import yaml  # noqa: E402


def main(argv=None) -> dict:
    # -- config
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="run folder written by experiments/train_agent.py")
    p.add_argument("--backend", choices=("pybamm", "surrogate"), default="pybamm", help="where to replay")
    p.add_argument("--starts", default=None, help="YAML list of [soc, ambient K] (default: the run's)")
    p.add_argument("--cccv-rates", default=None, help="YAML list of CC-CV C-rates (default: the run's)")
    p.add_argument("--no-search", action="store_true", help="skip the fastest-safe CC-CV bisection")
    args = p.parse_args(argv)

    # -- evaluate
    from agents.evaluation import Start, evaluate_policy_on_backend

    starts = [Start(*s) for s in yaml.safe_load(args.starts)] if args.starts else None  # None: the run's
    cccv_rates = yaml.safe_load(args.cccv_rates) if args.cccv_rates else None
    return evaluate_policy_on_backend(args.run_dir, backend=args.backend, starts=starts, cccv_rates=cccv_rates,
                                      search_safe_cccv=not args.no_search, surrogate_gap=args.backend != "surrogate",
                                      out_name=f"evaluation-{args.backend}")


if __name__ == "__main__":
    main()
