"""Figures of a diagnostic on DFN sequences, the same way for every kind (its plug-in says which).

Plating: AUROC and F1 of the window probabilities against the window labels (plating margin
< 0 V somewhere in the window), and per sequence after taking the max over its windows (label:
any plating in the sequence). OOD: the share of sequences whose max window score is >= 1
(flagged), which is the detection rate on out-of-distribution data and the false-positive rate
on in-distribution data, plus the window-level share. Degradation: R², MAPE and MAE of the
lithium each charge lost for good (the per-interval estimates summed over the charge) against the
DFN's ``lithium_irreversible``, and R² of the per-interval losses. Windows are rest-padded before each sequence, as the env
serves them (:func:`surrogates.diagnostics.windows.dataset_windows`).
"""

from __future__ import annotations


def evaluate(diag, ds, stride: int = 1, aggregate: str = "max") -> dict:
    """Figures of ``diag`` (a :class:`~surrogates.diagnostics.diagnostic.Diagnostic`) on every sequence of
    ``ds`` (a :class:`~surrogates.data.dataset.Dataset`), windows every ``stride`` intervals (every
    interval for a diagnostic whose scores add up over a charge)."""
    w = diag.plugin.eval_windows(ds, diag.window, stride)
    return diag.plugin.metrics(diag.score_windows(w.x), w, len(ds), diag.threshold, aggregate)


def evaluate_sets(diag, sets: dict, stride: int = 1, aggregate: str = "max") -> dict:
    """:func:`evaluate` on each of ``sets`` (name -> Dataset), then the kind's comparisons between them
    (OOD: ``auroc_vs_test``); JSON-ready (:func:`public`)."""
    results = {name: evaluate(diag, ds, stride, aggregate) for name, ds in sets.items()}
    diag.plugin.compare(results)
    return {name: public(m) for name, m in results.items()}


def public(metrics: dict) -> dict:
    """``metrics`` without the private arrays, NaN (undefined, e.g. an AUROC of one class) as None: valid JSON."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items() if not k.startswith("_")}
