"""Validate surrogates against the PyBaMM DFN, next to a fitted ECM: what ``experiments/validate_surrogates.py`` runs.

Per chemistry, :func:`validate_surrogates` optionally rebuilds the held-out set
(:func:`export_heldout`) and refits the ECM (:func:`refit_ecm`) from a dataset with the surrogates'
training split, then runs every shipped checkpoint and the ECM open loop over the held-out
sequences (:func:`validate_cell`) and writes ``<out>/<chemistry>.md`` (tables), ``.json`` (errors
and speed) and ``.png`` (predicted vs DFN). The pieces are in :mod:`surrogates.validation.heldout`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surrogates.validation.heldout import (ValidationSet, breakdown, dfn_step_time, export_validation_set,
                                           markdown_table, plot_sequences, step_time, validation_dir)

ARCHS = ("transformer", "mamba", "jepa")
ECM = "ECM (Thevenin)"
"""The ECM's name in the report's tables."""


@dataclass
class ValidationConfig:
    """What to validate, and whether to rebuild the held-out set and the ECM first."""

    chemistry: tuple[str, ...] = ()
    """Cells to validate (empty: every shipped cell)."""
    arch: tuple[str, ...] = ARCHS
    """Architectures (those with a shipped checkpoint run)."""
    out: str = "runs/validation"
    """Report folder."""
    data: str = ""
    """Dataset folder for ``export`` / ``fit_ecm`` ('': data/<chemistry>)."""
    export: bool = False
    """Rebuild the held-out set (surrogates/validation/<chemistry>.h5, or the user cell's) from ``data``."""
    fit_ecm: bool = False
    """Refit the ECM baseline (surrogates/baselines/fits/<chemistry>-ecm.json, or the user cell's) on ``data``."""
    max_test: int = 60
    """``export``: test sequences kept."""
    max_holdout: int = 30
    """``export``: held-out-family sequences kept."""
    speed_steps: int = 30
    """Intervals timed per speed measurement."""
    ecm_pybamm: int = 3
    """Sequences also run on PyBaMM's Thevenin model (agreement check of the numpy ECM)."""
    threads: int = 0
    """torch threads (0: all cores)."""


# --------------------------------------------------------------------------- rebuilding the set and the ECM
def training_split(chemistry: str, data: str = ""):
    """The dataset at ``data`` (default data/<chemistry>) and its rows split as the surrogates train on it
    (:class:`~surrogates.training.surrogate.TrainConfig`'s fractions, seed and held-out family), so the
    held-out set and the ECM never see a surrogate's validation or test sequences: ``(ds, {name: rows})``."""
    from surrogates.data.dataset import open_dataset
    from surrogates.training.surrogate import TrainConfig

    tc = TrainConfig(chemistry=chemistry)
    ds = open_dataset(data or f"data/{chemistry}", dt=tc.dt, chemistry=chemistry)
    split = ds.split(tc.val_fraction, tc.test_fraction, seed=tc.seed, holdout_family=tc.holdout_family,
                     min_length=tc.min_length)
    return ds, split


def export_heldout(ds, split: dict, path: str | Path, max_test: int = 60, max_holdout: int = 30) -> Path:
    """Write at most ``max_test`` test and ``max_holdout`` held-out-family sequences of ``split`` (a fixed
    random pick: seed 0, rows in dataset order) to the held-out set at ``path``."""
    rng = np.random.default_rng(0)
    keep = {"test": np.sort(rng.permutation(split["test"])[:max_test]),
            "holdout": np.sort(rng.permutation(split["holdout"])[:max_holdout])}
    return export_validation_set(ds, keep, path, ds.fingerprint())


def refit_ecm(ds, split: dict, path: str | Path, data: str) -> float:
    """Fit the ECM on the training rows of ``split`` and write it to ``path`` (``data``: the dataset's folder,
    recorded in the fit's info); the fit's wall time [s]."""
    from surrogates.baselines.ecm import fit_ecm
    from surrogates.models.features import Featurizer

    path = Path(path)
    t0 = time.perf_counter()
    params = fit_ecm(ds.subset(split["train"]), Featurizer.from_dataset(ds))
    params.info.update(data=str(data), data_fingerprint=ds.fingerprint(), fit_wall_s=round(time.perf_counter() - t0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(params.to_dict(), indent=1))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- one cell
def validate_cell(chemistry: str, out_dir: str | Path, archs=ARCHS, speed_steps: int = 30,
                  ecm_pybamm: int = 3) -> tuple[dict, str]:
    """Every shipped checkpoint of ``archs`` and the fitted ECM (when there is one) against ``chemistry``'s
    held-out set; writes ``<out_dir>/<chemistry>.md``, ``.json`` and ``.png`` (the png only when a surrogate
    ran: its capacity scales the current panel) and prints one line per model.

    Returns ``({"errors": model -> split -> errors, "speed": model -> wall s per cell-interval}, markdown)``.
    """
    from surrogates.baselines.ecm import ECMParameters, ecm_fit_path, simulate_ecm_numpy, simulate_ecm_pybamm
    from surrogates.models.surrogate import checkpoint_path, load_surrogate

    out_dir = Path(out_dir)
    set_path = validation_dir(chemistry) / f"{chemistry}.h5"
    ecm_path = ecm_fit_path(chemistry)
    vs = ValidationSet(set_path, chemistry=chemistry)
    dt = float(vs.meta["dt"])
    preds, results, speed, capacity = {}, {}, {}, None

    # -- the surrogates
    for arch in archs:
        if not checkpoint_path(chemistry, arch).exists():
            print(f"{chemistry}/{arch}: no shipped checkpoint, skipped")
            continue
        s = load_surrogate(chemistry, arch, dt=dt)
        capacity = s.capacity_ah
        t0 = time.perf_counter()
        preds[arch] = s.simulate(vs.current, vs.soc0, vs.ambient, dt=dt)
        results[arch] = breakdown(preds[arch], vs)
        speed[arch] = {"batch_1": step_time(s, 1, speed_steps), "batch_1024": step_time(s, 1024, speed_steps),
                       "sequence_forward_s": time.perf_counter() - t0}
        print(f"{chemistry}/{arch}: V MAE {results[arch]['test (all families)']['voltage_mae_mV']:.2f} mV")

    # -- the ECM, and its numpy simulation checked against PyBaMM's Thevenin model on a few sequences
    if ecm_path.exists():
        params = ECMParameters.from_dict(json.loads(ecm_path.read_text()))
        preds[ECM] = simulate_ecm_numpy(params, vs.current, vs.soc0, vs.ambient, dt=dt)
        results[ECM] = breakdown(preds[ECM], vs)
        rows = np.flatnonzero(vs.splits == "test")[:ecm_pybamm]
        t1 = time.perf_counter()
        gap = []
        for r in rows:
            n = int(vs.lengths[r])
            ref = simulate_ecm_pybamm(params, vs.current[r, :n], vs.soc0[r], vs.ambient[r], dt=dt)
            gap.append(np.max(np.abs(ref["voltage"] - preds[ECM]["voltage"][r, :n])))
        steps = int(vs.lengths[rows].sum()) or 1
        speed["ECM (Thevenin, PyBaMM)"] = {"batch_1": (time.perf_counter() - t1) / steps}
        if gap:
            print(f"{chemistry}/ECM: numpy vs PyBaMM Thevenin, max |dV| over {len(rows)} sequences: {max(gap) * 1e3:.2f} mV")
        results[ECM]["_pybamm_agreement_max_dV_mV"] = {"value": float(max(gap) * 1e3) if gap else None}
    speed["DFN (PyBaMM)"] = {"batch_1": dfn_step_time(chemistry, dt, steps=speed_steps)}

    # -- report: entries starting with "_" are checks, not splits, and stay out of the table
    table_results = {m: {k: v for k, v in r.items() if not k.startswith("_")} for m, r in results.items()}
    text = (f"# {chemistry}: surrogates vs the PyBaMM DFN ({vs.meta['parameter_set']}, PyBaMM {vs.meta['pybamm_version']}, "
            f"dt = {dt} s)\n\nValidation set `{set_path.name}`: {int((vs.splits == 'test').sum())} held-out test "
            f"sequences of every family + {int((vs.splits == 'holdout').sum())} of a family never trained on; "
            "open loop over whole sequences.\n\n" + markdown_table(table_results, speed) + "\n")
    (out_dir / f"{chemistry}.md").write_text(text)
    (out_dir / f"{chemistry}.json").write_text(json.dumps({"errors": results, "speed_s_per_cell_step": speed}, indent=2))
    # the figure: the first test sequence of (up to) four families, and the first held-out-family one
    test_rows = np.flatnonzero(vs.splits == "test")
    pick = [int(test_rows[vs.families[test_rows] == f][0]) for f in sorted(set(vs.families[test_rows]))][:4]
    pick += [int(np.flatnonzero(vs.splits == "holdout")[0])] if (vs.splits == "holdout").any() else []
    if capacity is not None:
        plot_sequences(preds, vs, pick, out_dir / f"{chemistry}.png", dt, capacity)
    return {"errors": results, "speed": speed}, text


# --------------------------------------------------------------------------- every cell
def validate_surrogates(cfg: ValidationConfig) -> dict:
    """Per ``cfg``: for each chemistry, rebuild the held-out set and the ECM if asked, validate
    (:func:`validate_cell`) and print the report; returns chemistry -> ``{"errors", "speed"}``."""
    import torch

    from surrogates.baselines.ecm import ecm_fit_path
    from surrogates.physics.chemistry import CHEMISTRIES

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # denormals slow the recurrent models' CPU steps, which the speed table times
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {}
    for chem in cfg.chemistry or sorted(CHEMISTRIES):
        # -- (re)build the held-out set and the ECM from a dataset, with the training split
        if cfg.export or cfg.fit_ecm:
            data = cfg.data or f"data/{chem}"
            ds, split = training_split(chem, data)
            if cfg.export:
                set_path = export_heldout(ds, split, validation_dir(chem) / f"{chem}.h5", cfg.max_test, cfg.max_holdout)
                print(f"exported {set_path} ({set_path.stat().st_size / 1e6:.2f} MB)")
            if cfg.fit_ecm:
                seconds = refit_ecm(ds, split, ecm_fit_path(chem), data)
                print(f"fitted {ecm_fit_path(chem)} in {seconds:.0f} s")

        # -- the models on the held-out set, and the report
        report[chem], text = validate_cell(chem, out_dir, cfg.arch, cfg.speed_steps, cfg.ecm_pybamm)
        print(text)
    return report
