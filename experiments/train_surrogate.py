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

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.common.files import atomic_path  # noqa: E402
from surrogates.training.card import reproduce_section  # noqa: E402
from surrogates.training.surrogate import TrainConfig, train  # noqa: E402


def _extra(parser):
    parser.add_argument("--ship", action="store_true",
                        help="copy the best checkpoint into surrogates/models/checkpoints/ with a card")


def write_card(path: Path, meta: dict, argv: list[str]) -> None:
    """A small markdown card beside a shipped checkpoint: data, config, figures, how to reproduce."""
    val, test = meta["validation"], meta.get("test", {})
    rows = []
    for name, m in [("validation", val), *test.items()]:
        rows.append(f"| {name} | {m['sequences']} | {m['voltage_mae_mV']:.2f} | {m['voltage_rmse_mV']:.2f} | "
                    f"{m['temperature_mae_K']:.3f} | {m['plating_margin_mae_mV']:.2f} |")
    ro = meta.get("jepa_readout_only_validation")
    extra = ""
    if ro:
        extra = (f"\nJEPA readout only (frozen pretrained latents), validation: voltage MAE {ro['voltage_mae_mV']:.2f} mV, "
                 f"temperature MAE {ro['temperature_mae_K']:.3f} K, plating-margin MAE {ro['plating_margin_mae_mV']:.2f} mV.\n")
    d = meta["data"]
    text = f"""# {meta['chemistry']}-{meta['arch']} surrogate

{meta['arch']} ({meta['parameters'] / 1e3:.0f}k parameters), {meta['chemistry']} ({d['parameter_set']}, PyBaMM {d['pybamm_version']}, DFN + lumped thermal), dt = {meta['dt']} s.
Trained {meta['train_minutes']:.1f} min ({meta['epoch'] + 1} epochs; {meta['machine']}), git {meta['git_revision']}.

Data: `{d['path']}` fingerprint `{d['fingerprint']}`: {d['sequences']} sequences (dataset seed {d['dataset_seed']}),
{d['train_sequences']} for training ({d['train_steps']} intervals); protocol family `{d['holdout_family']}` held out of training.

Open-loop errors against the DFN over whole sequences (from initial state and currents only):

| split | sequences | V MAE [mV] | V RMSE [mV] | T MAE [K] | plating margin MAE [mV] |
|---|---|---|---|---|---|
{chr(10).join(rows)}
{extra}
""" + reproduce_section([
        f"python experiments/generate_data.py --chemistry {meta['chemistry']} --num-sequences {d['sequences']} "
        f"--seed {d['dataset_seed']} --out {d['path']}",
        f"python experiments/train_surrogate.py {' '.join(argv)}"], meta["config"])
    path.write_text(text)


def main(argv=None) -> dict:
    # -- config
    argv = list(sys.argv[1:] if argv is None else argv)
    config, args = parse_config(TrainConfig, argv, description=__doc__, extra=_extra)

    # -- train (resumes from the run folder)
    summary = train(config)

    # -- ship
    if args.ship and summary:
        from surrogates.models.surrogate import checkpoint_path

        dest = checkpoint_path(config.chemistry, config.arch)
        with atomic_path(dest) as tmp:
            shutil.copyfile(summary["best"], tmp)
        write_card(dest.with_suffix(".md"), summary["meta"], [a for a in argv if a != "--ship"])
        print(f"shipped {dest} ({dest.stat().st_size / 1e6:.1f} MB) and its card")
    return summary


if __name__ == "__main__":
    main()
