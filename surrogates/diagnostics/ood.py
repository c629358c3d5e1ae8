"""The out-of-distribution detector: a window's reconstruction error over a calibrated threshold.

A conditional window autoencoder (:class:`~surrogates.diagnostics.models.WindowAutoencoder`)
trained on the training chemistry's windows (mean squared error of the reconstructed voltage and
temperature). The threshold is the ``threshold_quantile`` of the validation sequences' max window
error, so ``1 - threshold_quantile`` is the intended false-positive rate per sequence; the score
is the error divided by it (>= 1: out of distribution) and the env's penalty its excess over 1.
"""

from __future__ import annotations

import numpy as np
import torch

from surrogates.diagnostics.kind import DiagnosticKind
from surrogates.diagnostics.metrics import auroc, per_sequence
from surrogates.diagnostics.models import AEConfig, WindowAutoencoder
from surrogates.diagnostics.windows import Windows


class OOD(DiagnosticKind):
    name = "ood"
    config_class = AEConfig
    model_class = WindowAutoencoder
    window = 32
    epochs = 60
    judged_on_other_chemistries = True
    columns = ("windows", "sequences", "flagged_fraction", "window_flagged_fraction", "median_sequence_score",
               "auroc_vs_test")

    def forward(self, model: WindowAutoencoder, x: torch.Tensor) -> torch.Tensor:
        return model.errors(x)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return out  # the reconstruction error is the loss

    def score(self, raw: np.ndarray, threshold: float) -> np.ndarray:
        return raw / threshold

    def flag(self, score: np.ndarray, threshold: float) -> np.ndarray:
        return score >= 1.0

    def calibrate(self, raw: np.ndarray, w: Windows, cfg) -> tuple[float, dict]:
        """Threshold on raw window errors: the ``cfg.threshold_quantile`` of the per-sequence
        ``cfg.aggregate`` over validation sequences."""
        if len(raw) == 0:
            raise ValueError("no validation windows to calibrate the OOD threshold on")
        quantile, aggregate = cfg.threshold_quantile, cfg.aggregate
        _, agg = per_sequence(raw, w.seq, aggregate)
        return float(np.quantile(agg, quantile)), {
            "rule": f"quantile {quantile} of the per-sequence {aggregate} window error over validation sequences",
            "quantile": quantile, "aggregate": aggregate, "validation_sequences": int(len(agg)),
            "intended_false_positive_rate": round(1.0 - quantile, 6)}

    def metrics(self, score: np.ndarray, w: Windows, n_seq: int, threshold: float, aggregate: str = "max") -> dict:
        """Share of sequences (and windows) flagged; the per-sequence scores are kept under
        ``_sequence_scores`` for :meth:`compare`."""
        if len(score) == 0:
            return {"windows": 0, "sequences": 0, "_sequence_scores": np.zeros(0)}
        _, agg = per_sequence(score, w.seq, aggregate)
        return {
            "windows": int(len(score)), "sequences": int(len(agg)),
            "flagged_fraction": float(np.mean(agg >= 1.0)), "window_flagged_fraction": float(np.mean(score >= 1.0)),
            "median_sequence_score": float(np.median(agg)), "_sequence_scores": agg,
        }

    def compare(self, results: dict) -> None:
        """``auroc_vs_test``: AUROC of per-sequence scores, each other set (positive) against ``test`` (negative)."""
        if "test" not in results:
            return
        neg = results["test"]["_sequence_scores"]
        for name, m in results.items():
            if name not in ("val", "test") and m["sequences"]:
                pos = m["_sequence_scores"]
                m["auroc_vs_test"] = auroc(np.r_[pos, neg], np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)])

    @staticmethod
    def penalty(score: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(score, dtype=np.float64) - 1.0, 0.0)  # excess over the calibrated threshold

    def describe(self, threshold: float, threshold_info: dict, meta: dict) -> str:
        return ("Conditional window autoencoder: a 4-number code of the window's first intervals of (current, voltage, "
                "temperature) plus the applied current -> the window's voltage and temperature; score = reconstruction "
                f"error / threshold (>= 1: out of distribution). Threshold {threshold:.5g}: {threshold_info.get('rule', '')}. "
                "Windows end at every interval, the first ones padded with the cell at rest, as the env serves them. A "
                "sequence is flagged when its max window score is >= 1: on `test` (in distribution) that is the "
                "false-positive rate, on `holdout` (unseen protocol family) and `ood:*` (another chemistry) the detection rate.")
