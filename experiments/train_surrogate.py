"""Train a neural surrogate of the DFN on a generated dataset, and optionally ship it.

    python experiments/train_surrogate.py --arch mamba --chemistry nmc --data data/nmc
    python experiments/train_surrogate.py --arch jepa --config my_settings.yml     # any field, as YAML
    torchrun --nproc_per_node 4 experiments/train_surrogate.py --arch transformer   # several GPUs

Writes runs/surrogates/<chemistry>-<arch>/ (best.pt, last.pt, config.json, history.json,
TensorBoard events under tb/); rerunning the same command resumes. The loop is
:mod:`surrogates.training.loop` (shared with the diagnostics); under ``torchrun`` it trains with
DistributedDataParallel. ``--ship`` copies the
best checkpoint to surrogates/models/checkpoints/<chemistry>-<arch>.pt with a card beside it.
"""
# The work is surrogates.training.surrogate.train and surrogates.training.ship.ship_surrogate (build_cell.py calls
# them too); this file parses and calls.

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.training.ship import ship_surrogate  # noqa: E402
from surrogates.training.surrogate import TrainConfig, train  # noqa: E402


def _extra(parser):
    parser.add_argument("--ship", action="store_true",
                        help="copy the best checkpoint into surrogates/models/checkpoints/ with a card")


def main(argv=None) -> dict:
    # -- config
    argv = list(sys.argv[1:] if argv is None else argv)
    config, args = parse_config(TrainConfig, argv, description=__doc__, extra=_extra)

    # -- train (resumes from the run folder)
    summary = train(config)

    # -- ship; the card's reproduce command is this command line, as typed (a --config file included)
    if args.ship:
        ship_surrogate(summary, [a for a in argv if a != "--ship"])
    return summary


if __name__ == "__main__":
    main()
