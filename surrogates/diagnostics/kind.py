"""What makes a kind of diagnostic: the base class of the plug-ins (plating, ood, degradation).

A kind owns everything that differs between diagnostics, so nothing else in the project asks
which kind it holds:

    network      ``config_class`` / ``model_class`` (:mod:`surrogates.diagnostics.models`)
    windows      :meth:`windows`: rest-padded windows of a dataset, as the env serves them
    training     :meth:`targets`, :meth:`forward` and :meth:`loss` (per window), an optional
                 self-supervised pretrainer (:meth:`pretrainer`, :meth:`pretrain_loss`)
    scoring      :meth:`raw` (probability, error, A.h) and :meth:`score` (what ``Diagnostic.score``
                 returns), :meth:`flag`
    threshold    :meth:`calibrate` on validation windows
    metrics      :meth:`metrics` of scores against a dataset's truth, :meth:`progress` per epoch
    reward       :meth:`penalty` (>= 0) of a score; the env's reward term is ``-weight * penalty``
    words        :meth:`describe` and ``columns`` for cards and reports

Adding a kind is adding a subclass and its line in :data:`surrogates.diagnostics.kinds.KIND_CLASSES`.
Shapes: ``x`` ``(B, W, 3)`` standardised windows, one value per window ``(B,)``.
"""

from __future__ import annotations

import numpy as np
import torch

from surrogates.diagnostics.windows import Windows, dataset_windows


class DiagnosticKind:
    """Defaults shared by the kinds; a subclass sets the class attributes and overrides what differs."""

    name: str = ""
    """Kind name, as in ``load_diagnostic(name, chemistry)`` and ``ChargingConfig.diagnostics``."""
    config_class: type = None
    model_class: type = None
    window: int = 32
    """Default window W [intervals]."""
    epochs: int = 10
    """Default epochs of the supervised phase."""
    data_suffix: str = ""
    """Its dataset folder is ``data/<chemistry><data_suffix>``."""
    dataset_flags: str = "--chemistry {chemistry}"
    """``experiments/generate_data.py`` flags that make its dataset."""
    has_threshold: bool = True
    """Whether a score can be flagged (False: the score is an amount)."""
    sums_over_charge: bool = False
    """Whether scores are per-interval amounts that add up over a charge (every interval must be scored)."""
    judged_on_other_chemistries: bool = False
    """Whether its test includes other chemistries' data (``DiagnosticConfig.ood_data``)."""
    columns: tuple[str, ...] = ()
    """Metrics shown in cards and reports, in order."""

    # -- network
    def build(self, window: int, overrides: dict) -> torch.nn.Module:
        return self.model_class(self.config_class(window=window, **overrides))

    def owns(self, model: torch.nn.Module) -> bool:
        return type(model) is self.model_class

    # -- windows and training
    def windows(self, ds, window: int, stride: int = 1) -> Windows:
        """Windows of ``ds`` ending at every ``stride``-th interval, rest-padded before each sequence."""
        return dataset_windows(ds, window, stride)

    def eval_windows(self, ds, window: int, stride: int = 1) -> Windows:
        """Windows a test scores (:meth:`windows`; every interval where scores add up over a charge)."""
        return self.windows(ds, window, 1 if self.sums_over_charge else stride)

    def prepare(self, model: torch.nn.Module, train: Windows) -> None:
        """Set what the model takes from the training windows (e.g. a target scale) before training."""

    def targets(self, model: torch.nn.Module, w: Windows) -> np.ndarray:
        """Training target per window ``[M]`` float32 (zeros for a self-supervised kind)."""
        return np.zeros(len(w), dtype=np.float32)

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The network's output per window ``(B,)`` (what :meth:`loss` and :meth:`raw` read)."""
        return model(x)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss per window ``(B,)`` of outputs ``out`` against targets ``y``."""
        raise NotImplementedError

    def pretrainer(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """Extra module of a self-supervised pretraining phase, or None (no such phase)."""
        return None

    def pretrain_parameters(self, model: torch.nn.Module, pretrainer: torch.nn.Module) -> list:
        return [*model.parameters(), *pretrainer.parameters()]

    def pretrain_loss(self, model, pretrainer, x: torch.Tensor, cfg, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    # -- scoring
    def raw(self, model: torch.nn.Module, out: torch.Tensor) -> torch.Tensor:
        """Raw score ``(B,)`` from :meth:`forward`'s output (before any threshold)."""
        return out

    def score(self, raw: np.ndarray, threshold: float) -> np.ndarray:
        """What ``Diagnostic.score`` returns for raw scores ``raw``."""
        return raw

    def flag(self, score: np.ndarray, threshold: float) -> np.ndarray:
        """``[B]`` bool: the scores at or above the decision threshold."""
        if not self.has_threshold:
            raise ValueError(f"the {self.name} diagnostic predicts an amount, it has no flag; use score()")
        return score >= threshold

    def calibrate(self, raw: np.ndarray, w: Windows, cfg) -> tuple[float, dict]:
        """Decision threshold from raw validation scores, and how it was chosen."""
        return 1.0, {"rule": f"none: the {self.name} diagnostic predicts an amount"}

    # -- judging
    def progress(self, raw: np.ndarray, w: Windows, n_seq: int) -> dict:
        """Cheap validation figures logged every epoch (besides the loss)."""
        return {}

    def metrics(self, score: np.ndarray, w: Windows, n_seq: int, threshold: float, aggregate: str) -> dict:
        """Figures of scores ``[M]`` of windows ``w`` cut from ``n_seq`` sequences."""
        raise NotImplementedError

    def compare(self, results: dict) -> None:
        """Add figures that compare the test sets of ``results`` (name -> :meth:`metrics`), in place."""

    @staticmethod
    def penalty(score: np.ndarray) -> np.ndarray:
        """Reward penalty (>= 0) of scores ``[N]``; the env adds ``-weight * penalty``."""
        raise NotImplementedError

    def describe(self, threshold: float, threshold_info: dict, meta: dict) -> str:
        """One paragraph for a card: what the diagnostic computes and how its numbers read."""
        raise NotImplementedError
