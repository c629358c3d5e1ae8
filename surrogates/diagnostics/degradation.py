"""The degradation estimator: lithium lost for good [A.h] in a window's last interval.

A causal dilated CNN (:class:`~surrogates.diagnostics.models.DegradationCNN`) on rest-padded
windows ending at every interval of the sequences of a degradation dataset (``generate_data.py
--config experiments/configs/degradation_data.yml``); mean squared error of the irreversible
lithium loss in the last interval (``lithium_irreversible``: SEI growth plus dead lithium, see
:func:`surrogates.physics.dfn.lithium_split`), in units of the training targets' standard
deviation. Summed over a charge it estimates what the charge costs the cell for good. Reversibly
plated lithium is not a loss here: it strips back in the rest and the discharge after a charge
(its hazard is the plating detector's to see). No threshold; the env's penalty is the loss in
mA.h, never paid for a negative estimate.
"""

from __future__ import annotations

import numpy as np
import torch

from surrogates.diagnostics.kind import DiagnosticKind
from surrogates.diagnostics.models import CNNConfig, DegradationCNN
from surrogates.diagnostics.windows import DEGRADATION_CHANNEL, Windows


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination (NaN for fewer than two values)."""
    if len(true) < 2:
        return float("nan")
    ss = float(np.sum((true - true.mean()) ** 2))
    return 1.0 - float(np.sum((pred - true) ** 2)) / ss if ss > 0 else float("nan")


def _per_charge_r2(score: np.ndarray, w: Windows) -> dict:
    """The median over charges of the per-interval R2 within each charge, and the share of charges where it is >= 0.9."""
    per = [r2(score[w.seq == s], w.target[w.seq == s]) for s in np.unique(w.seq)]
    per = np.array([v for v in per if np.isfinite(v)])
    if len(per) == 0:
        return {"per_charge_interval_r2_median": float("nan"), "charges_interval_r2_over_0.9": float("nan")}
    return {"per_charge_interval_r2_median": float(np.median(per)), "charges_interval_r2_over_0.9": float(np.mean(per >= 0.9))}


class Degradation(DiagnosticKind):
    name = "degradation"
    config_class = CNNConfig
    model_class = DegradationCNN
    window = 64
    epochs = 40
    data_suffix = "-degradation"
    dataset_flags = "--config experiments/configs/degradation_data.yml"
    has_threshold = False
    sums_over_charge = True
    columns = ("sequences", "charge_r2", "charge_mape_percent", "charge_mae_mah", "charge_mean_loss_mah",
               "charge_max_loss_mah", "interval_r2", "per_charge_interval_r2_median", "charges_interval_r2_over_0.9")

    def windows(self, ds, window: int, stride: int = 1) -> Windows:
        if DEGRADATION_CHANNEL not in ds.arrays:
            raise ValueError(f"this dataset has no {DEGRADATION_CHANNEL!r} channel; make one with "
                             "`python experiments/generate_data.py --config experiments/configs/degradation_data.yml "
                             "--out data/nmc-degradation`")
        return super().windows(ds, window, stride)

    def prepare(self, model: DegradationCNN, train: Windows) -> None:
        model.scale.fill_(float(max(np.std(train.target), 1e-12)))  # A.h per model output unit

    def targets(self, model: DegradationCNN, w: Windows) -> np.ndarray:
        return (w.target / float(model.scale)).astype(np.float32)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out - y) ** 2

    def raw(self, model: DegradationCNN, out: torch.Tensor) -> torch.Tensor:
        return out * model.scale  # A.h

    def progress(self, raw: np.ndarray, w: Windows, n_seq: int) -> dict:
        return {"val_charge_r2": self.metrics(raw, w, n_seq, 1.0)["charge_r2"]}

    def metrics(self, score: np.ndarray, w: Windows, n_seq: int, threshold: float = 1.0, aggregate: str = "max") -> dict:
        """Per-charge (summed) and per-interval agreement of the estimated and the DFN's lithium lost for good [A.h]
        (``lithium_irreversible``); the ``*_loss_mah`` figures are the DFN's, in mA.h."""
        if len(w.seq) == 0:
            return {"windows": 0, "sequences": 0}
        pred = np.bincount(w.seq, weights=score, minlength=n_seq)
        true = np.bincount(w.seq, weights=w.target, minlength=n_seq)
        used = np.bincount(w.seq, minlength=n_seq) > 0
        pred, true = pred[used], true[used]
        return {
            "windows": int(len(w.seq)), "sequences": int(used.sum()),
            "charge_r2": r2(pred, true),
            "charge_mape_percent": float(100 * np.mean(np.abs(pred - true) / np.maximum(np.abs(true), 1e-12))),
            "charge_mae_mah": float(1e3 * np.mean(np.abs(pred - true))),
            "charge_mean_loss_mah": float(1e3 * np.mean(true)),
            "charge_max_loss_mah": float(1e3 * np.max(true)),
            "interval_r2": r2(score, w.target),
            # within each charge, how well the estimate follows the loss interval by interval
            **_per_charge_r2(score, w),
        }

    @staticmethod
    def penalty(score: np.ndarray) -> np.ndarray:
        return 1000.0 * np.maximum(np.asarray(score, dtype=np.float64), 0.0)  # A.h -> mA.h lost for good in the interval

    def describe(self, threshold: float, threshold_info: dict, meta: dict) -> str:
        d = meta.get("data", {})
        return ("Causal dilated CNN over windows of (current, voltage, temperature): lithium lost for good [A.h] in "
                "the window's last interval (`lithium_irreversible`: SEI growth plus dead lithium, not the reversibly "
                "plated lithium that strips back), as PyBaMM's degradation submodels compute it "
                f"({d.get('model')}; degradation parameters from {d.get('degradation_parameter_set')}). "
                "Charge level: the per-interval estimates summed over each sequence (windows before it filled with "
                "the cell at rest), against the DFN's `lithium_irreversible` at its end. The `holdout` split is a "
                "protocol family (pulse trains with rests) no training sequence came from.")
