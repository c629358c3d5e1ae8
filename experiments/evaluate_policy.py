"""Replay saved policies (run folders of train_agent.py) over the reference grid and compare them.

    python experiments/evaluate_policy.py runs/agents/ppo-nmc-jepa-s0                     # on the PyBaMM DFN
    python experiments/evaluate_policy.py runs/agents/ppo-nmc-jepa-s0 --backend surrogate
    python experiments/evaluate_policy.py runs/agents/*-s0 runs/agents/*-s1 runs/agents/*-s2   # a comparison

Each run is replayed at every grid point of the committed reference table
(agents/references/<chemistry>.json: oracle, buffered oracle, tuned 5-stage CC-CV, fastest CC-CV,
built by experiments/build_references.py) and gets <RUN_DIR>/evaluation-<backend>.md, .png,
-profile.png and .json; the table and its summary line are printed. On the DFN, the same charges then
run on the DFN with its degradation submodels for their ground truth (irreversible loss per cycle,
plating exposure, life; ``agents.ageing``), beside the committed baselines' (-fronts.png,
-capacity.png; ``--no-degradation`` skips it). With several runs, a last table compares them: per
algorithm, the mean and spread over its runs (seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv=None) -> dict:
    # -- config
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", help="run folder(s) written by experiments/train_agent.py")
    p.add_argument("--backend", choices=("pybamm", "surrogate"), default="pybamm", help="where to replay")
    p.add_argument("--references", default=None, help="reference table (default: the chemistry's committed one)")
    p.add_argument("--out", default=None, help="with several runs: write the comparison here (.md and .json)")
    p.add_argument("--reuse", action="store_true",
                   help="take a run's saved replay on this backend (evaluation-<backend>.json, or train_agent's "
                        "evaluation.json) instead of replaying it again")
    p.add_argument("--no-degradation", action="store_true",
                   help="skip the ground-truth degradation after a pybamm replay (loss per cycle, plating exposure, life)")
    p.add_argument("--life-cycles", type=int, default=30,
                   help="cycles of each life (0: as many as the committed baselines'; 30 give the 100th through the SEI law)")
    args = p.parse_args(argv)

    # -- evaluate every run (or reuse its saved replay)
    import json

    from agents.evaluation.yardstick import compare_runs
    from agents.rl.evaluate import evaluate_run

    def saved(run_dir: str) -> dict | None:
        for name in (f"evaluation-{args.backend}.json", "evaluation.json"):
            path = Path(run_dir) / name
            if args.reuse and path.exists():
                report = json.loads(path.read_text())
                if report.get("backend") == args.backend and "summary" in report:
                    print(f"{run_dir}: reusing {path}")
                    return report
        return None

    reports = {d: saved(d) or evaluate_run(d, backend=args.backend, references=args.references,
                                           out_name=f"evaluation-{args.backend}", surrogate_gap=args.backend != "surrogate",
                                           degradation=not args.no_degradation, life_cycles=args.life_cycles)
               for d in args.run_dirs}
    if len(reports) == 1:
        return next(iter(reports.values()))

    # -- compare
    text, comparison = compare_runs(reports)
    print(text)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(comparison, indent=1, default=float))
    return comparison


if __name__ == "__main__":
    main()
