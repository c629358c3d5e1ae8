"""The plating detector: probability that lithium plating was possible (plating margin < 0 V) in a window.

A patch transformer (:class:`~surrogates.diagnostics.models.PlatingDetector`) pretrained as a
masked autoencoder on unlabelled training windows, then fine-tuned with binary cross-entropy
against the window label (:data:`~surrogates.diagnostics.windows.LABEL_CHANNEL` < 0 somewhere in
the window's measured intervals). The decision threshold is the probability with the best F1 on
validation windows; the env's penalty is the probability itself.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from surrogates.diagnostics.kind import DiagnosticKind
from surrogates.diagnostics.metrics import auroc, best_f1_threshold, confusion, per_sequence
from surrogates.diagnostics.models import MAEDecoder, PatchConfig, PlatingDetector, mae_loss
from surrogates.diagnostics.windows import LABEL_CHANNEL, Windows


class Plating(DiagnosticKind):
    name = "plating"
    config_class = PatchConfig
    model_class = PlatingDetector
    window = 32
    epochs = 10
    columns = ("windows", "window_positive_fraction", "window_auroc", "window_f1", "window_precision",
               "window_recall", "sequences", "sequence_positive_fraction", "episode_auroc", "episode_f1")

    def windows(self, ds, window: int, stride: int = 1) -> Windows:
        if LABEL_CHANNEL not in ds.arrays:
            raise ValueError(f"these sequences have no {LABEL_CHANNEL!r} channel to label plating windows with")
        return super().windows(ds, window, stride)

    def targets(self, model, w: Windows) -> np.ndarray:
        return w.label.astype(np.float32)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, y.to(out.dtype), reduction="none")

    def pretrainer(self, model: PlatingDetector) -> MAEDecoder:
        return MAEDecoder(model.cfg)

    def pretrain_parameters(self, model: PlatingDetector, pretrainer: MAEDecoder) -> list:
        return [*model.encoder.parameters(), *pretrainer.parameters()]  # the head waits for labels

    def pretrain_loss(self, model, pretrainer, x, cfg, generator) -> torch.Tensor:
        return mae_loss(model.encoder, pretrainer, x, cfg.mask_ratio, generator)

    def raw(self, model, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)

    def calibrate(self, raw: np.ndarray, w: Windows, cfg) -> tuple[float, dict]:
        return best_f1_threshold(raw, w.label), {"rule": "probability with the best F1 on validation windows",
                                                 "validation_windows": int(len(raw))}

    def progress(self, raw: np.ndarray, w: Windows, n_seq: int) -> dict:
        return {"val_auroc": auroc(raw, w.label)}

    def metrics(self, score: np.ndarray, w: Windows, n_seq: int, threshold: float, aggregate: str = "max") -> dict:
        """Window- and sequence-level figures of plating probabilities at ``threshold``."""
        if len(score) == 0:
            return {"windows": 0, "sequences": 0}
        label = w.label
        cw = confusion(score >= threshold, label)
        _, pmax = per_sequence(score, w.seq, "max")
        _, lmax = per_sequence(label.astype(np.float64), w.seq, "max")
        ce = confusion(pmax >= threshold, lmax > 0.5)
        return {
            "windows": int(len(score)), "window_positive_fraction": float(np.mean(label)),
            "window_auroc": auroc(score, label), "window_f1": cw["f1"], "window_precision": cw["precision"],
            "window_recall": cw["recall"], "window_accuracy": cw["accuracy"],
            "sequences": int(len(pmax)), "sequence_positive_fraction": float(np.mean(lmax > 0.5)),
            "episode_auroc": auroc(pmax, lmax > 0.5), "episode_f1": ce["f1"], "episode_precision": ce["precision"],
            "episode_recall": ce["recall"], "episode_accuracy": ce["accuracy"], "threshold": float(threshold),
        }

    @staticmethod
    def penalty(score: np.ndarray) -> np.ndarray:
        return np.asarray(score, dtype=np.float64)  # the probability in [0, 1]

    def describe(self, threshold: float, threshold_info: dict, meta: dict) -> str:
        return ("Masked-autoencoder-pretrained patch transformer over windows of (current, voltage, temperature): "
                "probability that lithium plating was possible (plating margin < 0 V) in the window. Windows end at "
                "every interval, the first ones padded with the cell at rest before the sequence, as the env serves "
                f"them. Decision threshold {threshold:.3f} ({threshold_info.get('rule', '')}). Episode level: max of "
                "window probabilities per sequence against 'any plating in the sequence'.")
