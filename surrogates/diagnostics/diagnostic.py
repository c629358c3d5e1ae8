"""A trained diagnostic as a batched scorer: windows of (I, V, T) in, one number per window out.

>>> from surrogates.diagnostics import load_diagnostic
>>> plating = load_diagnostic("plating", "nmc")            # the checkpoint shipped in the repo
>>> p = plating.score(current, voltage, temperature)        # each [B, W] (or longer: last W used)
>>> ood = load_diagnostic("ood", "nmc")
>>> s = ood.score(current, voltage, temperature)            # [B]; >= 1 means out of distribution

``score`` is numpy in, numpy out, under ``torch.no_grad``, so an environment can score the
last W intervals of N cells in one call. Kinds:

* ``plating``: probability that lithium plating was possible (plating margin < 0 V) somewhere
  in the window; ``threshold`` is the probability above which :meth:`Diagnostic.flag` says yes
  (chosen for the best F1 on validation windows).
* ``ood``: reconstruction error of the window divided by ``threshold``, the error that
  ``threshold_quantile`` of the validation sequences stay under (per-sequence max over their
  windows), so a score >= 1 means "above threshold": the surrogate/diagnostics are being used
  outside the data they were trained on.
* ``degradation``: lithium lost for good [A.h] (SEI growth and dead lithium, as the DFN's
  degradation submodels compute them; not the plated lithium that strips back) in the window's
  *last* interval. The loss of a
  whole charge is :meth:`Diagnostic.charge_loss`. It has no threshold and no ``flag``.

What differs between kinds lives in their plug-in classes (:mod:`surrogates.diagnostics.kinds`);
a :class:`Diagnostic` holds one as ``plugin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surrogates.common.checkpoints import CheckpointError, load_checkpoint, write_checkpoint
from surrogates.diagnostics.kinds import KIND_CLASSES, diagnostic_kind, kind_of
from surrogates.diagnostics.registry import VersionRegistry
from surrogates.diagnostics.windows import Normalizer, check_inputs, rest_padded_windows

KINDS: tuple[str, ...] = tuple(KIND_CLASSES)
"""Diagnostic kinds (names of :data:`surrogates.diagnostics.kinds.KIND_CLASSES`)."""
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
"""Shipped diagnostics: ``{chemistry}-{kind}.pt`` with a card ``{chemistry}-{kind}.md``."""
CHECKPOINT_FORMAT = 1


DiagnosticCheckpointError = CheckpointError
"""The one checkpoint error (:class:`surrogates.common.checkpoints.CheckpointError`) under its older name: a
checkpoint that does not fit the request (kind, chemistry, format), is not a checkpoint or holds more than plain data."""


def checkpoint_path(chemistry: str, kind: str) -> Path:
    """``{chemistry}-{kind}.pt``: in :data:`CHECKPOINT_DIR` for a shipped cell, in the cell's folder for a user's."""
    from surrogates.physics.chemistry import artefact_dir

    return artefact_dir(chemistry, "diagnostics", CHECKPOINT_DIR) / f"{chemistry}-{kind}.pt"


def make_blob(model: torch.nn.Module, normalizer: Normalizer, chemistry: str, dt: float, threshold: float,
              meta: dict, threshold_info: dict | None = None) -> dict:
    """Everything inference needs, as a dict ``torch.save`` writes (see :func:`save_diagnostic`): the
    network's weights and config, the normaliser, the threshold and provenance; nothing only training uses."""
    from dataclasses import asdict

    return {
        "format": CHECKPOINT_FORMAT,
        "kind": kind_of(model).name,
        "chemistry": chemistry,
        "dt": float(dt),
        "window": int(model.cfg.window),
        "model_config": asdict(model.cfg),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "normalizer": normalizer.to_dict(),
        "threshold": float(threshold),
        "threshold_info": threshold_info or {},
        "meta": meta,
    }


def save_diagnostic(path: str | Path, blob: dict) -> Path:
    """Write a checkpoint blob atomically (temporary file, then rename), as plain data
    (:func:`surrogates.common.checkpoints.write_checkpoint`)."""
    write_checkpoint(blob, path)
    return Path(path)


class Diagnostic:
    """A trained diagnostic (model + normaliser + threshold + provenance) for one chemistry and ``dt``."""

    def __init__(self, blob: dict, device: str | torch.device = "cpu", source: str = ""):
        self.plugin = diagnostic_kind(blob["kind"])
        """The kind's plug-in (:class:`~surrogates.diagnostics.kind.DiagnosticKind`): scoring, threshold, metrics."""
        self.model = self.plugin.model_class(self.plugin.config_class(**blob["model_config"]))
        self.model.load_state_dict(blob["state_dict"], strict=True)
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.kind: str = blob["kind"]
        self.chemistry: str = blob["chemistry"]
        self.dt: float = float(blob["dt"])
        self.window: int = int(blob["window"])
        self.normalizer = Normalizer.from_dict(blob["normalizer"])
        self.threshold: float = float(blob["threshold"])
        self.threshold_info: dict = blob.get("threshold_info", {})
        self.meta: dict = blob.get("meta", {})
        self.version: str | None = self.meta.get("version")
        self.source = source

    def __repr__(self) -> str:
        return (f"Diagnostic({self.chemistry}-{self.kind}, W={self.window}, dt={self.dt:g} s, "
                f"threshold={self.threshold:.4g}, version={self.version}, source={self.source!r})")

    def check_dt(self, dt: float | None) -> None:
        """Refuse a control interval other than the one the diagnostic was trained for."""
        if dt is not None and abs(float(dt) - self.dt) > 1e-9:
            raise ValueError(f"this {self.chemistry}-{self.kind} diagnostic was trained on windows of dt={self.dt} s "
                             f"intervals, not dt={dt} s; train one on a dataset generated with --dt {dt}")

    @torch.no_grad()
    def raw_scores(self, windows: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """Checked windows ``[B, W, 3]`` in SI units -> the model's raw output ``[B]``: plating
        probability, OOD reconstruction error (standardised units, not divided by the threshold),
        or lithium lost for good in the last interval [A.h]."""
        z = self.normalizer(windows)
        out = np.empty(len(z), dtype=np.float64)
        for i in range(0, len(z), batch_size):
            xb = torch.from_numpy(z[i:i + batch_size]).to(self.device)
            out[i:i + batch_size] = self.plugin.raw(self.model, self.plugin.forward(self.model, xb)).double().cpu().numpy()
        return out

    def score_windows(self, windows: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """As :meth:`score` for windows ``[B, W, 3]`` (I, V, T) already stacked and checked."""
        return self.plugin.score(self.raw_scores(windows, batch_size), self.threshold)

    def score(self, current, voltage, temperature) -> np.ndarray:
        """Score the last ``window`` intervals of ``B`` histories.

        Args:
            current: ``[B, L]`` [A] (PyBaMM sign), ``L >= window`` (``[L]`` for one history).
            voltage: ``[B, L]`` [V], terminal voltage at the end of each interval.
            temperature: ``[B, L]`` [K], cell temperature at the end of each interval.
        Returns:
            ``[B]`` float64: the plating probability (kind ``plating``), the OOD score
            normalised by the calibrated threshold, so ``>= 1`` means out of distribution, or
            the lithium lost for good in the last interval [A.h] (``degradation``).
        Raises:
            ValueError: histories shorter than ``window``, mismatched shapes, NaN or inf.
        """
        # float32 windows, as training and the env's history hold them: one arithmetic, the same scores
        return self.score_windows(check_inputs(current, voltage, temperature, self.window, self.dt).astype(np.float32))

    def flag(self, current, voltage, temperature) -> np.ndarray:
        """``[B]`` bool: plating predicted (probability >= threshold) / window out of distribution (score >= 1).
        A diagnostic that predicts an amount (degradation) has no flag: ``ValueError``."""
        if not self.plugin.has_threshold:
            raise ValueError(f"the {self.kind} diagnostic predicts an amount, it has no flag; use score()")
        return self.plugin.flag(self.score(current, voltage, temperature), self.threshold)

    # -- streaming (degradation): O(1) per interval for N cells stepped together, as in the env
    @property
    def streams(self) -> bool:
        """Whether :meth:`stream_step` is available (the degradation estimator's causal CNN)."""
        return hasattr(self.model, "stream_step")

    def _standardise(self, current, voltage, temperature) -> torch.Tensor:
        x = np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in (current, voltage, temperature)], axis=-1)
        if not np.all(np.isfinite(x)):
            rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
            raise ValueError(f"NaN or infinite inputs for cells {rows[:8].tolist()}; a diagnostic needs measured values")
        return torch.from_numpy(self.normalizer(x)).to(self.device)

    @torch.no_grad()
    def stream_init(self, voltage, temperature) -> dict:
        """Streaming state of cells ``[N]`` at rest at ``voltage`` [V] and ``temperature`` [K] (I = 0)."""
        if not self.streams:
            raise ValueError(f"the {self.kind} diagnostic scores windows, it does not stream; use score()")
        v = np.asarray(voltage, dtype=np.float64).reshape(-1)
        return self.model.stream_state(self._standardise(np.zeros_like(v), v, temperature))

    @torch.no_grad()
    def stream_reset_rows(self, state: dict, rows, voltage, temperature) -> None:
        """Put cells ``rows`` back at rest (as :meth:`stream_init`), in place."""
        v = np.asarray(voltage, dtype=np.float64).reshape(-1)
        rows = torch.as_tensor(np.asarray(rows)).to(self.device)  # indices or a boolean mask, as torch indexes
        self.model.reset_stream_rows(state, rows, self._standardise(np.zeros_like(v), v, temperature))

    @torch.no_grad()
    def stream_step(self, state: dict, current, voltage, temperature) -> np.ndarray:
        """Advance every cell by one interval (``[N]`` each: A, V, K) -> ``[N]`` the :meth:`score` of the
        window ending with it (its start filled with the rest the state began from), at O(1) cost."""
        return self.model.stream_step(self._standardise(current, voltage, temperature), state).double().cpu().numpy()

    def charge_loss(self, current, voltage, temperature, rest_voltage, ambient_temperature) -> np.ndarray:
        """Lithium lost for good over whole charges [A.h] ``[B]`` (kind ``degradation``): the estimator slid
        over every interval, the first windows reaching back into a rest at ``rest_voltage``.

        Args:
            current, voltage, temperature: ``[B, L]`` (``[L]`` for one) in A, V, K; trailing NaN
                ends a shorter trace.
            rest_voltage: ``[B]`` open-circuit voltage [V] before the charge (OCV at its initial SOC).
            ambient_temperature: ``[B]`` [K], the cell's temperature before the charge.
        """
        if not self.plugin.sums_over_charge:
            raise ValueError(f"charge_loss needs a diagnostic whose scores add up over a charge (degradation), "
                             f"this is {self.kind}")
        arrs = [np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (current, voltage, temperature)]
        if len({a.shape for a in arrs}) != 1:
            raise ValueError(f"current, voltage and temperature must have the same shape, got {[a.shape for a in arrs]}")
        valid = np.all(np.isfinite(np.stack(arrs)), axis=0)  # (B, L)
        lengths = valid.sum(axis=1)
        if not np.array_equal(valid, np.arange(valid.shape[1])[None, :] < lengths[:, None]):
            raise ValueError("NaN or infinite values inside a trace; only trailing NaN (shorter traces) is allowed")
        n = len(lengths)
        rest = np.broadcast_to(np.asarray(rest_voltage, dtype=np.float64), (n,))
        amb = np.broadcast_to(np.asarray(ambient_temperature, dtype=np.float64), (n,))
        w = rest_padded_windows(dict(zip(("current", "voltage", "temperature"), arrs)), lengths, rest, amb, self.window)
        per_interval = self.raw_scores(w.x)
        return np.bincount(w.seq, weights=per_interval, minlength=n)


def load_diagnostic(kind: str, chemistry: str = "nmc", path: str | Path | None = None, version: str | None = None,
                    device: str | torch.device = "cpu") -> Diagnostic:
    """Load a diagnostic: the shipped one for ``chemistry``/``kind``, or ``path``.

    ``path`` may be a checkpoint file or a run folder of ``experiments/train_diagnostics.py``
    (then its current version, or ``version`` such as ``"v002"``). Refuses
    (:class:`DiagnosticCheckpointError`, i.e. :class:`~surrogates.common.checkpoints.CheckpointError`) a
    checkpoint of another kind or chemistry, and a file that is not a checkpoint, is truncated or holds more than
    plain data (read with ``weights_only=True``: nothing in it runs).
    """
    from surrogates.physics.chemistry import get_chemistry

    plugin = diagnostic_kind(kind)  # refuses an unknown kind
    get_chemistry(chemistry)
    p = Path(path) if path is not None else checkpoint_path(chemistry, kind)
    if p.is_dir():
        p = VersionRegistry(p).path(version)
    elif version is not None:
        raise ValueError("version= needs path= to be a run folder (runs/diagnostics/<chemistry>-<kind>)")
    if not p.exists():
        shipped = sorted(q.stem for q in CHECKPOINT_DIR.glob("*.pt")) if CHECKPOINT_DIR.exists() else []
        raise FileNotFoundError(
            f"no diagnostic checkpoint at {p}; shipped diagnostics: {', '.join(shipped) or 'none'}. Train one with "
            f"`python experiments/train_diagnostics.py --kind {kind} --chemistry {chemistry} "
            f"--data data/{chemistry}{plugin.data_suffix} --ship`"
        )
    blob = load_checkpoint(p)  # weights_only: nothing in the file runs
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT or "kind" not in blob:
        raise DiagnosticCheckpointError(f"{p} is not a cellgym diagnostic checkpoint of format {CHECKPOINT_FORMAT}")
    if blob["kind"] != kind:
        raise DiagnosticCheckpointError(f"{p} holds a {blob['kind']} diagnostic, not {kind}")
    if blob["chemistry"] != chemistry:
        raise DiagnosticCheckpointError(f"{p} was trained on {blob['chemistry']} data, not {chemistry}; "
                                        f"pass chemistry={blob['chemistry']!r}")
    return Diagnostic(blob, device=device, source=str(p))
