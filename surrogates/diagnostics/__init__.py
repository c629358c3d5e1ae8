"""Learned diagnostics over what a BMS measures (current, voltage, temperature): reward terms for the env.

>>> from surrogates.diagnostics import load_diagnostic
>>> p = load_diagnostic("plating", "nmc").score(current, voltage, temperature)   # [B, W] each -> [B]

* ``plating``: a masked-autoencoder-pretrained patch transformer; probability that lithium
  plating was possible (plating margin < 0 V) in the window.
* ``ood``: an autoencoder's reconstruction error over a calibrated threshold (>= 1: out of
  distribution). Retraining publishes a new version; :class:`VersionRegistry` rolls back.

Train with ``experiments/train_diagnostics.py``; validate with ``experiments/validate_diagnostics.py``.
"""

from surrogates.diagnostics.diagnostic import (  # noqa: F401
    CHECKPOINT_DIR,
    KINDS,
    Diagnostic,
    DiagnosticCheckpointError,
    checkpoint_path,
    load_diagnostic,
)
from surrogates.diagnostics.registry import VersionRegistry  # noqa: F401
from surrogates.diagnostics.windows import BMS_CHANNELS, Normalizer, check_inputs, make_windows  # noqa: F401
