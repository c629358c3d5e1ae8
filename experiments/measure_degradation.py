"""What a charge costs the cell: policies and protocol families on the degradation DFN, per cycle and over life.

    python experiments/measure_degradation.py                  # the baselines: CC-CV 0.5-1.5C, the tuned protocols
    python experiments/measure_degradation.py --ship           # ... and commit them as agents/references/nmc-degradation.json
    python experiments/measure_degradation.py --runs '{"PPO, w_deg 0": ["runs/sweep/w0-s0", "runs/sweep/w0-s1"]}'

Top to bottom: config -> for every policy (a CC-CV rate, the tuned protocol of each grid point, each
agent run) one ground-truth cycle from every start of the yardstick's grid and life at
:data:`agents.ageing.life.LIFE_STARTS` (:func:`agents.ageing.measure.measure`) -> ``<out>/policies/<name>.json``
(atomically, so a killed run resumes at the next policy) -> ``<out>/degradation.md`` (the tables),
``fronts.png`` (charge time vs irreversible loss per cycle, one point per policy, families as fronts)
and ``capacity.png`` (retention vs cycle) -> with ``--ship``, the baselines' results beside the
reference table, for ``evaluate_policy.py`` to compare agents with.

The PyBaMM variables read are named in :mod:`agents.ageing.cycle` and :func:`surrogates.physics.dfn.lithium_split`.
The run itself is :func:`agents.ageing.pipeline.measure_degradation`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from agents.ageing.pipeline import MeasureConfig, measure_degradation  # noqa: E402
from agents.rl.evaluate import run_policies  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402


def main(argv=None) -> dict:
    cfg, _ = parse_config(MeasureConfig, argv, description=__doc__)
    return measure_degradation(cfg, run_policies(cfg.runs))


if __name__ == "__main__":
    main()
