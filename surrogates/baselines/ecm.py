"""The equivalent-circuit baseline: PyBaMM's Thevenin model (OCV + R0 + one RC pair) fitted to DFN data.

Glossary (units as in :mod:`surrogates.common.channels`; PyBaMM sign, positive current = discharge):

    I      applied current [A], constant over each interval of ``dt`` seconds
    soc    coulomb-counted state of charge [1]
    OCV    open-circuit voltage [V], a table in soc
    R0     series resistance [Ohm]
    R1,C1  the RC pair [Ohm], [F]; tau = R1*C1 [s]; v1 its voltage [V] (> 0 on discharge)
    T      lumped cell temperature [K]; T_amb the ambient [K]; the cell starts at T_amb
    C_th   cell heat capacity [J/K];  hA  heat-transfer coefficient x area to ambient [W/K]

Model (the same equations in :func:`simulate_ecm_numpy` and, via PyBaMM's own
``pybamm.equivalent_circuit.Thevenin``, in :func:`simulate_ecm_pybamm`)::

    d soc/dt = -I / (3600 Q)
    d v1/dt  = (R1 I - v1) / tau, tau = R1 C1      (PyBaMM's state is -v1, same equation)
    V        = OCV(soc) - R0 I - v1
    C_th dT/dt = I^2 R0 + I v1 - hA (T - T_amb)      (ohmic + RC losses; no entropic term)

The ECM has no entropic change: its OCV table does not move with temperature and its heat has no
reversible term (PyBaMM's Thevenin gets "Entropic change [V/K]" = 0). Whether the DFN it is fitted
to has one is the cell's parameter set's to say, and each fit records it, read from the parameter
values (:func:`entropic_heat`, ``info["entropic_heat"]``). Of the shipped cells, Chen2020
(nmc) and Prada2013 (lfp) set both electrodes' OCP entropic change to 0, so nothing is left out;
Ai2020 (lco) defines one per electrode, which the fitted resistances and thermal node can only absorb.

R0, R1 and C1 are piecewise-linear in soc on ``soc_grid`` knots (held constant outside
[soc_grid[0], soc_grid[-1]]), and R0, R1 carry an Arrhenius factor in the cell temperature,
``exp(E/T - E/T_ref)`` with ``E = r0_activation`` or ``r1_activation`` [K] (activation
energy over the gas constant). The DFN data span 10-40 C ambient and up to ~50 K of
self-heating; a resistance that ignores temperature is badly wrong at either end.

Discrete time (numpy): exact zero-order hold over each interval for the RC pair,
``v1[k] = v1[k-1] a + R1 (1 - a) I[k]``, ``a = exp(-dt/tau)``, with R1, tau evaluated at
the interval's mid-point soc and (predictor-corrector) mid-point temperature; the interval's
mean heat (the RC term averaged exactly over the exponential) drives an exact ZOH update of
the thermal node; the voltage at the end of the interval uses OCV and R0 at the end soc and
temperature. Alignment is the dataset's: ``current[k]`` during interval k, ``voltage[k]``,
``temperature[k]``, ``soc[k]`` at its end. PyBaMM integrates the same ODEs continuously;
they agree to well under 1 mV (tested): about 0.01-0.1 mV on the DFN protocols, 0.6 mV at
worst with 5C and ~1 K of self-heating per interval (the mid-point rule is second order;
``simulate_ecm_numpy(..., substeps=2)`` quarters that, but ``fit_ecm`` fits the one-step model).

Thermal in PyBaMM: Thevenin has two nodes, cell and jig. We set the jig's thermal mass to
1e12 J/K so the jig stays at its initial temperature (= the ambient) and "cell-jig heat
transfer coefficient" = hA: the cell then sees exactly ``hA (T - T_amb)``, our single node.
(The only difference: a *time-varying* ambient would reach the cell only through the jig;
here the ambient is constant per sequence, as in the datasets.)

Fitting (:func:`fit_ecm`) is least squares on training sequences in three stages, each a
``scipy.optimize.least_squares`` with a Jacobian from finite differences computed for all
parameters at once as a batch of perturbed models through the same vectorised simulator:

1. voltage: log R0, log R1, log C1 knots (optionally an OCV correction on the same knots,
   added to the DFN rest table of the featurizer) and both activation temperatures, with the
   cell temperature taken from the data (teacher forcing);
2. thermal: log C_th and log tau_th = C_th/hA on the data temperature, the node driven by the
   heat the data imply, I (OCV - V_data) (the circuit's heat if its voltage were exact);
3. the circuit again, open loop (the model's own temperature), on voltage and temperature,
   the thermal node fixed (see :func:`_fit_thermal` for why).

Smoothness penalties on the knot values keep knots the data barely visit sane.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

from surrogates.common.channels import SECONDS_PER_HOUR, check_kelvin  # noqa: E402

FITS_DIR = Path(__file__).resolve().parent / "fits"
"""Shipped ECM fits: ``{chemistry}-ecm.json`` (refit with ``validate_surrogates.py --fit-ecm``)."""


def ecm_fit_path(chemistry: str) -> Path:
    """``{chemistry}-ecm.json``: in :data:`FITS_DIR` for a shipped cell, in the cell's folder for a user's."""
    from surrogates.physics.chemistry import artefact_dir

    return artefact_dir(chemistry, "baselines", FITS_DIR) / f"{chemistry}-ecm.json"


T_REF = 298.15
"""Reference temperature [K] of the knot values (the Arrhenius factor is 1 there)."""

_JIG_MASS = 1e12  # J/K: makes PyBaMM's jig node an ideal heat sink at the ambient

ENTROPIC_CHANGE_PARAMETERS: tuple[str, ...] = ("Negative electrode OCP entropic change [V.K-1]",
                                               "Positive electrode OCP entropic change [V.K-1]")
"""The DFN's entropic change dU/dT of each electrode's OCP: the OCP moves with temperature by it, and the
lumped thermal model adds the reversible heat it implies. The ECM has no such term."""


def entropic_change(values) -> dict[str, str]:
    """What PyBaMM parameter values set for each of :data:`ENTROPIC_CHANGE_PARAMETERS`, in words.

    A number is ``"zero"`` or ``"nonzero constant, <v> V/K"``; a function (or table) of the particle
    stoichiometry is evaluated on 0.01-0.99 through PyBaMM and is ``"nonzero function of stoichiometry
    (<name>)"`` unless it is 0 there (``"zero"``); a parameter the set lacks is ``"not set"``.
    """
    import pybamm

    out = {}
    for name in ENTROPIC_CHANGE_PARAMETERS:
        if name not in values.keys():
            out[name] = "not set"
            continue
        value = values[name]
        if isinstance(value, (int, float, np.number)):
            out[name] = "zero" if float(value) == 0.0 else f"nonzero constant, {float(value):.4g} V/K"
            continue
        electrode = name.split()[0]
        sto = pybamm.Vector(np.linspace(0.01, 0.99, 99))
        symbol = pybamm.FunctionParameter(name, {f"{electrode} particle stoichiometry": sto})
        with np.errstate(all="ignore"):
            dudt = np.abs(np.asarray(values.process_symbol(symbol).evaluate(), dtype=np.float64))
        label = getattr(value, "__name__", None) or type(value).__name__
        out[name] = f"nonzero function of stoichiometry ({label})" if np.nanmax(dudt, initial=0.0) > 0 else "zero"
    return out


def entropic_heat(chemistry: str) -> str:
    """What a fit on ``chemistry``'s DFN records as ``info["entropic_heat"]``: whether the cell's parameter
    values (:meth:`~surrogates.physics.chemistry.Chemistry.parameter_values`) have an entropic change
    (:func:`entropic_change`) and what the ECM, which has none, does with it."""
    from surrogates.physics.chemistry import get_chemistry

    chem = get_chemistry(chemistry)
    found = entropic_change(chem.parameter_values())
    if any(v == "not set" for v in found.values()):
        missing = [k for k, v in found.items() if v == "not set"]
        return f"unknown: {chem.parameter_set} does not set {' or '.join(missing)}"
    if all(v == "zero" for v in found.values()):
        return (f"none: {chem.parameter_set} sets both electrodes' OCP entropic change ({' and '.join(found)}) to 0: "
                "the DFN has no entropic heat and its OCV does not move with temperature, as in the ECM (no entropic term)")
    said = "; ".join(f"{k}: {v}" for k, v in found.items())
    return (f"left out: {chem.parameter_set} has an entropic change ({said}), so the DFN's OCV moves with temperature "
            "and its heat has a reversible term; the ECM has neither (no entropic term in its heat, PyBaMM Thevenin's "
            "\"Entropic change [V/K]\" = 0, its OCV table the DFN's rest OCV at 25 C): the fitted resistances, "
            "activation temperatures and thermal node absorb what they can of both")


@dataclass
class ECMParameters:
    """A fitted one-RC Thevenin model with a lumped thermal node (JSON-able via to_dict).

    Attributes:
        chemistry: chemistry name of the data it was fitted on.
        dt: control interval [s] it was fitted for (simulate functions refuse another).
        capacity_ah: capacity used for coulomb counting [A.h].
        soc_grid: knots of R0, R1, C1 (increasing).
        r0, r1: [Ohm] at the knots, at ``t_ref``.
        c1: [F] at the knots.
        ocv_soc_grid: SOC points of the OCV table (increasing).
        ocv: [V] at ``ocv_soc_grid``.
        heat_capacity: cell heat capacity C_th [J/K].
        heat_transfer: heat-transfer coefficient x area to the ambient, hA [W/K].
        r0_activation, r1_activation: Arrhenius temperatures E/R [K] of R0 and R1.
        t_ref: reference temperature of r0, r1 [K].
        info: fitting provenance (data, sizes, residuals, wall time).
    """

    chemistry: str
    dt: float
    capacity_ah: float
    soc_grid: list[float]
    r0: list[float]
    r1: list[float]
    c1: list[float]
    ocv_soc_grid: list[float]
    ocv: list[float]
    heat_capacity: float
    heat_transfer: float
    r0_activation: float = 0.0
    r1_activation: float = 0.0
    t_ref: float = T_REF
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("soc_grid", "r0", "r1", "c1", "ocv_soc_grid", "ocv"):
            setattr(self, name, [float(v) for v in getattr(self, name)])
        n = len(self.soc_grid)
        if n < 2 or any(len(getattr(self, k)) != n for k in ("r0", "r1", "c1")):
            raise ValueError("soc_grid, r0, r1 and c1 must have the same length >= 2")
        if len(self.ocv_soc_grid) < 2 or len(self.ocv) != len(self.ocv_soc_grid):
            raise ValueError("ocv_soc_grid and ocv must have the same length >= 2")
        if np.any(np.diff(self.soc_grid) <= 0) or np.any(np.diff(self.ocv_soc_grid) <= 0):
            raise ValueError("soc_grid and ocv_soc_grid must be strictly increasing")
        if min(self.r0 + self.r1 + self.c1) <= 0 or self.heat_capacity <= 0 or self.heat_transfer <= 0:
            raise ValueError("resistances, capacitances, heat capacity and heat transfer must be > 0")

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "ECMParameters":
        return cls(**d)

    # ------------------------------------------------------------------ checks / tables
    def check(self, dt: float | None = None, chemistry: str | None = None) -> None:
        """Refuse a request for another ``dt`` or chemistry than the one fitted for."""
        if dt is not None and abs(float(dt) - self.dt) > 1e-9:
            raise ValueError(
                f"these ECM parameters were fitted for dt={self.dt} s, not dt={dt} s; "
                f"refit them with fit_ecm on a dataset made for dt={dt} s"
            )
        if chemistry is not None and chemistry != self.chemistry:
            raise ValueError(
                f"these ECM parameters were fitted on {self.chemistry} data, not {chemistry}; "
                f"fit them with fit_ecm on a {chemistry} dataset"
            )

    def ocv_at(self, soc) -> np.ndarray:
        return np.interp(soc, self.ocv_soc_grid, self.ocv)

    def arrhenius(self, activation: float, temperature) -> np.ndarray:
        return np.exp(activation * (1.0 / np.asarray(temperature, dtype=np.float64) - 1.0 / self.t_ref))


# =========================================================================== numpy simulator
def _positions(knots: np.ndarray, soc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment index and weight of ``soc`` on ``knots`` (clamped: constant outside)."""
    s = np.clip(soc, knots[0], knots[-1])
    idx = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, len(knots) - 2)
    w = (s - knots[idx]) / (knots[idx + 1] - knots[idx])
    return idx, w


def _lerp(values: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``values`` [V, N] at positions (idx, w) [B] -> [V, B]."""
    return values[:, idx] * (1.0 - w) + values[:, idx + 1] * w


def _core(knots, r0, r1, c1, dv_ocv, th0, th1, cth, hA, *, dt, t_ref, current, soc0, soc, ocv_end, ambient,
          temperature_data=None, want_heat=False):
    """Vectorised simulation of V model variants x B sequences (the one numpy implementation).

    Args:
        knots: [N]; r0, r1, c1 (at ``t_ref``), dv_ocv (OCV correction): [V, N] at the knots.
        th0, th1 (activation temperatures [K]), cth [J/K], hA [W/K]: [V].
        current: [B, L] [A], finite; soc0: [B]; soc: [B, L] coulomb-counted at interval ends;
        ocv_end: [B, L] base OCV table at ``soc``; ambient: [B] [K].
        temperature_data: [B, L] forces the cell temperature (teacher forcing while fitting).
    Returns:
        voltage [V, B, L], temperature [V, B, L] (None when forced), and with ``want_heat``
        the mean heat of each interval [V, B, L] [W].
    """
    n_var = r0.shape[0]
    B, L = current.shape
    soc_start = np.concatenate([soc0[:, None], soc[:, :-1]], axis=1)
    idx_m, w_m = _positions(knots, 0.5 * (soc_start + soc))
    idx_e, w_e = _positions(knots, soc)
    th0 = np.asarray(th0, dtype=np.float64)[:, None]
    th1 = np.asarray(th1, dtype=np.float64)[:, None]
    cth = np.asarray(cth, dtype=np.float64)[:, None]
    hA = np.asarray(hA, dtype=np.float64)[:, None]
    e_th = np.exp(-dt * hA / cth)  # [V, 1]
    g_th = (1.0 - e_th) / hA
    inv_ref = 1.0 / t_ref

    volt = np.empty((n_var, B, L))
    forced = temperature_data is not None
    temp = None if forced else np.empty((n_var, B, L))
    heat = np.empty((n_var, B, L)) if want_heat else None
    v1 = np.zeros((n_var, B))
    T = np.broadcast_to(np.asarray(ambient, dtype=np.float64), (n_var, B))
    amb = np.asarray(ambient, dtype=np.float64)[None, :]
    for k in range(L):
        I = current[:, k]
        im, wm, ie, we = idx_m[:, k], w_m[:, k], idx_e[:, k], w_e[:, k]
        r1m, c1m = _lerp(r1, im, wm), _lerp(c1, im, wm)
        r0m = _lerp(r0, im, wm) if want_heat or not forced else None
        if forced:
            T_end = np.broadcast_to(temperature_data[:, k], (n_var, B))
        n_pass = 1 if forced else 2  # open loop: predictor at T_start, corrector at the mid-point
        Tm = 0.5 * (T + T_end) if forced else T
        for p in range(n_pass):
            if p == 1:
                Tm = 0.5 * (T + T_end)
            inv_m = 1.0 / Tm - inv_ref
            R1 = r1m * np.exp(th1 * inv_m)
            tau = R1 * c1m
            a = np.exp(-dt / tau)
            target = R1 * I
            if want_heat or not forced:
                # mean heat of the interval, the RC term averaged exactly over its exponential
                v1_mean = target + (v1 - target) * (tau / dt) * (1.0 - a)
                q = I * I * r0m * np.exp(th0 * inv_m) + I * v1_mean
                if not forced:
                    T_end = amb + (T - amb) * e_th + q * g_th
        v1 = target + (v1 - target) * a
        T = T_end
        if temp is not None:
            temp[:, :, k] = T
        if want_heat:
            heat[:, :, k] = q
        r0e = _lerp(r0, ie, we) * np.exp(th0 * (1.0 / T - inv_ref))
        volt[:, :, k] = ocv_end[:, k] + _lerp(dv_ocv, ie, we) - r0e * I - v1
    if want_heat:
        return volt, temp, heat
    return volt, temp


def _as_batch(x, name: str, B: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D array [B], got shape {arr.shape}")
    return np.broadcast_to(arr.reshape(-1), (B,)).copy()


def _expand(current: np.ndarray, soc0: np.ndarray, substeps: int, dt: float, capacity_ah: float):
    """Currents and coulomb-counted SOC on ``substeps`` sub-intervals per interval."""
    sub = np.repeat(current, substeps, axis=1) if substeps > 1 else current
    soc = soc0[:, None] - np.cumsum(sub, axis=1) * (dt / substeps) / SECONDS_PER_HOUR / capacity_ah
    return sub, soc


def simulate_ecm_numpy(params: ECMParameters, current, soc0, ambient_temperature, *,
                       dt: float | None = None, chemistry: str | None = None,
                       substeps: int = 1) -> dict[str, np.ndarray]:
    """Open-loop ECM simulation of a batch of sequences, vectorised numpy.

    Args:
        params: fitted :class:`ECMParameters`.
        current: [B, L] [A], PyBaMM sign, ``current[k]`` held during interval k (an [L] array
            is one sequence, and then the outputs are [L]); NaN (padding) counts as 0.
        soc0: [B] initial SOC; ambient_temperature: [B] [K] (the cell starts at it).
        dt, chemistry: what the caller works at; must match ``params`` (else ValueError).
        substeps: ZOH sub-intervals per interval. 1 is the model :func:`fit_ecm` fits; more
            converge (second order) to the continuous ODE PyBaMM solves (at 5C with ~1 K of
            self-heating per interval: 0.6 mV apart with 1, 0.15 mV with 2).
    Returns:
        ``{"voltage" [V], "temperature" [K], "soc"}`` at the end of each interval, float64,
        shaped like ``current``.
    """
    params.check(dt=dt, chemistry=chemistry)
    cur = np.asarray(current, dtype=np.float64)
    one = cur.ndim == 1
    if cur.ndim not in (1, 2):
        raise ValueError(f"current must be [B, L] or [L], got shape {cur.shape}")
    cur = np.nan_to_num(np.atleast_2d(cur))
    B = cur.shape[0]
    soc0 = _as_batch(soc0, "soc0", B)
    amb = _as_batch(ambient_temperature, "ambient_temperature", B)
    check_kelvin(amb)
    ns = int(substeps)
    if ns < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps!r}")
    sub_cur, sub_soc = _expand(cur, soc0, ns, params.dt, params.capacity_ah)
    row = lambda v: np.asarray(v, dtype=np.float64)[None, :]  # noqa: E731
    volt, temp = _core(
        np.asarray(params.soc_grid), row(params.r0), row(params.r1), row(params.c1),
        np.zeros((1, len(params.soc_grid))), [params.r0_activation], [params.r1_activation],
        [params.heat_capacity], [params.heat_transfer], dt=params.dt / ns, t_ref=params.t_ref,
        current=sub_cur, soc0=soc0, soc=sub_soc, ocv_end=params.ocv_at(sub_soc), ambient=amb,
    )
    out = {"voltage": volt[0, :, ns - 1::ns], "temperature": temp[0, :, ns - 1::ns], "soc": sub_soc[:, ns - 1::ns]}
    return {k: v[0] for k, v in out.items()} if one else out


# =========================================================================== fitting
class _Problem:
    """Packs parameters into one vector and evaluates residuals for batches of variants.

    Vector layout: log R0 [N] | log R1 [N] | log C1 [N] | OCV correction [N] (V) |
    E0/1000, E1/1000 [kK] | log C_th | log tau_th (= C_th / hA, so it can be bounded below).
    """

    def __init__(self, knots, current, soc0, soc, ocv_end, ambient, volt_data, temp_data, mask, dt,
                 w_temp, w_smooth, w_ocv_smooth, w_ocv_ridge):
        self.knots, self.N = knots, len(knots)
        self.current, self.soc0, self.soc, self.ocv_end, self.ambient = current, soc0, soc, ocv_end, ambient
        self.volt_data, self.temp_data, self.mask, self.dt = volt_data, temp_data, mask, dt
        self.w_temp = w_temp
        root_m = math.sqrt(mask.sum())
        self.w_smooth, self.w_ocv_smooth, self.w_ocv_ridge = (root_m * w_smooth, root_m * w_ocv_smooth,
                                                             root_m * w_ocv_ridge)
        N = self.N
        self.sl = {"r0": slice(0, N), "r1": slice(N, 2 * N), "c1": slice(2 * N, 3 * N), "dv": slice(3 * N, 4 * N)}
        self.i_th0, self.i_th1, self.i_cth, self.i_tau_th = 4 * N, 4 * N + 1, 4 * N + 2, 4 * N + 3
        self.P = 4 * N + 4

    def unpack(self, X):
        X = np.atleast_2d(X)
        e = np.exp
        cth = e(X[:, self.i_cth])
        return (e(X[:, self.sl["r0"]]), e(X[:, self.sl["r1"]]), e(X[:, self.sl["c1"]]), X[:, self.sl["dv"]],
                1000.0 * X[:, self.i_th0], 1000.0 * X[:, self.i_th1], cth, cth / e(X[:, self.i_tau_th]))

    def simulate(self, X, forced: bool, want_heat: bool = False):
        r0, r1, c1, dv, th0, th1, cth, hA = self.unpack(X)
        return _core(self.knots, r0, r1, c1, dv, th0, th1, cth, hA, dt=self.dt, t_ref=T_REF,
                     current=self.current, soc0=self.soc0, soc=self.soc, ocv_end=self.ocv_end,
                     ambient=self.ambient, temperature_data=self.temp_data if forced else None,
                     want_heat=want_heat)

    def residuals(self, X, forced: bool, use_voltage: bool = True) -> np.ndarray:
        """[V, M] residuals of variants X [V, P]."""
        X = np.atleast_2d(X)
        volt, temp = self.simulate(X, forced)
        parts = []
        if use_voltage:
            parts.append((volt - self.volt_data)[:, self.mask])
        if not forced:
            parts.append(self.w_temp * (temp - self.temp_data)[:, self.mask])
        d2 = lambda a: a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]  # noqa: E731
        for name in ("r0", "r1", "c1"):
            parts.append(self.w_smooth * d2(X[:, self.sl[name]]))
        parts.append(self.w_ocv_smooth * d2(X[:, self.sl["dv"]]))
        parts.append(self.w_ocv_ridge * X[:, self.sl["dv"]])
        return np.concatenate(parts, axis=1)

    def solve(self, x0, free, lower, upper, forced, use_voltage=True, max_nfev=30, verbose=0,
              loss="linear", f_scale=1.0):
        """least_squares over the ``free`` entries of the vector; a batched finite-difference Jacobian."""
        free = np.asarray(free)
        steps = np.full(len(free), 1e-5)
        cache: dict = {}

        def full(z):
            x = x0.copy()
            x[free] = z
            return x

        def fun(z):
            key = z.tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = (self.residuals(full(z), forced, use_voltage)[0], None)
            return cache[key][0]

        def jac(z):
            key = z.tobytes()
            X = np.repeat(full(z)[None, :], len(free) + 1, axis=0)
            X[np.arange(1, len(free) + 1), free] += steps
            R = self.residuals(X, forced, use_voltage)
            cache.clear()
            cache[key] = (R[0], None)
            return ((R[1:] - R[0]) / steps[:, None]).T

        z0 = np.clip(x0[free], lower[free] + 1e-9, upper[free] - 1e-9)
        res = least_squares(fun, z0, jac=jac, bounds=(lower[free], upper[free]), method="trf",
                            x_scale="jac", max_nfev=max_nfev, ftol=1e-9, xtol=1e-9, gtol=1e-10, verbose=verbose,
                            loss=loss, f_scale=f_scale)
        return full(res.x), res


def _fit_thermal(heat, temp_data, ambient, mask, dt, z0, lower, upper, max_nfev):
    """(log C_th, log tau_th) of the thermal node driven by the heat the data imply.

    Fitting the node on the circuit's own heat instead lets it trade thermal realism for
    voltage: a too-light cell heats fast and the Arrhenius factor then lowers the resistance
    at high current, a stand-in for the Butler-Volmer nonlinearity a linear circuit lacks.
    """
    def fun(z):
        cth, tau = math.exp(z[0]), math.exp(z[1])
        e = math.exp(-dt / tau)
        g = (1.0 - e) * tau / cth
        T = np.empty_like(temp_data)
        prev = ambient.copy()
        for k in range(temp_data.shape[1]):
            prev = ambient + (prev - ambient) * e + heat[:, k] * g
            T[:, k] = prev
        return (T - temp_data)[mask]

    z0 = np.clip(z0, lower + 1e-9, upper - 1e-9)
    res = least_squares(fun, z0, bounds=(lower, upper), method="trf", x_scale="jac", max_nfev=max_nfev)
    return res.x, res


def fit_ecm(dataset_train, featurizer, *, n_knots: int = 16, max_sequences: int = 160, seed: int = 0,
            refit_ocv: bool = False, joint: bool = True, temperature_weight: float = 2e-3,
            loss: str = "soft_l1", f_scale: float = 0.01, smoothness: float = 3e-3,
            max_nfev: tuple[int, int, int] = (40, 20, 15), verbose: int = 0) -> ECMParameters:
    """Fit an :class:`ECMParameters` to a training :class:`~surrogates.data.Dataset`.

    Args:
        dataset_train: the training sequences (``Dataset``; only its rows with length >= 1 count).
        featurizer: a :class:`~surrogates.models.features.Featurizer` of the same chemistry and dt:
            its DFN rest OCV table is the starting OCV, its capacity the coulomb count.
        n_knots: SOC knots of R0, R1, C1 and the OCV correction (uniform on [0, 1]).
        max_sequences: fit on at most this many sequences (a seeded random subset) to keep
            the fit to about a minute on one core.
        refit_ocv: add a fitted OCV correction on the knots to the rest table. Off by default:
            the rest table is the DFN's exact OCV, and on charge-dominated data a correction
            mostly absorbs the mean charging overpotential (+10 mV mid-SOC on nmc), which is
            then wrong at rest and in the heat.
        joint: run stage 3 (open-loop joint refinement of all parameters).
        temperature_weight: [V/K] weight of temperature residuals against voltage in stage 3.
        smoothness: [V] weight of the second differences of log R0, log R1, log C1 over the
            knots, per root of the number of residuals (a second difference of 1 costs about as
            much as ``smoothness`` volts of RMS error). Too little lets the knots of a flat-OCV
            cell (LFP) swing by orders of magnitude from one knot to the next.
        loss, f_scale: ``least_squares`` loss and its scale [V] (default soft L1 beyond 10 mV:
            the few steps where the DFN falls off a cliff the one-RC circuit cannot follow,
            near empty or full at high C-rate, then do not drag the knots to absurd values).
        max_nfev: function-evaluation limits of the three stages.
    """
    t_start = time.perf_counter()
    dt = float(dataset_train.dt)
    if abs(float(featurizer.dt) - dt) > 1e-9:
        raise ValueError(f"featurizer is for dt={featurizer.dt} s but the dataset for dt={dt} s; "
                         "build the featurizer from the same dataset with Featurizer.from_dataset(dataset)")
    chem = dataset_train.meta.get("chemistry", featurizer.chemistry)
    if chem != featurizer.chemistry:
        raise ValueError(f"featurizer is for {featurizer.chemistry} but the dataset holds {chem} data")
    if n_knots < 3:
        raise ValueError("n_knots must be >= 3")
    entropic = entropic_heat(featurizer.chemistry)  # read from the cell's parameter values (PyBaMM), before the fit

    lengths = np.asarray(dataset_train.lengths)
    rows = np.flatnonzero(lengths >= 1)
    if len(rows) == 0:
        raise ValueError("the training dataset has no sequence with at least one interval")
    rng = np.random.default_rng(seed)
    if len(rows) > max_sequences:
        rows = np.sort(rng.choice(rows, size=max_sequences, replace=False))
    L = int(lengths[rows].max())
    arr = dataset_train.arrays
    current = np.nan_to_num(np.asarray(arr["current"][rows, :L], dtype=np.float64))
    mask = np.arange(L)[None, :] < lengths[rows, None]
    current = np.where(mask, current, 0.0)
    soc0 = np.asarray(dataset_train.initial["soc"][rows], dtype=np.float64)
    ambient = np.asarray(dataset_train.initial["ambient_temperature"][rows], dtype=np.float64)
    check_kelvin(ambient)
    soc = featurizer.soc_sequence(current, soc0)
    volt_data = np.where(mask, np.asarray(arr["voltage"][rows, :L], dtype=np.float64), 0.0)
    temp_data = np.where(mask, np.asarray(arr["temperature"][rows, :L], dtype=np.float64), ambient[:, None])
    if not (np.all(np.isfinite(volt_data)) and np.all(np.isfinite(temp_data))):
        raise ValueError("the training dataset has non-finite voltage/temperature inside a sequence")

    knots = np.linspace(0.0, 1.0, n_knots)
    prob = _Problem(knots, current, soc0, soc, featurizer.table("ocv", soc), ambient, volt_data, temp_data, mask, dt,
                    w_temp=temperature_weight, w_smooth=smoothness, w_ocv_smooth=3e-2, w_ocv_ridge=3e-3)
    N = n_knots
    cap = float(featurizer.capacity_ah)
    x0 = np.zeros(prob.P)
    # Starting point: an ordinary 5 Ah cell scaled by capacity, 30 s RC, 25 kJ/mol activation.
    x0[prob.sl["r0"]] = math.log(0.1 / cap)
    x0[prob.sl["r1"]] = math.log(0.05 / cap)
    x0[prob.sl["c1"]] = math.log(30.0 / (0.05 / cap))
    x0[prob.i_th0] = x0[prob.i_th1] = 3.0
    x0[prob.i_cth] = math.log(15.0 * cap)
    x0[prob.i_tau_th] = math.log(2000.0)
    lower = np.full(prob.P, -np.inf)
    upper = np.full(prob.P, np.inf)
    for name in ("r0", "r1"):  # up to 1 Ohm for a 1 A.h cell: 1C then drops 1 V
        lower[prob.sl[name]], upper[prob.sl[name]] = math.log(1e-6), math.log(1.0 / cap)
    lower[prob.sl["c1"]], upper[prob.sl["c1"]] = math.log(1e-2), math.log(1e8)
    lower[prob.sl["dv"]], upper[prob.sl["dv"]] = -0.3, 0.3
    lower[[prob.i_th0, prob.i_th1]], upper[[prob.i_th0, prob.i_th1]] = -2.0, 15.0
    lower[prob.i_cth], upper[prob.i_cth] = math.log(0.1), math.log(1e6)
    # a lumped cell node relaxes over minutes at least; faster would be the fit cheating
    lower[prob.i_tau_th], upper[prob.i_tau_th] = math.log(10.0 * dt), math.log(1e7)

    volt_params = list(range(3 * N)) + (list(range(3 * N, 4 * N)) if refit_ocv else []) + [prob.i_th0, prob.i_th1]
    thermal = [prob.i_cth, prob.i_tau_th]
    robust = dict(loss=loss, f_scale=f_scale)
    stages = []
    x, res = prob.solve(x0, volt_params, lower, upper, forced=True, max_nfev=max_nfev[0], verbose=verbose, **robust)
    stages.append(("voltage, data temperature", res.nfev, float(np.sqrt(np.mean(res.fun**2)))))
    # The heat the data imply: the circuit's mean heat over each interval, I (OCV - V), plus
    # I times the circuit's voltage error at the interval's end (the circuit supplies the
    # shape within the interval, the data the level).
    volt_c, _, heat_c = prob.simulate(x, forced=True, want_heat=True)
    heat_data = heat_c[0] + current * (volt_c[0] - volt_data)
    z, res = _fit_thermal(heat_data, temp_data, ambient, mask, dt, x[thermal], lower[thermal], upper[thermal],
                          max_nfev[1])
    x[thermal] = z
    stages.append(("thermal, heat from data", res.nfev, float(np.sqrt(np.mean(res.fun**2)))))
    if joint:
        x, res = prob.solve(x, volt_params, lower, upper, forced=False, max_nfev=max_nfev[2], verbose=verbose,
                            **robust)
        stages.append(("circuit, open loop", res.nfev, float(np.sqrt(np.mean(res.fun**2)))))

    r0, r1, c1, dv, th0, th1, cth, hA = (np.asarray(v)[0] for v in prob.unpack(x))
    # OCV table: the rest table plus the knot correction, on the union of both grids so the
    # sum of the two piecewise-linear functions is represented exactly.
    grid = np.union1d(np.round(np.asarray(featurizer.soc_grid, dtype=np.float64), 12), np.round(knots, 12))
    ocv = featurizer.table("ocv", grid) + np.interp(grid, knots, dv)
    volt, temp = prob.simulate(x, forced=False)
    err_v = (volt[0] - volt_data)[mask]
    err_t = (temp[0] - temp_data)[mask]
    info = {
        "method": f"scipy.optimize.least_squares (trf, loss={loss}, f_scale={f_scale} V), "
                  "batched finite-difference Jacobian",
        "stages": [{"stage": s, "nfev": n, "rms_residual": r} for s, n, r in stages],
        "n_sequences": int(len(rows)),
        "n_steps": int(mask.sum()),
        "rows": [int(i) for i in np.asarray(dataset_train.indices)[rows]] if hasattr(dataset_train, "indices") else [],
        "seed": int(seed),
        "parameter_set": dataset_train.meta.get("parameter_set"),
        "dataset_fingerprint": dataset_train.fingerprint() if hasattr(dataset_train, "fingerprint") else None,
        "train_voltage_mae_mV": float(np.mean(np.abs(err_v)) * 1e3),
        "train_voltage_rmse_mV": float(np.sqrt(np.mean(err_v**2)) * 1e3),
        "train_temperature_mae_K": float(np.mean(np.abs(err_t))),
        "fit_seconds": time.perf_counter() - t_start,
        "entropic_heat": entropic,
    }
    return ECMParameters(
        chemistry=featurizer.chemistry, dt=dt, capacity_ah=cap, soc_grid=knots.tolist(), r0=r0.tolist(),
        r1=r1.tolist(), c1=c1.tolist(), ocv_soc_grid=grid.tolist(), ocv=ocv.tolist(), heat_capacity=float(cth),
        heat_transfer=float(hA), r0_activation=float(th0), r1_activation=float(th1), t_ref=T_REF, info=info,
    )


# =========================================================================== PyBaMM Thevenin
_PYBAMM_MODELS: dict[str, tuple] = {}
_PYBAMM_CACHE_SIZE = 4


def _clamped(grid, values):
    """Knots extended far out with the end values: PyBaMM's linear interpolant then holds
    them constant outside the grid, as numpy's ``np.interp`` does."""
    g = np.asarray(grid, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    return np.concatenate([[g[0] - 100.0], g, [g[-1] + 100.0]]), np.concatenate([[v[0]], v, [v[-1]]])


def pybamm_parameter_values(params: ECMParameters):
    """``pybamm.ParameterValues("ECM_Example")`` with the fitted parameters in place.

    Current, initial SOC, initial and ambient temperature are input parameters
    (``"Current function [A]"``, ``"Initial SoC"``, ``"Initial temperature [K]"``,
    ``"Ambient temperature [K]"``).
    """
    import pybamm

    pv = pybamm.ParameterValues("ECM_Example")
    x_ocv, y_ocv = _clamped(params.ocv_soc_grid, params.ocv)
    x_k, y_r0 = _clamped(params.soc_grid, params.r0)
    _, y_r1 = _clamped(params.soc_grid, params.r1)
    _, y_c1 = _clamped(params.soc_grid, params.c1)
    t_ref, th0, th1 = params.t_ref, params.r0_activation, params.r1_activation

    def ocv(soc):
        return pybamm.Interpolant(x_ocv, y_ocv, soc, name="ECM OCV")

    def arrhenius(activation, T_cell_degC):
        return pybamm.exp(activation * (1.0 / (T_cell_degC + 273.15) - 1.0 / t_ref))

    def r0(T_cell, current, soc):
        return pybamm.Interpolant(x_k, y_r0, soc, name="ECM R0") * arrhenius(th0, T_cell)

    def r1(T_cell, current, soc):
        return pybamm.Interpolant(x_k, y_r1, soc, name="ECM R1") * arrhenius(th1, T_cell)

    def c1(T_cell, current, soc):
        return pybamm.Interpolant(x_k, y_c1, soc, name="ECM C1")

    def dudt(ocv_value, T_cell):
        return pybamm.Scalar(0.0)  # no entropic term (the module docstring; what the cell has: entropic_heat)

    pv.update({
        "Cell capacity [A.h]": params.capacity_ah,
        "Nominal cell capacity [A.h]": params.capacity_ah,
        "Open-circuit voltage [V]": ocv,
        "R0 [Ohm]": r0,
        "R1 [Ohm]": r1,
        "C1 [F]": c1,
        "Element-1 initial overpotential [V]": 0.0,
        "Entropic change [V/K]": dudt,
        # one lumped node: the jig is an ideal heat sink at the ambient (see module docstring)
        "Cell thermal mass [J/K]": params.heat_capacity,
        "Cell-jig heat transfer coefficient [W/K]": params.heat_transfer,
        "Jig thermal mass [J/K]": _JIG_MASS,
        "Jig-air heat transfer coefficient [W/K]": params.heat_transfer,
        "Upper voltage cut-off [V]": 100.0,
        "Lower voltage cut-off [V]": -100.0,
        "Current function [A]": "[input]",
        "Initial SoC": "[input]",
        "Initial temperature [K]": "[input]",
        "Ambient temperature [K]": "[input]",
    })
    return pv


def _pybamm_model(params: ECMParameters, rtol: float, atol: float):
    import pybamm

    d = params.to_dict()
    d.pop("info", None)
    key = json.dumps([d, rtol, atol], sort_keys=True)
    if key not in _PYBAMM_MODELS:
        model = pybamm.equivalent_circuit.Thevenin()
        # Our data may leave [0, 1] SOC or the voltage window a little; the baseline must
        # simulate what the DFN simulated, so PyBaMM's SOC/voltage termination events go.
        model.events = []
        solver = pybamm.IDAKLUSolver(rtol=rtol, atol=atol)
        sim = pybamm.Simulation(model, parameter_values=pybamm_parameter_values(params), solver=solver)
        sim.build()
        if len(_PYBAMM_MODELS) >= _PYBAMM_CACHE_SIZE:
            _PYBAMM_MODELS.pop(next(iter(_PYBAMM_MODELS)))
        _PYBAMM_MODELS[key] = (sim.built_model, solver)
    return _PYBAMM_MODELS[key]


def simulate_ecm_pybamm(params: ECMParameters, current, soc0: float, ambient_temperature: float, *,
                        dt: float | None = None, chemistry: str | None = None,
                        rtol: float = 1e-8, atol: float = 1e-10) -> dict[str, np.ndarray]:
    """One sequence on PyBaMM's own ``pybamm.equivalent_circuit.Thevenin`` with ``params``.

    The piecewise-constant ``current`` [L] [A] is solved run by run (consecutive equal
    currents in one IDAKLU call, the current an input parameter, each run starting from
    the last state), sampled at the interval ends. The discretised model is cached per
    parameter set, so only the first call pays for building it.

    Returns ``{"voltage", "temperature", "soc"}`` float64 [L] (PyBaMM's SoC, which is the
    coulomb count).
    """
    params.check(dt=dt, chemistry=chemistry)
    cur = np.nan_to_num(np.asarray(current, dtype=np.float64))
    if cur.ndim != 1:
        raise ValueError(f"simulate_ecm_pybamm takes one sequence: current [L], got shape {cur.shape}")
    amb = float(ambient_temperature)
    check_kelvin(np.array([amb]))
    model, solver = _pybamm_model(params, rtol, atol)
    inputs = {"Initial SoC": float(soc0), "Initial temperature [K]": amb, "Ambient temperature [K]": amb}
    out = {"voltage": [], "temperature": [], "soc": []}
    names = {"voltage": "Voltage [V]", "temperature": "Cell temperature [K]", "soc": "SoC"}
    solution = None
    edges = np.flatnonzero(np.diff(cur)) + 1
    for run in np.split(np.arange(len(cur)), edges):
        if len(run) == 0:
            continue
        n = len(run)
        inputs["Current function [A]"] = float(cur[run[0]])
        duration = n * params.dt
        t_interp = np.linspace(0.0, duration, n + 1)
        solution = solver.step(solution, model, duration, inputs=dict(inputs), save=False, t_interp=t_interp)
        t_rel = solution.t - solution.t[0]
        idx = np.minimum(np.searchsorted(t_rel, params.dt * np.arange(1, n + 1) - 1e-6), len(t_rel) - 1)
        for ch, var in names.items():
            out[ch].append(np.asarray(solution[var].entries, dtype=np.float64)[idx])
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in out.items()}
