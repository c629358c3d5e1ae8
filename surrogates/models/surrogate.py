"""A trained surrogate as a physical simulator: checkpoints in, channels in SI units out.

>>> from surrogates import load_surrogate
>>> s = load_surrogate("nmc", "jepa")                      # the checkpoint shipped in the repo
>>> out = s.simulate(current=-5.0 * np.ones(360), soc0=0.1, ambient_temperature=298.15)
>>> out["voltage"].shape                                   # (360,) [V], end of each 10 s interval

For the environment, ``initial_state`` / ``step`` advance a batch of cells one interval at a
time (``reset_rows`` restarts some of them), under ``torch.no_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogates.common.channels import check_kelvin
from surrogates.common.checkpoints import CheckpointError, load_checkpoint, write_checkpoint
from surrogates.models.features import Featurizer
from surrogates.models import ARCHITECTURES, DEFAULT_ARCH, architecture, inference_only, inference_state_dict, scatter_state

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
"""Shipped checkpoints: ``{chemistry}-{arch}.pt`` with a card ``{chemistry}-{arch}.md``."""
CHECKPOINT_FORMAT = 2
"""2: inference weights only (format 1 also held JEPA's training modules; still read)."""


def checkpoint_path(chemistry: str, arch: str) -> Path:
    """``{chemistry}-{arch}.pt``: in :data:`CHECKPOINT_DIR` for a shipped cell, in the cell's folder for a user's."""
    from surrogates.physics.chemistry import artefact_dir

    return artefact_dir(chemistry, "surrogates", CHECKPOINT_DIR) / f"{chemistry}-{arch}.pt"


def save_checkpoint(path: str | Path, model: torch.nn.Module, featurizer: Featurizer, meta: dict) -> None:
    """Write a surrogate checkpoint atomically (temporary file, then rename), as plain data
    (:func:`surrogates.common.checkpoints.write_checkpoint`: ``meta``'s numpy scalars become Python ones)."""
    from dataclasses import asdict

    blob = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.arch,
        "chemistry": featurizer.chemistry,
        "dt": featurizer.dt,
        "model_config": asdict(model.cfg),
        "state_dict": inference_state_dict(model),
        "featurizer": featurizer.to_dict(),
        "meta": meta,
    }
    write_checkpoint(blob, path)


@dataclass
class SurrogateState:
    """A batch of simulated cells between intervals.

    model: the architecture's recurrent state (batch in dim 0); soc ``(B,)`` float64
    coulomb-counted SOC; ambient ``(B,)`` [K]; steps ``(B,)`` intervals since reset.
    :meth:`Surrogate.step` never changes a state it is given, so a state can be stepped again
    with other currents (lookahead, MPC); :meth:`Surrogate.reset_rows` restarts rows in place.
    """

    model: dict
    soc: np.ndarray
    ambient: np.ndarray
    steps: np.ndarray


class Surrogate:
    """A trained surrogate (model + featurizer + provenance) for one chemistry and ``dt``."""

    def __init__(self, model: torch.nn.Module, featurizer: Featurizer, meta: dict, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.featurizer = featurizer
        self.meta = meta
        self.device = torch.device(device)

    arch = property(lambda self: self.model.arch)
    chemistry = property(lambda self: self.featurizer.chemistry)
    dt = property(lambda self: self.featurizer.dt)
    capacity_ah = property(lambda self: self.featurizer.capacity_ah)

    def _check_dt(self, dt: float | None) -> None:
        if dt is not None and abs(float(dt) - self.dt) > 1e-9:
            raise ValueError(
                f"this {self.chemistry}/{self.arch} surrogate was trained for dt={self.dt} s, not dt={dt} s; "
                f"train one for dt={dt} with `python experiments/train_surrogate.py --dt {dt}` on a dataset made for it"
            )

    # ------------------------------------------------------------------ whole sequences
    @torch.no_grad()
    def simulate(self, current, soc0, ambient_temperature=298.15, dt: float | None = None) -> dict[str, np.ndarray]:
        """Open-loop simulation of piecewise-constant currents.

        Args:
            current: ``[L]`` or ``[B, L]`` [A], PyBaMM sign (negative = charge); current[k]
                is applied during interval k.
            soc0: initial SOC, scalar or ``[B]``.
            ambient_temperature: [K], scalar or ``[B]``; the cell starts at it.
            dt: control interval [s]; must be the surrogate's (checked when given).
        Returns:
            channel -> float64 array of ``current``'s shape: ``voltage`` [V], ``temperature``
            [K], ``plating_margin`` [V], their interval extremes and ``soc``, each at the end
            of interval k.
        """
        self._check_dt(dt)
        cur = np.asarray(current, dtype=np.float64)
        single = cur.ndim == 1
        cur = np.atleast_2d(cur)
        if not np.all(np.isfinite(cur)):
            raise ValueError("current contains NaN or infinite values")
        B = cur.shape[0]
        soc0 = np.broadcast_to(np.asarray(soc0, dtype=np.float64), (B,))
        amb = np.broadcast_to(np.asarray(ambient_temperature, dtype=np.float64), (B,))
        check_kelvin(amb)
        x, init, soc = self.featurizer.inputs(cur, soc0, amb)
        y = self.model(torch.from_numpy(x).to(self.device), torch.from_numpy(init).to(self.device))
        out = self.featurizer.decode(y, soc, amb)
        return {k: v[0] for k, v in out.items()} if single else out

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def initial_state(self, soc0, ambient_temperature) -> SurrogateState:
        """A batch of cells at rest at ``soc0`` ``[B]`` and ``ambient_temperature`` ``[B]`` [K]."""
        soc0 = np.atleast_1d(np.asarray(soc0, dtype=np.float64))
        amb = np.broadcast_to(np.asarray(ambient_temperature, dtype=np.float64), soc0.shape).copy()
        check_kelvin(amb)
        init = torch.from_numpy(self.featurizer.init_vector(soc0, amb)).to(self.device)
        state = self.model.initial_state(len(soc0), init)
        return SurrogateState(model=state, soc=soc0.copy(), ambient=amb, steps=np.zeros(len(soc0), dtype=np.int64))

    @torch.no_grad()
    def step(self, state: SurrogateState, current) -> tuple[dict[str, np.ndarray], SurrogateState]:
        """Apply ``current`` ``[B]`` [A] for one interval to every cell of ``state``.

        Returns channel -> ``[B]`` float64 (end-of-interval values and extremes, ``soc``)
        and the new state; ``state`` itself is left as it was.
        """
        cur = np.asarray(current, dtype=np.float64).reshape(-1)
        if cur.shape != state.soc.shape:
            raise ValueError(f"current has shape {cur.shape}, expected {state.soc.shape} (one per cell)")
        if not np.all(np.isfinite(cur)):
            raise ValueError("current contains NaN or infinite values")
        x, soc = self.featurizer.interval_inputs(cur[:, None], state.soc, state.ambient)
        y, model_state = self.model.step(torch.from_numpy(x[:, 0]).to(self.device), state.model)
        out = self.featurizer.decode(y[:, None], soc, state.ambient)
        # ambient copied: reset_rows writes rows of the new state in place, which must not reach this one
        new = SurrogateState(model=model_state, soc=soc[:, 0], ambient=state.ambient.copy(), steps=state.steps + 1)
        return {k: v[:, 0] for k, v in out.items()}, new

    @torch.no_grad()
    def reset_rows(self, state: SurrogateState, rows, soc0, ambient_temperature) -> SurrogateState:
        """Restart the cells at ``rows`` (bool ``[B]`` or indices) at rest at ``soc0`` / ``ambient_temperature``.

        Only those rows are rebuilt and written into ``state`` in place (it is returned).
        """
        mask = np.zeros(len(state.soc), dtype=bool)
        mask[rows] = True
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return state
        soc0 = np.broadcast_to(np.asarray(soc0, dtype=np.float64), (len(idx),))
        amb = np.broadcast_to(np.asarray(ambient_temperature, dtype=np.float64), (len(idx),))
        fresh = self.initial_state(soc0, amb)
        scatter_state(state.model, torch.from_numpy(idx).to(self.device), fresh.model)
        state.soc[idx], state.ambient[idx], state.steps[idx] = soc0, amb, 0
        return state


def load_surrogate(chemistry: str = "nmc", arch: str | None = DEFAULT_ARCH, path: str | Path | None = None,
                   device: str | torch.device = "cpu", dt: float | None = None) -> Surrogate:
    """Load a surrogate checkpoint: the shipped one for ``chemistry``/``arch``, or ``path``.

    With ``path``, ``arch=None`` accepts whatever architecture the checkpoint holds.

    Refuses (:class:`CheckpointError`) a checkpoint of another architecture, chemistry or
    ``dt`` than asked for, naming what it holds and how to get the right one, and a file that is
    not a checkpoint, is truncated or holds more than plain data (read with ``weights_only=True``:
    nothing in it runs; :func:`surrogates.common.checkpoints.load_checkpoint`).
    """
    from surrogates.physics.chemistry import get_chemistry

    get_chemistry(chemistry)
    if arch is None and path is None:
        raise ValueError("give an architecture (transformer, mamba, jepa) or a checkpoint path")
    if arch is not None and arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid architectures are: {', '.join(ARCHITECTURES)}")
    p = Path(path) if path is not None else checkpoint_path(chemistry, arch)
    if not p.exists():
        shipped = sorted(q.stem for q in CHECKPOINT_DIR.glob("*.pt")) if CHECKPOINT_DIR.exists() else []
        raise FileNotFoundError(
            f"no surrogate checkpoint at {p}; shipped checkpoints: {', '.join(shipped) or 'none'}. Train one with "
            f"`python experiments/train_surrogate.py --chemistry {chemistry} --arch {arch}`"
        )
    blob = load_checkpoint(p)
    if not isinstance(blob, dict) or blob.get("format") not in (1, CHECKPOINT_FORMAT):
        raise CheckpointError(f"{p} is not a cellgym surrogate checkpoint of format {CHECKPOINT_FORMAT}")
    if arch is not None and blob["arch"] != arch:
        raise CheckpointError(f"{p} holds a {blob['arch']} surrogate, not {arch}; pass arch={blob['arch']!r} or another path")
    if blob["chemistry"] != chemistry:
        raise CheckpointError(f"{p} was trained on {blob['chemistry']} data, not {chemistry}; pass chemistry={blob['chemistry']!r}")
    if dt is not None and abs(float(dt) - float(blob["dt"])) > 1e-9:
        raise CheckpointError(
            f"{p} was trained for dt={blob['dt']} s, not dt={dt} s; train one for dt={dt} on a dataset generated with --dt {dt}"
        )
    arch = blob["arch"]
    cfg_cls, model_cls = architecture(arch)
    model = inference_only(model_cls(cfg_cls(**blob["model_config"])))
    weights = blob["state_dict"]
    if blob["format"] == 1:  # training modules were saved too
        weights = {k: v for k, v in weights.items() if k.split(".", 1)[0] not in getattr(model_cls, "training_modules", ())}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{p} does not match the {arch} architecture in this version: {err}") from None
    return Surrogate(model, Featurizer.from_dict(blob["featurizer"]), blob["meta"], device=device)


__all__ = ["Surrogate", "SurrogateState", "load_surrogate", "save_checkpoint", "checkpoint_path", "CheckpointError"]
