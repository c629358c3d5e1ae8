"""Train a learned diagnostic (plating detector, OOD detector, degradation estimator) on DFN windows, and optionally ship it.

    python experiments/train_diagnostics.py --kind plating --chemistry nmc --data data/nmc
    python experiments/train_diagnostics.py --kind degradation --chemistry nmc --data data/nmc-degradation --ship
    python experiments/train_diagnostics.py --kind ood --chemistry nmc --data data/nmc --ship
    python experiments/train_diagnostics.py --kind ood --chemistry nmc --rollback [--ship]   # previous version back
    python experiments/train_diagnostics.py --kind ood --chemistry nmc --versions            # list versions
    python experiments/train_diagnostics.py --kind ood --chemistry nmc --ship-only           # ship the current version

Writes runs/diagnostics/<chemistry>-<kind>/ (config.json, history.json, TensorBoard events
under tb/, last.pt while training, and versions/vNNN/ with each (re)training's checkpoint,
threshold and metrics). Rerunning an interrupted command resumes it; rerunning a finished one
retrains and publishes the next version (the OOD threshold is recalibrated every time).
``--ship`` copies the current version to surrogates/diagnostics/checkpoints/<chemistry>-<kind>.pt
with a card beside it; ``--rollback`` makes the previous version current again (checkpoint and
threshold) and, with ``--ship``, ships it.
"""
# The work is surrogates.training.diagnostics.train_diagnostic and surrogates.training.ship.ship_diagnostic
# (build_cell.py calls them too); this file parses, calls and lists versions.

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.training.diagnostics import DiagnosticConfig, train_diagnostic  # noqa: E402
from surrogates.training.ship import ship_diagnostic  # noqa: E402


def _extra(parser):
    parser.add_argument("--ship", action="store_true",
                        help="copy the current version into surrogates/diagnostics/checkpoints/ with a card")
    parser.add_argument("--rollback", action="store_true",
                        help="do not train: make the previous version current again (with --ship: ship it)")
    parser.add_argument("--versions", action="store_true", help="do not train: list the versions and exit")
    parser.add_argument("--ship-only", action="store_true", help="do not train: ship the current version")


def main(argv=None) -> dict:
    # -- config
    argv = list(sys.argv[1:] if argv is None else argv)
    config, args = parse_config(DiagnosticConfig, argv, description=__doc__, extra=_extra)
    run_dir = config.run_dir()

    from surrogates.diagnostics import VersionRegistry

    registry = VersionRegistry(run_dir)
    if args.versions:
        for v in registry.versions():
            m = registry.metrics(v)
            mark = "*" if v == registry.current() else " "
            print(f"{mark} {v} threshold {m['threshold']:.5g} " + json.dumps(
                {k: {kk: round(vv, 4) for kk, vv in s.items() if kk in ("window_auroc", "flagged_fraction", "charge_r2")}
                 for k, s in m["metrics"].items()}))
        return {"versions": registry.versions(), "current": registry.current()}

    if args.ship_only:
        ship_diagnostic(run_dir, config.chemistry, config.kind)
        return {"version": registry.current(), "path": str(registry.path())}

    # -- rollback instead of training
    if args.rollback:
        before = registry.current()
        version = registry.rollback()
        print(f"rolled back {run_dir}: {before} -> {version} (threshold {registry.metrics(version)['threshold']:.5g})")
        if args.ship:
            ship_diagnostic(run_dir, config.chemistry, config.kind)
        return {"version": version, "path": str(registry.path(version))}

    # -- train (resumes an interrupted run), calibrate, test, publish a version
    summary = train_diagnostic(config)

    # -- ship
    if args.ship:
        ship_diagnostic(run_dir, config.chemistry, config.kind)
    return summary


if __name__ == "__main__":
    main()
