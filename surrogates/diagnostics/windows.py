"""Windows of what a battery management system measures, their labels and their normalisation.

Glossary (units as in :mod:`surrogates.common.channels`):

    I, V, T   current [A] (PyBaMM sign: negative = charge), terminal voltage [V], cell temperature [K]
    W         window length [intervals] (default 32 = 320 s at dt = 10 s)
    x         a window ``[W, 3]``: (I, V, T) of W consecutive intervals, oldest first
    eta_min   ``plating_margin_min`` [V]: lowest plating margin within an interval; a window is
              labelled *plating* when min(eta_min) over its W intervals is < 0 (lithium plating
              thermodynamically possible somewhere in the window)

Every diagnostic is trained and tested on windows built the way the env serves them: windows end
at every (``stride``-th) interval of a sequence, the first ones reaching back before it, and
those intervals are filled with the cell at rest (I = 0, V = OCV(soc0), T = ambient), as the env
fills its history at reset (:func:`rest_padded_windows`, :func:`dataset_windows`). A window's
plating label looks at its measured intervals only; the degradation target is the irreversible
lithium loss (``lithium_irreversible``, SEI + dead lithium) [A.h] of the window's last interval.

A diagnostic sees only (I, V, T): what a BMS measures. Its inputs are standardised per channel
with the training split's mean and standard deviation (:class:`Normalizer`), which travels in
the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BMS_CHANNELS: tuple[str, ...] = ("current", "voltage", "temperature")
"""The inputs of every diagnostic, in order."""
LABEL_CHANNEL = "plating_margin_min"
"""The channel the plating label is computed from (never an input)."""
DEGRADATION_CHANNEL = "lithium_irreversible"
"""The channel the degradation target is computed from: lithium lost for good (SEI + dead lithium), cumulative A.h
since the sequence start. Not ``capacity_lost``, which also counts reversibly plated lithium."""


@dataclass
class Normalizer:
    """Per-channel standardisation of (I, V, T): ``(x - mean) / std``."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arrays: dict[str, np.ndarray], lengths: np.ndarray) -> "Normalizer":
        """Statistics over every valid interval of the sequences (the training split)."""
        mask = np.arange(arrays[BMS_CHANNELS[0]].shape[1])[None, :] < np.asarray(lengths)[:, None]
        vals = [np.asarray(arrays[ch], dtype=np.float64)[mask] for ch in BMS_CHANNELS]
        mean = np.array([v.mean() for v in vals])
        std = np.array([max(v.std(), 1e-6) for v in vals])
        return cls(mean=mean, std=std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Windows ``[B, W, 3]`` in SI units -> standardised float32 (float32 arithmetic for float32 input:
        the env scores N windows every step)."""
        x = np.asarray(x)
        if x.dtype == np.float32:
            return (x - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"channels": list(BMS_CHANNELS), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        if tuple(d["channels"]) != BMS_CHANNELS:
            raise ValueError(f"normaliser is for channels {d['channels']}, expected {list(BMS_CHANNELS)}")
        return cls(mean=np.asarray(d["mean"], dtype=np.float64), std=np.asarray(d["std"], dtype=np.float64))


@dataclass
class Windows:
    """Windows cut from sequences: ``x`` ``[M, W, 3]`` float32 in SI units, ``seq`` ``[M]`` the row of
    the sequence each comes from, ``start`` ``[M]`` its first interval, ``label`` ``[M]`` bool
    (plating possible in the window) or None when the data has no ``plating_margin_min``."""

    x: np.ndarray
    seq: np.ndarray
    start: np.ndarray
    label: np.ndarray | None
    target: np.ndarray | None = None
    """Degradation windows: lithium lost for good (``lithium_irreversible``) [A.h] in each window's last
    interval ``[M]`` float64."""

    def __len__(self) -> int:
        return int(len(self.seq))


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """First intervals of the windows of one sequence: every ``stride``-th, plus the last one (so
    the end of the sequence is always covered); empty when ``length < window``."""
    if length < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def make_windows(arrays: dict[str, np.ndarray], lengths: np.ndarray, window: int, stride: int = 1) -> Windows:
    """Every ``stride``-th window of ``window`` intervals of each sequence (NaN-padded ``[N, L]`` arrays).

    Sequences shorter than ``window`` contribute nothing.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = [window_starts(int(n), window, stride) for n in lengths]
    seq = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in enumerate(starts)]) if len(starts) else np.zeros(0, np.int64)
    start = np.concatenate(starts) if len(starts) else np.zeros(0, np.int64)
    idx = start[:, None] + np.arange(window)[None, :]  # (M, W)
    x = np.stack([np.asarray(arrays[ch], dtype=np.float32)[seq[:, None], idx] for ch in BMS_CHANNELS], axis=-1)  # (M, W, 3)
    label = None
    if LABEL_CHANNEL in arrays:
        label = np.min(np.asarray(arrays[LABEL_CHANNEL])[seq[:, None], idx], axis=1) < 0.0
    if len(seq) and not np.all(np.isfinite(x)):
        raise ValueError("the data holds NaN inside a sequence's valid length; check the dataset's lengths")
    return Windows(x=x, seq=seq, start=start, label=label)


def rest_padded_windows(arrays: dict[str, np.ndarray], lengths: np.ndarray, rest_voltage: np.ndarray,
                        ambient_temperature: np.ndarray, window: int, stride: int = 1) -> Windows:
    """Windows ending at every ``stride``-th interval of each sequence (and at its last one), the
    first ``window - 1`` of them reaching back into a rest before the sequence.

    Args:
        arrays: channel -> NaN-padded ``[N, L]``; ``lithium_irreversible`` [A.h], if present, gives ``target``.
        lengths: ``[N]`` valid intervals.
        rest_voltage: ``[N]`` open-circuit voltage [V] at each sequence's initial SOC.
        ambient_temperature: ``[N]`` [K], the cell's temperature before the sequence.
    Returns:
        :class:`Windows` with ``start`` = the window's last interval (index into the sequence).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n, L = arrays[BMS_CHANNELS[0]].shape
    pad = window - 1
    padded = np.empty((n, L + pad, 3), dtype=np.float32)
    padded[:, :pad, 0] = 0.0
    padded[:, :pad, 1] = np.asarray(rest_voltage, dtype=np.float32)[:, None]
    padded[:, :pad, 2] = np.asarray(ambient_temperature, dtype=np.float32)[:, None]
    for c, ch in enumerate(BMS_CHANNELS):
        padded[:, pad:, c] = arrays[ch]
    ends = []
    for k in lengths:
        e = np.arange(0, k, stride, dtype=np.int64)
        ends.append(np.append(e, k - 1) if k and e[-1] != k - 1 else e)
    seq = np.concatenate([np.full(len(e), i, dtype=np.int64) for i, e in enumerate(ends)]) if n else np.zeros(0, np.int64)
    end = np.concatenate(ends) if n else np.zeros(0, np.int64)
    x = padded[seq[:, None], end[:, None] + np.arange(window)[None, :]]  # (M, W, 3): padded index end..end+pad
    if len(seq) and not np.all(np.isfinite(x)):
        raise ValueError("the data holds NaN inside a sequence's valid length; check the dataset's lengths")
    label = None
    if LABEL_CHANNEL in arrays:  # over the measured intervals of the window; the rest before never plates
        eta = np.full((n, L + pad), np.inf)
        eta[:, pad:] = np.nan_to_num(np.asarray(arrays[LABEL_CHANNEL], dtype=np.float64), nan=np.inf)
        label = np.min(eta[seq[:, None], end[:, None] + np.arange(window)[None, :]], axis=1) < 0.0
    target = None
    if DEGRADATION_CHANNEL in arrays:
        lost = np.asarray(arrays[DEGRADATION_CHANNEL], dtype=np.float64)
        prev = np.where(end > 0, lost[seq, np.maximum(end - 1, 0)], 0.0)  # cumulative since the reset, where it is 0
        target = lost[seq, end] - prev
    return Windows(x=x, seq=seq, start=end, label=label, target=target)


def initial_rest_voltage(ds) -> np.ndarray:
    """Open-circuit voltage [V] at each sequence's initial SOC ``[N]``: the rest the env's history starts at.

    ``ds.initial["rest_voltage"]`` when the data carry it, else the OCV table of the dataset's
    manifest (:mod:`surrogates.physics.rest_tables`, as the surrogate the env steps carries it).
    """
    from surrogates.models.features import Featurizer

    if "rest_voltage" in ds.initial:
        return np.asarray(ds.initial["rest_voltage"], dtype=np.float64)
    if "tables" not in ds.meta:
        raise ValueError("these sequences carry no rest tables (meta['tables']) nor initial['rest_voltage']; open "
                         "the dataset with surrogates.data.dataset.open_dataset, which adds the tables")
    return Featurizer.from_tables(ds.meta["chemistry"], ds.dt, ds.meta["tables"]).table("ocv", ds.initial["soc"])


def dataset_windows(ds, window: int, stride: int = 1) -> Windows:
    """:func:`rest_padded_windows` of a :class:`surrogates.data.dataset.Dataset` (its rest voltage from
    :func:`initial_rest_voltage`, its ambient temperature from ``ds.initial``)."""
    return rest_padded_windows(ds.arrays, ds.lengths, initial_rest_voltage(ds), ds.initial["ambient_temperature"], window, stride)


def check_inputs(current, voltage, temperature, window: int, dt: float | None = None) -> np.ndarray:
    """Validate what a caller hands a diagnostic and return its last ``window`` intervals ``[B, W, 3]``.

    Each of ``current`` [A], ``voltage`` [V], ``temperature`` [K] is ``[B, L]`` (or ``[L]`` for one
    window), ``L >= window``; longer histories are cut to their last ``window`` intervals.
    Raises ``ValueError`` for shorter windows, mismatched shapes and NaN or infinite values.
    """
    arrs = []
    for name, a in zip(BMS_CHANNELS, (current, voltage, temperature)):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array [B, L], got {type(a).__name__}") from None
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"{name} must be [B, L] (batch of windows) or [L], got shape {a.shape}")
        arrs.append(a)
    shapes = {name: a.shape for name, a in zip(BMS_CHANNELS, arrs)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"current, voltage and temperature must have the same shape, got {shapes}")
    B, L = arrs[0].shape
    if L < window:
        span = f" ({window * dt:g} s at dt = {dt:g} s)" if dt else ""
        raise ValueError(
            f"this diagnostic needs windows of at least {window} intervals{span}, got {L}; "
            f"wait until {window} intervals have been measured (or pad with the rest history)"
        )
    x = np.stack([a[:, L - window:] for a in arrs], axis=-1)  # (B, W, 3)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=(1, 2)))
        chans = [BMS_CHANNELS[c] for c in np.flatnonzero(bad.any(axis=(0, 1)))]
        raise ValueError(
            f"NaN or infinite inputs in {len(rows)} window(s) (rows {rows[:8].tolist()}{'...' if len(rows) > 8 else ''}), "
            f"channels {chans}; a diagnostic needs {window} measured intervals with finite values"
        )
    return x
