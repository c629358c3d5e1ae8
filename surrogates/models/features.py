"""Physical channels <-> the normalised tensors every surrogate architecture sees.

Glossary (units as in :mod:`surrogates.common.channels`):

    I      applied current [A], PyBaMM sign; the network sees the C-rate I / I_1C
    soc    coulomb-counted state of charge [1] at the end of each interval (never learned)
    OCV    open-circuit voltage of the cell at soc, 25 C [V] (table from the DFN at rest, carried by
           the dataset manifest and the checkpoint: :mod:`surrogates.physics.rest_tables`)
    U_n    negative-electrode potential at rest at soc [V]: the plating margin at rest
    T_amb  ambient temperature [K]; the cell starts at it

The surrogate learns only what the physics does not give for free. Inputs per interval k:
``[I/I_1C, (T_amb - T_ref)/T_scale, soc_k, (OCV(soc_k) - V_mid)/V_scale]``; the initial
condition is ``[soc_0, (T_amb - T_ref)/T_scale, (OCV(soc_0) - V_mid)/V_scale]``. Targets are
residuals, each standardised with training-set statistics:

* voltage, voltage_max: ``V - OCV(soc_k)`` (the overpotential)
* temperature, temperature_max: ``T - T_amb`` (the self-heating)
* plating_margin, plating_margin_min: ``eta - U_n(soc_k)``

so a model that predicts zero everywhere is already the quasi-static cell. The tables and
statistics are saved in every checkpoint, so inference needs neither PyBaMM nor the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from surrogates.common.channels import DEFAULT_DT, SECONDS_PER_HOUR

MODEL_CHANNELS: tuple[str, ...] = (
    "voltage", "temperature", "plating_margin", "voltage_max", "temperature_max", "plating_margin_min",
)
"""What a surrogate predicts, in this order: the learned channels and their interval extremes."""

N_INPUTS = 4
N_INIT = 3
T_REF = 298.15
T_SCALE = 15.0
V_MID, V_SCALE = 3.6, 0.5
_RESIDUAL_OF = {  # channel -> what its residual is taken against
    "voltage": "ocv", "voltage_max": "ocv",
    "temperature": "ambient", "temperature_max": "ambient",
    "plating_margin": "u_neg", "plating_margin_min": "u_neg",
}


@dataclass
class Featurizer:
    """Everything needed to map physical sequences to model tensors and back.

    Attributes:
        chemistry: chemistry name the tables were computed for.
        dt: control interval [s].
        capacity_ah: nominal capacity [A.h] (1C in A, and the coulomb count).
        soc_grid: SOC points of the tables, increasing.
        ocv: open-circuit voltage at ``soc_grid`` [V] (DFN at rest, 25 C).
        u_neg: plating margin at rest at ``soc_grid`` [V].
        target_mean, target_std: residual statistics per :data:`MODEL_CHANNELS` entry.
    """

    chemistry: str
    dt: float
    capacity_ah: float
    soc_grid: list[float]
    ocv: list[float]
    u_neg: list[float]
    target_mean: list[float]
    target_std: list[float]

    # ------------------------------------------------------------------ building
    @classmethod
    def from_tables(cls, chemistry: str, dt: float, tables: dict) -> "Featurizer":
        """From rest tables (:func:`surrogates.physics.rest_tables.rest_tables`), with unit statistics."""
        return cls(
            chemistry=chemistry, dt=float(dt), capacity_ah=float(tables["capacity_ah"]),
            soc_grid=list(tables["soc_grid"]), ocv=list(tables["ocv"]), u_neg=list(tables["u_neg"]),
            target_mean=[0.0] * len(MODEL_CHANNELS), target_std=[1.0] * len(MODEL_CHANNELS),
        )

    @classmethod
    def from_dataset(cls, ds) -> "Featurizer":
        """From the tables a dataset's manifest carries (no PyBaMM); statistics still to fit."""
        return cls.from_tables(ds.meta["chemistry"], ds.dt, ds.tables)

    @classmethod
    def from_dfn(cls, chemistry: str, dt: float = DEFAULT_DT, points: int = 101) -> "Featurizer":
        """Tables computed now from the DFN (needs PyBaMM; about a second)."""
        from surrogates.physics.rest_tables import rest_tables

        return cls.from_tables(chemistry, dt, rest_tables(chemistry, points))

    def fit_statistics(self, arrays: dict[str, np.ndarray], lengths: np.ndarray, initial: dict[str, np.ndarray]) -> None:
        """Set ``target_mean``/``target_std`` from a dataset's valid (unpadded) steps."""
        mask = np.arange(arrays["voltage"].shape[1])[None, :] < lengths[:, None]
        soc = self.soc_sequence(arrays["current"], initial["soc"])
        means, stds = [], []
        for ch in MODEL_CHANNELS:
            r = self._residual(ch, arrays[ch], soc, initial["ambient_temperature"])[mask]
            means.append(float(np.mean(r)))
            stds.append(float(max(np.std(r), 1e-4)))
        self.target_mean, self.target_std = means, stds

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Featurizer":
        return cls(**d)

    # ------------------------------------------------------------------ physics helpers
    @property
    def one_c(self) -> float:
        """1C current [A]."""
        return self.capacity_ah

    def soc_sequence(self, current: np.ndarray, soc0: np.ndarray) -> np.ndarray:
        """Coulomb-counted SOC at the end of each interval: ``[B, L]`` from current ``[B, L]`` [A].

        NaN-padded currents (after a sequence's end) count as zero.
        """
        current = np.nan_to_num(np.asarray(current, dtype=np.float64))
        charge_ah = np.cumsum(current, axis=1) * self.dt / SECONDS_PER_HOUR
        return np.asarray(soc0, dtype=np.float64)[:, None] - charge_ah / self.capacity_ah

    def table(self, name: str, soc: np.ndarray) -> np.ndarray:
        """``ocv`` or ``u_neg`` at ``soc`` (linear; held constant outside [0, 1])."""
        return np.interp(soc, self.soc_grid, getattr(self, name))

    def _reference(self, ch: str, soc: np.ndarray, ambient: np.ndarray) -> np.ndarray:
        kind = _RESIDUAL_OF[ch]
        if kind == "ambient":
            return np.broadcast_to(np.asarray(ambient, dtype=np.float64)[:, None], soc.shape)
        return self.table(kind, soc)

    def _residual(self, ch: str, values: np.ndarray, soc: np.ndarray, ambient: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) - self._reference(ch, soc, ambient)

    # ------------------------------------------------------------------ to and from tensors
    def inputs(self, current: np.ndarray, soc0: np.ndarray, ambient_temperature: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model inputs for whole sequences.

        Args:
            current: ``[B, L]`` [A] (NaN padding allowed, treated as 0).
            soc0: ``[B]`` initial SOC.
            ambient_temperature: ``[B]`` [K].
        Returns:
            ``x`` float32 ``[B, L, N_INPUTS]``, ``init`` float32 ``[B, N_INIT]``, ``soc`` float64 ``[B, L]``.
        """
        x, soc = self.interval_inputs(current, soc0, ambient_temperature)
        return x, self.init_vector(soc0, ambient_temperature), soc

    def interval_inputs(self, current: np.ndarray, soc0: np.ndarray, ambient_temperature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-interval inputs only: ``x`` float32 ``[B, L, N_INPUTS]`` and ``soc`` float64 ``[B, L]``
        (``soc0`` is the SOC before the first interval; stepping passes the last SOC)."""
        soc0 = np.asarray(soc0, dtype=np.float64).reshape(-1)
        amb = np.asarray(ambient_temperature, dtype=np.float64).reshape(-1)
        soc = self.soc_sequence(current, soc0)
        c_rate = np.nan_to_num(np.asarray(current, dtype=np.float64)) / self.one_c
        t_norm = np.broadcast_to(((amb - T_REF) / T_SCALE)[:, None], soc.shape)
        x = np.stack([c_rate, t_norm, soc, (self.table("ocv", soc) - V_MID) / V_SCALE], axis=-1)
        return x.astype(np.float32), soc

    def init_vector(self, soc0: np.ndarray, ambient_temperature: np.ndarray) -> np.ndarray:
        """``[B, N_INIT]`` float32 initial-condition features."""
        soc0 = np.asarray(soc0, dtype=np.float64).reshape(-1)
        amb = np.asarray(ambient_temperature, dtype=np.float64).reshape(-1)
        init = np.stack([soc0, (amb - T_REF) / T_SCALE, (self.table("ocv", soc0) - V_MID) / V_SCALE], axis=-1)
        return init.astype(np.float32)

    def targets(self, arrays: dict[str, np.ndarray], soc: np.ndarray, ambient_temperature: np.ndarray) -> np.ndarray:
        """Standardised residual targets ``[B, L, len(MODEL_CHANNELS)]`` float32 (NaN where padded)."""
        out = [
            (self._residual(ch, arrays[ch], soc, ambient_temperature) - m) / s
            for ch, m, s in zip(MODEL_CHANNELS, self.target_mean, self.target_std)
        ]
        return np.stack(out, axis=-1).astype(np.float32)

    def decode(self, y: np.ndarray | torch.Tensor, soc: np.ndarray, ambient_temperature: np.ndarray) -> dict[str, np.ndarray]:
        """Model outputs ``[B, L, C]`` (standardised residuals) -> physical channels ``[B, L]`` each."""
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        y = np.asarray(y, dtype=np.float64)
        soc = np.asarray(soc, dtype=np.float64)
        out = {}
        for i, (ch, m, s) in enumerate(zip(MODEL_CHANNELS, self.target_mean, self.target_std)):
            out[ch] = y[..., i] * s + m + self._reference(ch, soc, ambient_temperature)
        # Extremes can be no milder than the end-of-interval value they bracket.
        out["voltage_max"] = np.maximum(out["voltage_max"], out["voltage"])
        out["temperature_max"] = np.maximum(out["temperature_max"], out["temperature"])
        out["plating_margin_min"] = np.minimum(out["plating_margin_min"], out["plating_margin"])
        out["soc"] = soc
        return out
