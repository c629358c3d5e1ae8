"""What simulates the cell under the environment: a neural surrogate or PyBaMM's DFN.

Both backends speak the same small protocol, in SI units and PyBaMM's sign (I < 0 charges):

* ``reset(soc, ambient_temperature) -> channels``: a cell at rest; the channels at t = 0.
* ``step(current) -> (channels, failure)``: apply ``current`` [A] for one interval ``dt``;
  ``channels`` holds :data:`surrogates.common.channels.OUTPUT_CHANNELS` (``voltage``, ``temperature``,
  ``plating_margin``, ``soc`` at the end of the interval and ``voltage_max``,
  ``temperature_max``, ``plating_margin_min`` within it) as floats; ``failure`` is None, or a
  message when the simulator could not simulate the interval (then ``channels`` is None and
  the cell needs ``reset``). Only the PyBaMM backend ever fails.

The batched surrogate environments (:mod:`envs.batch`) drive a :class:`~surrogates.models.surrogate.Surrogate`
directly; :func:`resolve_surrogate`, :func:`surrogate_rest_channels`, :func:`check_episode_length`
and :func:`apply_torch_settings` are shared with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from envs.config import DEFAULT_SURROGATE
from surrogates.common.channels import OUTPUT_CHANNELS


class Backend(Protocol):
    """A single simulated cell (see the module docstring)."""

    name: str
    dt: float

    def reset(self, soc: float, ambient_temperature: float) -> dict[str, float]: ...

    def step(self, current: float) -> tuple[dict[str, float] | None, str | None]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------- surrogate
def resolve_surrogate(surrogate, chemistry: str, device: str = "cpu"):
    """A :class:`~surrogates.models.surrogate.Surrogate` from what a user passes as ``surrogate=``.

    * an architecture name (``"mamba"``, ``"transformer"``, ``"jepa"``): the checkpoint shipped
      in ``surrogates/models/checkpoints/{chemistry}-{arch}.pt``;
    * a path to a checkpoint file (its architecture is read from the file);
    * a ``Surrogate`` object, used as is (its chemistry must match).
    """
    from surrogates.models import ARCHITECTURES
    from surrogates.models.surrogate import Surrogate, load_surrogate

    if isinstance(surrogate, Surrogate):
        if surrogate.chemistry != chemistry:
            raise ValueError(f"the surrogate was trained on {surrogate.chemistry!r}, but the env's chemistry is {chemistry!r}")
        return surrogate
    if isinstance(surrogate, str) and surrogate in ARCHITECTURES:
        return load_surrogate(chemistry, surrogate, device=device)
    if isinstance(surrogate, (str, Path)):
        path = Path(surrogate)
        if not path.is_file():
            raise FileNotFoundError(
                f"surrogate={str(surrogate)!r} is neither an architecture ({', '.join(ARCHITECTURES)}) nor a checkpoint file"
            )
        return load_surrogate(chemistry, None, path=path, device=device)  # the file records its architecture
    raise TypeError(f"surrogate must be an architecture name, a checkpoint path or a Surrogate, not {type(surrogate).__name__}")


def check_episode_length(surrogate, config) -> None:
    """Refuse an episode (``config.max_steps`` intervals) longer than the surrogate can step.

    A transformer steps at most ``max_len`` intervals from an initial state (its rotary table);
    its key/value cache grows as needed, so any shorter time limit works, set at construction or
    later (``set_attr("time_limit", ...)``). Mamba and JEPA have no limit.
    """
    limit = getattr(surrogate.model, "max_steps", None)
    if limit is not None and config.max_steps > limit:
        raise ValueError(
            f"time_limit={config.time_limit:g} s is {config.max_steps} intervals of {config.dt:g} s, but this "
            f"{surrogate.arch} surrogate steps at most {limit} (its max_len); lower time_limit to <= "
            f"{limit * config.dt:g} s or use a mamba or jepa surrogate")


def apply_torch_settings(config) -> None:
    """Apply the config's process-wide torch settings (``torch_threads``, ``flush_denormal``; see
    :class:`envs.config.ChargingConfig`). Imports torch, so call it where torch is used anyway."""
    import torch

    if config.torch_threads is not None and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    if config.flush_denormal is not None:
        torch.set_flush_denormal(config.flush_denormal)


def surrogate_rest_channels(surrogate, soc: np.ndarray, ambient_temperature: np.ndarray) -> dict[str, np.ndarray]:
    """Channels ``[B]`` of cells at rest (t = 0): the surrogate's own tables.

    Voltage = OCV(soc), plating margin = U_n(soc) (both tabulated from the DFN at rest at 25 C),
    temperature = ambient; the interval extremes equal the values.
    """
    f = surrogate.featurizer
    soc = np.asarray(soc, dtype=np.float64)
    out = {
        "voltage": f.table("ocv", soc),
        "temperature": np.asarray(ambient_temperature, dtype=np.float64).copy(),
        "plating_margin": f.table("u_neg", soc),
        "soc": soc.copy(),
    }
    out["voltage_max"], out["temperature_max"], out["plating_margin_min"] = (
        out["voltage"].copy(), out["temperature"].copy(), out["plating_margin"].copy())
    return {k: out[k] for k in OUTPUT_CHANNELS}


class SurrogateBackend:
    """One cell on a neural surrogate (a batch of one). Never fails."""

    name = "surrogate"

    def __init__(self, surrogate, chemistry: str, dt: float, device: str = "cpu"):
        self.surrogate = resolve_surrogate(surrogate, chemistry, device)
        self.surrogate._check_dt(dt)
        self.dt = float(dt)
        self._state = None

    def reset(self, soc: float, ambient_temperature: float) -> dict[str, float]:
        soc_a, amb_a = np.array([soc], dtype=np.float64), np.array([ambient_temperature], dtype=np.float64)
        self._state = self.surrogate.initial_state(soc_a, amb_a)
        return {k: float(v[0]) for k, v in surrogate_rest_channels(self.surrogate, soc_a, amb_a).items()}

    def step(self, current: float) -> tuple[dict[str, float], None]:
        if self._state is None:
            raise RuntimeError("SurrogateBackend.step called before reset")
        out, self._state = self.surrogate.step(self._state, np.array([current], dtype=np.float64))
        return {k: float(out[k][0]) for k in OUTPUT_CHANNELS}, None

    def close(self) -> None:
        self._state = None


# ---------------------------------------------------------------------- PyBaMM
class PyBaMMBackend:
    """One cell on PyBaMM's DFN (:class:`surrogates.physics.dfn.DFNSimulator`).

    The DFN is built lazily, at the first ``reset`` (about 2 s), so making an env to read its
    spaces costs nothing. :class:`~surrogates.physics.dfn.DFNSolverError` and
    :class:`~surrogates.physics.dfn.SimulationWindowError` from a step become ``failure`` (the
    message); the next ``reset`` makes the simulator usable again.
    """

    name = "pybamm"

    def __init__(self, chemistry: str, dt: float, **simulator_kwargs):
        self.chemistry = chemistry
        self.dt = float(dt)
        self._kwargs = simulator_kwargs
        self.sim = None

    def _simulator(self):
        if self.sim is None:
            from surrogates.physics.dfn import DFNSimulator

            self.sim = DFNSimulator(self.chemistry, dt=self.dt, **self._kwargs)
        return self.sim

    def reset(self, soc: float, ambient_temperature: float) -> dict[str, float]:
        return {k: float(v) for k, v in self._simulator().reset(soc, ambient_temperature).items()}

    def step(self, current: float) -> tuple[dict[str, float] | None, str | None]:
        from surrogates.physics.dfn import DFNError

        try:
            out = self._simulator().step(current)
        except DFNError as err:  # DFNSolverError, SimulationWindowError
            return None, f"{type(err).__name__}: {err}"
        return {k: float(out[k]) for k in self.sim.channels}, None  # + DEGRADATION_CHANNELS with degradation=True

    def close(self) -> None:
        pass


def make_backend(backend: str, *, config, surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 pybamm_options: dict | None = None) -> Backend:
    """``"surrogate"`` or ``"pybamm"`` -> a backend for the task ``config`` (an :class:`envs.config.ChargingConfig`).

    ``pybamm_options``: keyword arguments of :class:`surrogates.physics.dfn.DFNSimulator` for the pybamm
    backend, e.g. ``{"degradation": True}``.
    """
    if pybamm_options and backend != "pybamm":
        raise ValueError(f"pybamm_options apply to the pybamm backend, not {backend!r}")
    chemistry, dt = config.chemistry, config.dt
    if backend == "surrogate":
        apply_torch_settings(config)
        sb = SurrogateBackend(surrogate, chemistry, dt, device=device)
        check_episode_length(sb.surrogate, config)
        return sb
    if backend == "pybamm":
        return PyBaMMBackend(chemistry, dt, **(pybamm_options or {}))
    raise ValueError(f"backend must be 'surrogate' or 'pybamm', not {backend!r}")
