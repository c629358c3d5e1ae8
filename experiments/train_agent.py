"""Train a stable-baselines3 agent to fast-charge a cell on a neural surrogate, then judge it on the DFN.

    python experiments/train_agent.py                                   # PPO, nmc, shipped surrogate
    python experiments/train_agent.py --algo sac --total-timesteps 200000
    python experiments/train_agent.py --config my_run.yml --out runs/agents/my_run
    tensorboard --logdir runs

Hyperparameters and the training env come from agents/rl/hyperparams/<algo>.yml (rl-baselines3-zoo's
keys; `python -m rl_zoo3.train --algo ppo --env cellgym/FastCharge-v2 --gym-packages envs
--conf-file agents/rl/hyperparams/ppo.yml` trains the same agent). The training env charges for what
the learned diagnostics see in the BMS signals (plating detector and degradation estimator); the
replay judges the policy by physics alone. ``experiments/ablate_diagnostics.py`` trains with and
without those terms. The run itself is agents.rl.train.train.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from agents.rl.train import AgentConfig, train  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402


def main(argv=None) -> dict:
    cfg, _ = parse_config(AgentConfig, argv, description=__doc__)
    report = train(cfg)
    run_dir = cfg.run_dir()
    print(f"results in {run_dir}: evaluation.md, evaluation.png, policy.zip, config.yml; "
          f"tensorboard --logdir {run_dir / 'tb'}")
    return report


if __name__ == "__main__":
    main()
