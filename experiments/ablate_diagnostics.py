"""Do the learned diagnostics (and the privileged plating margin) buy anything? Train variants, judge them on the ground truth.

    python experiments/ablate_diagnostics.py                       # PPO, nmc: 4 variants x 3 seeds, then the DFN
    python experiments/ablate_diagnostics.py --config experiments/configs/degradation_sweep.yml   # degradation weights
    python experiments/ablate_diagnostics.py --agent "{total_timesteps: 200000}" --seeds "[0]" --out runs/ablation-quick

Top to bottom: config -> one training per variant and seed (:func:`agents.rl.train.train`, same settings; the
variants differ in what their training reward sees) -> every policy's ground truth on the degradation DFN over
the yardstick's grid and over life (:func:`agents.ageing.measure.measure_degradation`: irreversible loss per cycle,
plating exposure, fade, and the yardstick's charge-time ratio on the same charges), next to the committed
baselines (CC-CV 0.5-1.5C, the tuned protocols) -> ``<out>/degradation.md``, ``fronts.png``, ``capacity.png``.

The default variants are the ablation of the reward:

- **margin, no diagnostics**: the surrogate's plating margin penalised (``w_plating``), no diagnostic terms;
- **margin + diagnostics**: the default agent (``cellgym/FastCharge-v2``'s hyperparameters);
- **BMS only, no diagnostics**: neither (voltage and temperature limits only);
- **BMS only + diagnostics**: ``cellgym/FastChargeBMS-v1``, the learned diagnostics as the only plating and
  degradation signals: what a real charger could be trained with.

A run folder that already holds a policy trained with the same settings is not retrained, and every measured
policy is kept, so an interrupted ablation resumes where it stopped.

The run itself is :func:`agents.rl.ablation.ablate`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from agents.rl.ablation import AblationConfig, ablate  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402


def main(argv=None) -> dict:
    cfg, _ = parse_config(AblationConfig, argv, description=__doc__)
    return ablate(cfg)


if __name__ == "__main__":
    main()
