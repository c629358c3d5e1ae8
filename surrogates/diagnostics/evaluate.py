"""Metrics of a diagnostic on DFN sequences: window level, and per sequence (episode level).

Plating: AUROC and F1 of the window probabilities against the window labels (plating margin
< 0 V somewhere in the window), and per sequence after taking the max over its windows (label:
any plating in the sequence). OOD: the share of sequences whose max window score is >= 1
(flagged), which is the detection rate on out-of-distribution data and the false-positive rate
on in-distribution data, plus the window-level share.
"""

from __future__ import annotations

import numpy as np

from surrogates.diagnostics.metrics import auroc, confusion, per_sequence
from surrogates.diagnostics.windows import make_windows


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


def evaluate(diag, ds, stride: int = 1, aggregate: str = "max") -> dict:
    """Metrics of ``diag`` (a :class:`~surrogates.diagnostics.diagnostic.Diagnostic`) on every sequence of ``ds``
    long enough for one window (anything with ``arrays`` and ``lengths``)."""
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
