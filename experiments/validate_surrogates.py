"""Validate every shipped surrogate against the PyBaMM DFN, next to a fitted ECM.

    python experiments/validate_surrogates.py                      # every shipped cell, shipped sets and checkpoints
    python experiments/validate_surrogates.py --chemistry nmc --out runs/validation
    python experiments/validate_surrogates.py --chemistry nmc --export --fit-ecm --data data/nmc

Open loop over whole held-out DFN sequences (the shipped validation set: test sequences of
every protocol family plus the family held out of training). Prints and writes, per
chemistry, ``<out>/<chemistry>.md`` (tables), ``.json`` and ``.png`` (predicted vs DFN).
``--export`` rebuilds the shipped validation set from a dataset with the training split's
seed; ``--fit-ecm`` refits the shipped ECM baseline on that dataset's training split.
"""
# The work is surrogates.validation.report.validate_surrogates (build_cell.py calls it too); this file parses and calls.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.validation.report import ValidationConfig, validate_surrogates  # noqa: E402

D = ValidationConfig()  # the defaults: one place for them, the library's


def parse_args(argv=None) -> ValidationConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chemistry", nargs="+", default=None, help="cells to validate (default: every shipped cell)")
    p.add_argument("--arch", nargs="+", default=list(D.arch), help="architectures (those with a shipped checkpoint run)")
    p.add_argument("--out", default=D.out, help="report folder")
    p.add_argument("--data", default=None, help="dataset folder for --export / --fit-ecm (default data/<chemistry>)")
    p.add_argument("--export", action="store_true", help="rebuild surrogates/validation/<chemistry>.h5 from --data")
    p.add_argument("--fit-ecm", action="store_true", help="refit surrogates/baselines/fits/<chemistry>-ecm.json on --data")
    p.add_argument("--max-test", type=int, default=D.max_test, help="--export: test sequences kept")
    p.add_argument("--max-holdout", type=int, default=D.max_holdout, help="--export: held-out-family sequences kept")
    p.add_argument("--speed-steps", type=int, default=D.speed_steps, help="intervals timed per speed measurement")
    p.add_argument("--ecm-pybamm", type=int, default=D.ecm_pybamm,
                   help="sequences also run on PyBaMM's Thevenin model (agreement check)")
    p.add_argument("--threads", type=int, default=D.threads, help="torch threads (0: all cores)")
    args = p.parse_args(argv)
    return ValidationConfig(chemistry=tuple(args.chemistry or ()), arch=tuple(args.arch), out=args.out,
                            data=args.data or "", export=args.export, fit_ecm=args.fit_ecm, max_test=args.max_test,
                            max_holdout=args.max_holdout, speed_steps=args.speed_steps, ecm_pybamm=args.ecm_pybamm,
                            threads=args.threads)


def main(argv=None) -> dict:
    # -- config
    cfg = parse_args(argv)

    # -- validate (prints each chemistry's report as it is written)
    return validate_surrogates(cfg)


if __name__ == "__main__":
    main()
