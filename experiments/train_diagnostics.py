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

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.common.files import atomic_path  # noqa: E402
from surrogates.training.card import reproduce_section  # noqa: E402
from surrogates.training.diagnostics import DiagnosticConfig, train_diagnostic  # noqa: E402


def _extra(parser):
    parser.add_argument("--ship", action="store_true",
                        help="copy the current version into surrogates/diagnostics/checkpoints/ with a card")
    parser.add_argument("--rollback", action="store_true",
                        help="do not train: make the previous version current again (with --ship: ship it)")
    parser.add_argument("--versions", action="store_true", help="do not train: list the versions and exit")
    parser.add_argument("--ship-only", action="store_true", help="do not train: ship the current version")


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def reproduce_args(config: dict) -> list[str]:
    """The flags that rebuild ``config`` (a resolved DiagnosticConfig as a dict): kind, chemistry, data and
    every field that differs from its default (settings this version no longer has are left out)."""
    defaults = DiagnosticConfig().to_dict()
    data = config["data"] or DiagnosticConfig(kind=config["kind"], chemistry=config["chemistry"]).data_dir()
    args = ["--kind", config["kind"], "--chemistry", config["chemistry"], "--data", data]
    for key, value in config.items():
        if key in ("kind", "chemistry", "data", "progress", "resume") or key not in defaults or value == defaults[key]:
            continue
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--" + key.replace("_", "-"), f"'{text}'" if isinstance(value, (list, dict)) or text == "" else text]
    return args


def write_card(path: Path, meta: dict, threshold: float, threshold_info: dict, model_config: dict | None = None) -> None:
    """A small markdown card beside a shipped diagnostic: data, config, metrics, how to reproduce."""
    from surrogates.diagnostics import diagnostic_kind

    plugin = diagnostic_kind(meta["kind"])
    d, m, cols = meta["data"], meta["metrics"], plugin.columns
    rows = [f"| {name} | " + " | ".join(_fmt(v.get(c, "")) for c in cols) + " |" for name, v in m.items()]
    gen_args = (plugin.dataset_flags.format(chemistry=meta["chemistry"])
                + f" --num-sequences {d['sequences']} --seed {d['dataset_seed']}")
    text = f"""# {meta['chemistry']}-{meta['kind']} diagnostic, version {meta.get('version')}

{plugin.describe(threshold, threshold_info, meta)}

{meta['parameters'] / 1e3:.1f}k parameters, window {meta['window']} intervals of dt = {meta['dt']} s; model `{json.dumps(model_config or {})}`.
Trained {meta['train_minutes']:.1f} min ({meta['epochs_run']} epochs; {meta['machine']}), git {meta['git_revision']}.

Data: `{d['path']}` fingerprint `{d['fingerprint']}`: {d['sequences']} sequences (dataset seed {d['dataset_seed']},
{d['parameter_set']}, PyBaMM {d['pybamm_version']}), {d['train_sequences']} for training ({d['train_windows']} windows);
{f"protocol family `{d['holdout_family']}` held out of training (the surrogates' split)" if d['holdout_family'] else "no protocol family held out; test = held-out charges"}.

| split | {' | '.join(cols)} |
|---|{'---|' * len(cols)}
{chr(10).join(rows)}

""" + reproduce_section([f"python experiments/generate_data.py {gen_args} --out {d['path']}",
                           f"python experiments/train_diagnostics.py {' '.join(reproduce_args(meta['config']))}",
                           f"python experiments/validate_diagnostics.py --chemistry {meta['chemistry']}"], meta["config"])
    path.write_text(text)


def ship(run_dir: Path, chemistry: str, kind: str) -> Path:
    """Copy the run's current version to the shipped location, with its card."""
    import torch

    from surrogates.diagnostics import VersionRegistry, checkpoint_path

    src = VersionRegistry(run_dir).path()
    dest = checkpoint_path(chemistry, kind)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    blob = torch.load(dest, map_location="cpu", weights_only=False)
    write_card(dest.with_suffix(".md"), blob["meta"], blob["threshold"], blob["threshold_info"], blob["model_config"])
    print(f"shipped {src} -> {dest} ({dest.stat().st_size / 1e3:.0f} kB) and its card")
    return dest


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
        ship(run_dir, config.chemistry, config.kind)
        return {"version": registry.current(), "path": str(registry.path())}

    # -- rollback instead of training
    if args.rollback:
        before = registry.current()
        version = registry.rollback()
        print(f"rolled back {run_dir}: {before} -> {version} (threshold {registry.metrics(version)['threshold']:.5g})")
        if args.ship:
            ship(run_dir, config.chemistry, config.kind)
        return {"version": version, "path": str(registry.path(version))}

    # -- train (resumes an interrupted run), calibrate, test, publish a version
    summary = train_diagnostic(config)

    # -- ship
    if args.ship:
        ship(run_dir, config.chemistry, config.kind)
    return summary


if __name__ == "__main__":
    main()
