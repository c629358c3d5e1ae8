"""How far is a surrogate from the DFN on protocols it never saw? Errors, an ECM beside it, speed.

Everything is open loop over whole held-out DFN sequences: each model gets the initial SOC,
the ambient temperature and the applied currents, nothing else. Errors are reported per
protocol family and overall, in physical units: voltage MAE/RMSE [mV] and MSE [V^2],
temperature MAE [K], plating-margin MAE [mV]. The equivalent-circuit baseline is PyBaMM's
Thevenin model fitted to the same training data (:mod:`surrogates.baselines.ecm`); it has no plating
margin. Speed is wall time per simulated cell-interval stepping a batch, as the env does.

A small validation set (held-out test sequences of every family plus the family held out
of training) is shipped in ``surrogates/validation/<chemistry>.h5`` so this runs on a
fresh clone; :func:`export_validation_set` writes it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import h5py
import numpy as np

from surrogates.common.channels import LEARNED_CHANNELS
from surrogates.common.tables import markdown_table as table

VALIDATION_DIR = Path(__file__).resolve().parent


def validation_dir(chemistry: str) -> Path:
    """Where ``chemistry``'s held-out sets live: :data:`VALIDATION_DIR` for a shipped cell, the cell's folder for a user's."""
    from surrogates.physics.chemistry import artefact_dir

    return artefact_dir(chemistry, "validation", VALIDATION_DIR)


_CHANNELS = ("current", "voltage", "temperature", "plating_margin", "voltage_max", "temperature_max", "plating_margin_min")


# --------------------------------------------------------------------------- the shipped set
def export_validation_set(ds, rows: dict[str, np.ndarray], path: str | Path, fingerprint_of_training: str) -> Path:
    """Write sequences ``rows`` (split name -> row indices of ``ds``) to a compact HDF5 file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows.values()])
    splits = np.concatenate([[name] * len(r) for name, r in rows.items()])
    sub = ds.subset(order)
    L = int(sub.lengths.max())
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        for ch in _CHANNELS:
            f.create_dataset(ch, data=sub.arrays[ch][:, :L], compression="gzip", compression_opts=9, shuffle=True,
                             track_times=False)
        f.create_dataset("lengths", data=sub.lengths, track_times=False)
        f.create_dataset("soc0", data=sub.initial["soc"], track_times=False)
        f.create_dataset("ambient_temperature", data=sub.initial["ambient_temperature"], track_times=False)
        f.create_dataset("family", data=np.array(sub.families, dtype=object), dtype=h5py.string_dtype(), track_times=False)
        f.create_dataset("split", data=np.array(splits, dtype=object), dtype=h5py.string_dtype(), track_times=False)
        f.create_dataset("index", data=sub.indices, track_times=False)
        meta = {k: ds.meta[k] for k in ("chemistry", "parameter_set", "dt", "seed", "pybamm_version", "config",
                                          "package_versions", "git_revision")}
        meta["training_data_fingerprint"] = fingerprint_of_training
        f.attrs["meta"] = json.dumps(meta)
    os.replace(tmp, path)
    return path


class ValidationSet:
    """Held-out DFN sequences: ``arrays`` channel -> ``[N, L]`` (NaN padded), ``lengths``, ``soc0``,
    ``ambient`` [K], ``families``, ``splits`` ('test' or 'holdout'), ``meta``."""

    def __init__(self, path: str | Path, dt: float | None = None, chemistry: str | None = None):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no validation set at {path}; export one with experiments/validate_surrogates.py --export")
        with h5py.File(path, "r") as f:
            self.arrays = {ch: f[ch][...] for ch in _CHANNELS}
            self.lengths = f["lengths"][...].astype(np.int64)
            self.soc0 = f["soc0"][...].astype(np.float64)
            self.ambient = f["ambient_temperature"][...].astype(np.float64)
            self.families = f["family"].asstr()[...].astype(str)
            self.splits = f["split"].asstr()[...].astype(str)
            self.meta = json.loads(f.attrs["meta"])
        if dt is not None and abs(float(dt) - float(self.meta["dt"])) > 1e-9:
            raise ValueError(f"{path} was made for dt={self.meta['dt']} s, not {dt} s")
        if chemistry is not None and chemistry != self.meta["chemistry"]:
            raise ValueError(f"{path} holds {self.meta['chemistry']} sequences, not {chemistry}")
        self.mask = np.arange(self.arrays["voltage"].shape[1])[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def current(self) -> np.ndarray:
        return np.nan_to_num(self.arrays["current"])


# --------------------------------------------------------------------------- errors
def errors(pred: dict[str, np.ndarray], vs: ValidationSet, rows: np.ndarray | None = None) -> dict[str, float]:
    """Open-loop errors of ``pred`` (channel -> ``[N, L]``) against the DFN on ``rows`` (default all)."""
    rows = np.arange(len(vs)) if rows is None else rows
    mask = vs.mask[rows]
    out: dict[str, float] = {"sequences": int(len(rows)), "steps": int(mask.sum())}
    for ch in LEARNED_CHANNELS:
        if ch not in pred:
            continue
        e = (pred[ch][rows] - vs.arrays[ch][rows])[mask]
        scale = 1.0 if ch == "temperature" else 1e3
        unit = "K" if ch == "temperature" else "mV"
        out[f"{ch}_mae_{unit}"] = float(np.mean(np.abs(e)) * scale)
        out[f"{ch}_rmse_{unit}"] = float(np.sqrt(np.mean(e**2)) * scale)
        out[f"{ch}_mse"] = float(np.mean(e**2))
    return out


def breakdown(pred: dict[str, np.ndarray], vs: ValidationSet) -> dict[str, dict[str, float]]:
    """Errors overall on held-out test sequences, per protocol family, and on the held-out family."""
    out = {}
    test = np.flatnonzero(vs.splits == "test")
    out["test (all families)"] = errors(pred, vs, test)
    for fam in sorted(set(vs.families[test])):
        out[f"test: {fam}"] = errors(pred, vs, test[vs.families[test] == fam])
    held = np.flatnonzero(vs.splits == "holdout")
    if len(held):
        out[f"holdout family: {', '.join(sorted(set(vs.families[held])))}"] = errors(pred, vs, held)
    return out


# --------------------------------------------------------------------------- speed
def step_time(surrogate, batch: int, steps: int = 50, c_rate: float = 1.0) -> float:
    """Wall seconds per simulated cell-interval when stepping ``batch`` cells, as the env does."""
    import torch

    soc0 = np.full(batch, 0.2)
    state = surrogate.initial_state(soc0, np.full(batch, 298.15))
    current = np.full(batch, -c_rate * surrogate.capacity_ah)
    with torch.no_grad():
        for _ in range(3):  # warm-up
            _, state = surrogate.step(state, current)
        t0 = time.perf_counter()
        for _ in range(steps):
            _, state = surrogate.step(state, current)
        wall = time.perf_counter() - t0
    return wall / (steps * batch)


def dfn_step_time(chemistry: str, dt: float, steps: int = 30, c_rate: float = 1.0) -> float:
    """Wall seconds per 10 s interval of :class:`surrogates.physics.dfn.DFNSimulator.step` (one cell)."""
    from surrogates.physics.dfn import DFNSimulator

    sim = DFNSimulator(chemistry, dt=dt)
    sim.reset(0.2, 298.15)
    sim.step(-c_rate * sim.one_c)
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step(-c_rate * sim.one_c)
    return (time.perf_counter() - t0) / steps


# --------------------------------------------------------------------------- report
def markdown_table(results: dict[str, dict[str, dict[str, float]]], speed: dict[str, dict[str, float]] | None = None) -> str:
    """``results[model][split] -> errors`` as one markdown table (plus a speed table)."""
    rows = [(model, split, m) for model, splits in results.items() for split, m in splits.items()]
    text = table(rows, [
        ("model", lambda r: r[0]), ("split", lambda r: r[1]), ("seqs", lambda r: r[2]["sequences"]),
        ("V MAE [mV]", lambda r: f"{r[2]['voltage_mae_mV']:.2f}"), ("V RMSE [mV]", lambda r: f"{r[2]['voltage_rmse_mV']:.2f}"),
        ("V MSE [V^2]", lambda r: f"{r[2]['voltage_mse']:.2e}"), ("T MAE [K]", lambda r: f"{r[2]['temperature_mae_K']:.3f}"),
        ("plating margin MAE [mV]",
         lambda r: f"{r[2]['plating_margin_mae_mV']:.2f}" if "plating_margin_mae_mV" in r[2] else "n/a"),
    ])
    if speed:
        dfn = speed.get("DFN (PyBaMM)", {}).get("batch_1")

        def ratio(s: dict) -> str:
            b1024 = s.get("batch_1024")
            return (f"{dfn / b1024:,.0f}x" if dfn else "-") if b1024 else "1x"

        text += "\n\n" + table(list(speed.items()), [
            ("model", lambda r: r[0]), ("s per cell-step, batch 1", lambda r: f"{r[1]['batch_1']:.2e}"),
            ("s per cell-step, batch 1024", lambda r: f"{r[1]['batch_1024']:.2e}" if r[1].get("batch_1024") else "-"),
            ("speed-up vs DFN at 1024", lambda r: ratio(r[1])),
        ])
    return text


def plot_sequences(preds: dict[str, dict[str, np.ndarray]], vs: ValidationSet, rows: list[int], path: str | Path, dt: float,
                   capacity_ah: float) -> None:
    """Predicted vs DFN voltage, temperature and plating margin for a few sequences (one column each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, len(rows), figsize=(4.2 * len(rows), 9), sharex="col", squeeze=False)
    for j, r in enumerate(rows):
        n = int(vs.lengths[r])
        t = np.arange(1, n + 1) * dt / 60
        axes[0, j].step(t, -vs.arrays["current"][r, :n] / capacity_ah, "k", where="pre", lw=1)
        axes[0, j].set_title(f"{vs.families[r]} ({vs.splits[r]})", fontsize=9)
        for i, (ch, scale, label) in enumerate([("voltage", 1, "V [V]"), ("temperature", 1, "T [K]"),
                                               ("plating_margin", 1e3, "plating margin [mV]")], start=1):
            axes[i, j].plot(t, vs.arrays[ch][r, :n] * scale, "k", lw=2, label="DFN")
            for name, p in preds.items():
                if ch in p:
                    axes[i, j].plot(t, p[ch][r, :n] * scale, lw=1, label=name)
            if j == 0:
                axes[i, j].set_ylabel(label)
        axes[0, j].set_ylabel("charge C-rate" if j == 0 else "")
        axes[-1, j].set_xlabel("time [min]")
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
