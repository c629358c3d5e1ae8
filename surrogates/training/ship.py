"""Ship a trained model: its checkpoint copied to where the loaders find it by name, with a markdown card beside it.

* :func:`ship_surrogate`: a run's ``best.pt`` -> ``checkpoint_path(chemistry, arch)``
  (:func:`surrogates.models.surrogate.load_surrogate` reads it) and ``.md`` beside it.
* :func:`ship_diagnostic`: a diagnostic run's current version -> ``checkpoint_path(chemistry, kind)``
  (:func:`surrogates.diagnostics.load_diagnostic` reads it) and ``.md`` beside it.

Both are what ``experiments/train_surrogate.py --ship`` and ``experiments/train_diagnostics.py --ship``
run, and what ``experiments/build_cell.py`` calls for a user's cell. A card tells what the model was
trained on, its figures and the commands that rebuild it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from surrogates.common.files import atomic_path
from surrogates.training.card import reproduce_section


# --------------------------------------------------------------------------- reproducing a config
def config_flags(config: dict, defaults: dict, leading: dict) -> list[str]:
    """Command-line flags that rebuild ``config`` (a config as JSON-ready values, ``TrainingConfig.to_dict()``):
    ``leading`` (field -> value) first, then every other field whose value differs from ``defaults``.
    ``progress`` and ``resume`` are left out (they change nothing computed), and so are fields ``defaults``
    lacks (settings this version no longer has, from an old checkpoint). Lists and dicts are one quoted
    YAML/JSON value, booleans ``true``/``false``, as :func:`surrogates.common.cli.parse_config` reads them."""
    args = []
    for key, value in leading.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    for key, value in config.items():
        if key in leading or key in ("progress", "resume") or key not in defaults or value == defaults[key]:
            continue
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--" + key.replace("_", "-"), f"'{text}'" if isinstance(value, (list, dict)) or text == "" else text]
    return args


# --------------------------------------------------------------------------- surrogates
def surrogate_reproduce_args(config: dict) -> list[str]:
    """The ``train_surrogate.py`` flags that rebuild ``config`` (a resolved TrainConfig as a dict): arch,
    chemistry, data and every field that differs from its default."""
    from surrogates.training.surrogate import TrainConfig

    data = config["data"] or TrainConfig(chemistry=config["chemistry"], arch=config["arch"]).data_dir()
    return config_flags(config, TrainConfig().to_dict(),
                        {"arch": config["arch"], "chemistry": config["chemistry"], "data": data})


def surrogate_card(meta: dict, flags: list[str]) -> str:
    """The markdown card of a surrogate checkpoint: data, open-loop errors per split, how to reproduce.

    ``meta``: the checkpoint's ``meta`` (with ``test`` figures, as :func:`surrogates.training.surrogate.train`
    returns it); ``flags``: the ``train_surrogate.py`` command line that made it."""
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
    return f"""# {meta['chemistry']}-{meta['arch']} surrogate

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
        f"python experiments/train_surrogate.py {' '.join(flags)}"], meta["config"])


def ship_surrogate(summary: dict, flags: list[str] | None = None) -> Path | None:
    """Copy the best checkpoint of a finished run (``summary``: what :func:`surrogates.training.surrogate.train`
    returned) to ``checkpoint_path(chemistry, arch)`` and write its card beside it; the shipped path.

    ``flags``: the card's ``train_surrogate.py`` command line (default: the flags that rebuild the run's
    config, :func:`surrogate_reproduce_args`). An empty ``summary`` (a process other than rank 0 under
    ``torchrun``) ships nothing: ``None``."""
    if not summary:
        return None
    from surrogates.models.surrogate import checkpoint_path

    meta = summary["meta"]
    dest = checkpoint_path(meta["chemistry"], meta["arch"])
    with atomic_path(dest) as tmp:
        shutil.copyfile(summary["best"], tmp)
    card = surrogate_card(meta, surrogate_reproduce_args(meta["config"]) if flags is None else flags)
    dest.with_suffix(".md").write_text(card)
    print(f"shipped {dest} ({dest.stat().st_size / 1e6:.1f} MB) and its card")
    return dest


# --------------------------------------------------------------------------- diagnostics
def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def diagnostic_reproduce_args(config: dict) -> list[str]:
    """The ``train_diagnostics.py`` flags that rebuild ``config`` (a resolved DiagnosticConfig as a dict): kind,
    chemistry, data and every field that differs from its default (settings this version no longer has are left out)."""
    from surrogates.training.diagnostics import DiagnosticConfig

    data = config["data"] or DiagnosticConfig(kind=config["kind"], chemistry=config["chemistry"]).data_dir()
    return config_flags(config, DiagnosticConfig().to_dict(),
                        {"kind": config["kind"], "chemistry": config["chemistry"], "data": data})


def diagnostic_card(meta: dict, threshold: float, threshold_info: dict, model_config: dict | None = None) -> str:
    """The markdown card of a diagnostic checkpoint: what it flags, data, config, metrics per split, how to reproduce.

    ``meta``, ``threshold`` (in the kind's raw score units), ``threshold_info`` and ``model_config``: the
    checkpoint's entries of the same names (:func:`surrogates.diagnostics.diagnostic.make_blob`)."""
    from surrogates.diagnostics import diagnostic_kind

    plugin = diagnostic_kind(meta["kind"])
    d, m, cols = meta["data"], meta["metrics"], plugin.columns
    rows = [f"| {name} | " + " | ".join(_fmt(v.get(c, "")) for c in cols) + " |" for name, v in m.items()]
    gen_args = (plugin.dataset_flags.format(chemistry=meta["chemistry"])
                + f" --num-sequences {d['sequences']} --seed {d['dataset_seed']}")
    return f"""# {meta['chemistry']}-{meta['kind']} diagnostic, version {meta.get('version')}

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
                           f"python experiments/train_diagnostics.py {' '.join(diagnostic_reproduce_args(meta['config']))}",
                           f"python experiments/validate_diagnostics.py --chemistry {meta['chemistry']}"], meta["config"])


def ship_diagnostic(run_dir: str | Path, chemistry: str, kind: str) -> Path:
    """Copy the current version of the diagnostic run in ``run_dir`` to ``checkpoint_path(chemistry, kind)``
    and write its card beside it; the shipped path."""
    from surrogates.common.checkpoints import load_checkpoint
    from surrogates.diagnostics import VersionRegistry, checkpoint_path

    src = VersionRegistry(Path(run_dir)).path()
    dest = checkpoint_path(chemistry, kind)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    blob = load_checkpoint(dest)
    card = diagnostic_card(blob["meta"], blob["threshold"], blob["threshold_info"], blob["model_config"])
    dest.with_suffix(".md").write_text(card)
    print(f"shipped {src} -> {dest} ({dest.stat().st_size / 1e3:.0f} kB) and its card")
    return dest
