"""Metrics of a diagnostic on DFN sequences: window level, and per sequence (episode level).

Plating: AUROC and F1 of the window probabilities against the window labels (plating margin
< 0 V somewhere in the window), and per sequence after taking the max over its windows (label:
any plating in the sequence). OOD: the share of sequences whose max window score is >= 1
(flagged), which is the detection rate on out-of-distribution data and the false-positive rate
on in-distribution data, plus the window-level share. Degradation: R², MAPE and MAE of the
capacity each charge lost (the per-interval estimates summed over the charge) against the DFN's,
and R² of the per-interval losses.
"""

from __future__ import annotations

import numpy as np

from surrogates.diagnostics.metrics import auroc, confusion, per_sequence
from surrogates.diagnostics.windows import DEGRADATION_CHANNEL, make_windows, rest_padded_windows


def plating_metrics(prob: np.ndarray, label: np.ndarray, seq: np.ndarray, threshold: float) -> dict:
    """Window- and sequence-level metrics of plating probabilities ``prob`` at ``threshold``."""
    if len(prob) == 0:
        return {"windows": 0, "sequences": 0}
    cw = confusion(prob >= threshold, label)
    _, pmax = per_sequence(prob, seq, "max")
    _, lmax = per_sequence(label.astype(np.float64), seq, "max")
    ce = confusion(pmax >= threshold, lmax > 0.5)
    return {
        "windows": int(len(prob)), "window_positive_fraction": float(np.mean(label)),
        "window_auroc": auroc(prob, label), "window_f1": cw["f1"], "window_precision": cw["precision"],
        "window_recall": cw["recall"], "window_accuracy": cw["accuracy"],
        "sequences": int(len(pmax)), "sequence_positive_fraction": float(np.mean(lmax > 0.5)),
        "episode_auroc": auroc(pmax, lmax > 0.5), "episode_f1": ce["f1"], "episode_precision": ce["precision"],
        "episode_recall": ce["recall"], "episode_accuracy": ce["accuracy"], "threshold": float(threshold),
    }


def ood_metrics(score: np.ndarray, seq: np.ndarray, aggregate: str = "max") -> dict:
    """Share of sequences (and windows) at or above 1 for normalised OOD scores; ``sequence_scores`` kept
    separately (under ``_sequence_scores``) for AUROCs between sets."""
    if len(score) == 0:
        return {"windows": 0, "sequences": 0, "_sequence_scores": np.zeros(0)}
    _, agg = per_sequence(score, seq, aggregate)
    return {
        "windows": int(len(score)), "sequences": int(len(agg)),
        "flagged_fraction": float(np.mean(agg >= 1.0)), "window_flagged_fraction": float(np.mean(score >= 1.0)),
        "median_sequence_score": float(np.median(agg)), "_sequence_scores": agg,
    }


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination (NaN for fewer than two values)."""
    if len(true) < 2:
        return float("nan")
    ss = float(np.sum((true - true.mean()) ** 2))
    return 1.0 - float(np.sum((pred - true) ** 2)) / ss if ss > 0 else float("nan")


def degradation_metrics(pred_interval: np.ndarray, true_interval: np.ndarray, seq: np.ndarray, n_seq: int) -> dict:
    """Per-charge (summed) and per-interval agreement of predicted and DFN capacity losses [A.h]."""
    if len(seq) == 0:
        return {"windows": 0, "sequences": 0}
    pred = np.bincount(seq, weights=pred_interval, minlength=n_seq)
    true = np.bincount(seq, weights=true_interval, minlength=n_seq)
    used = np.bincount(seq, minlength=n_seq) > 0
    pred, true = pred[used], true[used]
    return {
        "windows": int(len(seq)), "sequences": int(used.sum()),
        "charge_r2": r2(pred, true),
        "charge_mape_percent": float(100 * np.mean(np.abs(pred - true) / np.maximum(np.abs(true), 1e-12))),
        "charge_mae_mah": float(1e3 * np.mean(np.abs(pred - true))),
        "charge_mean_loss_mah": float(1e3 * np.mean(true)),
        "charge_max_loss_mah": float(1e3 * np.max(true)),
        "interval_r2": r2(pred_interval, true_interval),
    }


def rest_voltage(chemistry: str, soc: np.ndarray, dt: float) -> np.ndarray:
    """Open-circuit voltage [V] at ``soc`` from the DFN's rest table (what the env's history starts at)."""
    from surrogates.models.features import Featurizer

    key = (chemistry, float(dt))
    if key not in _FEATURIZERS:  # tabulating the DFN at rest takes seconds: once per process
        _FEATURIZERS[key] = Featurizer.from_dfn(chemistry, dt=dt)
    return _FEATURIZERS[key].table("ocv", np.asarray(soc, dtype=np.float64))


_FEATURIZERS: dict = {}


def degradation_windows(ds, window: int, stride: int = 1):
    """Rest-padded windows of a degradation dataset (see :func:`rest_padded_windows`)."""
    if DEGRADATION_CHANNEL not in ds.arrays:
        raise ValueError(f"this dataset has no {DEGRADATION_CHANNEL!r} channel; make one with "
                         "`python experiments/generate_data.py --config experiments/configs/degradation_data.yml "
                         "--out data/nmc-degradation`")
    rest = ds.initial.get("rest_voltage")  # a dataset may carry its own; else the DFN's OCV table
    if rest is None:
        rest = rest_voltage(ds.meta["chemistry"], ds.initial["soc"], ds.dt)
    return rest_padded_windows(ds.arrays, ds.lengths, rest, ds.initial["ambient_temperature"], window, stride)


def evaluate(diag, ds, stride: int = 1, aggregate: str = "max") -> dict:
    """Metrics of ``diag`` (a :class:`~surrogates.diagnostics.diagnostic.Diagnostic`) on every sequence of ``ds``
    long enough for one window (anything with ``arrays`` and ``lengths``); for the degradation
    estimator, every interval of every sequence (charge-level sums need all of them)."""
    if diag.kind == "degradation":
        w = degradation_windows(ds, diag.window)
        return degradation_metrics(diag.score_windows(w.x), w.target, w.seq, len(ds))
    w = make_windows(ds.arrays, ds.lengths, diag.window, stride)
    s = diag.score_windows(w.x)
    if diag.kind == "plating":
        return plating_metrics(s, w.label, w.seq, diag.threshold)
    return ood_metrics(s, w.seq, aggregate)


def separation(ood: dict, ind: dict) -> float:
    """AUROC of per-sequence OOD scores: out-of-distribution set (positive) against in-distribution (negative)."""
    a, b = ood["_sequence_scores"], ind["_sequence_scores"]
    return auroc(np.concatenate([a, b]), np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)])


def public(metrics: dict) -> dict:
    """``metrics`` without the private arrays, NaN (undefined, e.g. an AUROC of one class) as None: valid JSON."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items() if not k.startswith("_")}
