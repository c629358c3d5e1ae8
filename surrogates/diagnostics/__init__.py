"""Learned diagnostics over what a BMS measures (current, voltage, temperature): reward terms for the env.

>>> from surrogates.diagnostics import load_diagnostic
>>> p = load_diagnostic("plating", "nmc").score(current, voltage, temperature)   # [B, W] each -> [B]

Kinds, one plug-in class each (:mod:`surrogates.diagnostics.kinds`: windows, loss, score,
threshold, metrics and the env's reward penalty):

* ``plating`` (:mod:`~surrogates.diagnostics.plating`): a masked-autoencoder-pretrained patch
  transformer; probability that lithium plating was possible (plating margin < 0 V) in the window.
* ``ood`` (:mod:`~surrogates.diagnostics.ood`): an autoencoder's reconstruction error over a
  calibrated threshold (>= 1: out of distribution).
* ``degradation`` (:mod:`~surrogates.diagnostics.degradation`): lithium lost for good [A.h]
  (SEI growth plus dead lithium, the DFN's ``lithium_irreversible``; not PyBaMM's ``capacity_lost``,
  which also counts the reversibly plated lithium) in the window's last interval; summed over a
  charge, what the charge cost the cell for good.

Every kind is trained and scored on windows rest-padded before the sequence, as the env serves
them. Retraining publishes a new version; :class:`VersionRegistry` rolls back. Train with
``experiments/train_diagnostics.py`` (the loop is :mod:`surrogates.training`); validate with
``experiments/validate_diagnostics.py``.
"""

from surrogates.diagnostics.diagnostic import (  # noqa: F401
    CHECKPOINT_DIR,
    KINDS,
    Diagnostic,
    DiagnosticCheckpointError,
    checkpoint_path,
    load_diagnostic,
)
from surrogates.diagnostics.kinds import KIND_CLASSES, diagnostic_kind  # noqa: F401
from surrogates.diagnostics.registry import VersionRegistry  # noqa: F401
from surrogates.diagnostics.windows import BMS_CHANNELS, Normalizer, check_inputs, make_windows  # noqa: F401
