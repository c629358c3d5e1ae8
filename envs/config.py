"""Every default of the fast-charging task, in one dataclass, and the observation's units.

Glossary (units as in :mod:`surrogates.common.channels`):

    c       charging C-rate [1/h], >= 0 (the action, in physical units)
    I       current [A], PyBaMM sign: I = -c * I_1C (negative = charge)
    V       terminal voltage [V]; V_max its operating limit (4.2 V nmc, 3.6 V lfp)
    T       lumped cell temperature [K]; T_max its limit (318.15 K = 45 C)
    eta     plating margin [V]; lithium plating is possible where eta < eta_min (0 V)
    soc     coulomb-counted state of charge [1]
    dt      control interval [s]

The observation is what a battery management system measures, each feature O(1):

    ====  =================  ===============================================
    idx   name               normalisation
    ====  =================  ===============================================
    0     voltage            (V - (V_op - 0.5 V)) / 0.5 V    (1.0 at V_op)
    1     c_rate             c / c_max   (charge positive; 0 at rest)
    2     temperature        (T - 298.15 K) / 15 K
    3     soc                soc
    4     elapsed            t / time_limit
    5     ambient            (T_amb - 298.15 K) / 15 K
    ====  =================  ===============================================

each clipped to [-OBS_BOUND, OBS_BOUND]. ``V_op`` is the chemistry's operating cut-off (4.2 V
nmc, 3.6 V lfp), not the configurable ``v_max``: the observation of a cell does not depend on
the limits an env penalises, so a policy trained against tighter limits (a safety margin)
sees the same observation when judged against the true ones. :func:`obs_to_physical` inverts it (baseline
policies read voltage and SOC through it).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from surrogates.common.channels import DEFAULT_DT
from surrogates.models import DEFAULT_ARCH
from surrogates.physics.chemistry import get_chemistry

DEFAULT_SURROGATE = DEFAULT_ARCH
"""The shipped surrogate architecture the env uses unless told otherwise: the most accurate
against the DFN in validation (surrogates/models/checkpoints/*.md) and the cheapest to step."""
T_REF = 298.15
"""Reference temperature of the observation [K] (25 C)."""
T_SCALE = 15.0
"""Temperature scale of the observation [K]."""
V_SCALE = 0.5
"""Voltage scale of the observation [V]; the voltage feature is 1.0 at ``v_max``."""
OBS_BOUND = 5.0
"""Every observation feature is clipped to [-OBS_BOUND, OBS_BOUND] (finite Box bounds)."""
OBS_NAMES: tuple[str, ...] = ("voltage", "c_rate", "temperature", "soc", "elapsed", "ambient_temperature")
"""Observation features, in order."""
DEFAULT_DIAGNOSTIC_WEIGHTS: dict[str, float] = {"plating": 0.2, "ood": 1.0, "degradation": 100.0}
"""Default weight of each learned-diagnostic reward term (units: see ``ChargingConfig.diagnostic_weights``).

The plating detector's is small on purpose: its probability stays high for a whole window (32
intervals) after plating, while the progress reward of an interval is 0.03-0.06 (``w_progress``
10); with plating 1, resting paid more than charging interval by interval, and PPO learned not to
charge at all (its action saturates at "rest" and exploration dies). The degradation estimator's is
per mA.h lost for good (SEI + dead lithium): a 10 -> 80 % charge of the nmc cell loses about a tenth of a mA.h
for good while it lasts (docs/degradation.md), so at 100 per mA.h a charge's term weighs as much as a few minutes
of charge time at ``w_time`` 0.1 per 10 s."""


@dataclass
class ChargingConfig:
    """The task: start state, limits, time limit and reward weights of ``cellgym/FastCharge-v2``.

    Every field is a keyword argument of ``gymnasium.make("cellgym/FastCharge-v2", ...)``, of
    ``gymnasium.make_vec`` and of :class:`envs.vector.SurrogateVecEnv`. Changing a default changes
    the task: bump the id. The last two fields (``torch_threads``, ``flush_denormal``) are runtime
    settings, not the task: they are here so that what changes numbers is written down with it.
    """

    chemistry: str = "nmc"
    """Cell chemistry (:data:`surrogates.physics.chemistry.CHEMISTRIES`)."""
    dt: float = DEFAULT_DT
    """Control interval [s]; must equal the surrogate's."""
    c_max: float = 5.0
    """Largest charging C-rate [1/h]: action +1 maps to it, -1 to 0 (rest)."""
    soc_start: float | tuple[float, float] = (0.05, 0.2)
    """Initial SOC, or a (low, high) range sampled uniformly at each reset."""
    soc_target: float = 0.8
    """The episode terminates (success) when SOC reaches it."""
    ambient_temperature: float | tuple[float, float] = (288.15, 308.15)
    """Ambient temperature [K] (the cell starts at it), or a (low, high) range sampled at each reset.
    Default 15-35 C, inside the 10-40 C the surrogates were trained on."""
    v_max: float | None = None
    """Upper voltage limit [V]; None: the chemistry's operating cut-off (4.2 V nmc, 3.6 V lfp)."""
    t_max: float = 318.15
    """Upper cell temperature limit [K] (45 C)."""
    plating_limit: float = 0.0
    """Lowest allowed plating margin [V]; below it lithium plating is thermodynamically possible."""
    hard_voltage_margin: float | None = 0.1
    """Terminate when the interval's highest voltage exceeds v_max by more than this [V]; None: never."""
    hard_temperature_margin: float | None = 5.0
    """Terminate when the interval's highest temperature exceeds t_max by more than this [K]; None: never."""
    hard_plating_margin: float | None = None
    """Terminate when the interval's lowest plating margin is below plating_limit by more than this [V];
    None (default): plating is penalised on every interval but never ends the charge."""
    time_limit: float = 7200.0
    """Episode length [s] after which it is truncated (2 h = 720 intervals of 10 s)."""
    w_time: float = 0.01
    """Time penalty per interval."""
    w_progress: float = 10.0
    """Reward per unit of SOC gained (up to the target): a whole 0.1 -> 0.8 charge earns 7."""
    w_voltage: float = 20.0
    """Penalty per volt of the interval's highest voltage above v_max, per interval."""
    w_temperature: float = 0.2
    """Penalty per kelvin of the interval's highest temperature above t_max, per interval."""
    w_plating: float = 20.0
    """Penalty per volt of the interval's lowest plating margin below plating_limit, per interval."""
    violation_penalty: float = 10.0
    """One-off penalty when the episode ends on a hard violation or a solver failure."""
    diagnostics: tuple[str, ...] = ()
    """Learned diagnostics (:data:`surrogates.diagnostics.KINDS`: ``"plating"``, ``"ood"``,
    ``"degradation"``) whose terms enter the reward, scored every interval on the last intervals
    of (I, V, T) the cell measured (:mod:`envs.diagnostic_terms`); each needs a checkpoint shipped
    for the chemistry. A list or a comma-separated string is accepted and stored as a tuple."""
    diagnostic_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DIAGNOSTIC_WEIGHTS))
    """Weight of each diagnostic's reward term; kinds not given keep their default
    (:data:`DEFAULT_DIAGNOSTIC_WEIGHTS`). Units:
    ``plating``: penalty per interval at plating probability 1 (term = -w * probability);
    ``ood``: penalty per interval per unit of OOD score above 1 (term = -w * max(0, score - 1));
    ``degradation``: penalty per mA.h of lithium the estimator predicts the interval lost for good
    (SEI + dead lithium; term = -w * 1000 * max(0, score [A.h]): a predicted gain is not paid). Only kinds listed in
    ``diagnostics`` are used."""
    torch_threads: int | None = None
    """Runtime, not the task: CPU threads torch uses for the surrogate and the diagnostics, set
    (``torch.set_num_threads``, process-wide) when the env is made; None: leave torch's setting.
    Results change with it in the last float32 bits (reductions split differently), and so does
    the speed: with several env processes, or a VecEnv beside an agent's own torch work, one
    thread each is usually fastest. Scripts that need reproducible numbers set it."""
    flush_denormal: bool | None = True
    """Runtime, not the task: flush denormal floats to zero in torch (``torch.set_flush_denormal``,
    process-wide), set when the env is made; None: leave torch's setting. Decaying recurrent states
    (Mamba's SSM, JEPA's GRU) underflow into denormals, which make a CPU up to ~30x slower; flushing
    changes outputs only below ~1e-38. On (as in training and validation) by default."""

    def __post_init__(self) -> None:
        chem = get_chemistry(self.chemistry)
        if self.v_max is None:
            self.v_max = chem.v_max
        self._one_c = chem.capacity_ah
        for name in ("dt", "c_max", "time_limit"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.soc_start = _range_or_value("soc_start", self.soc_start, 0.0, 1.0)
        self.ambient_temperature = _range_or_value("ambient_temperature", self.ambient_temperature, 200.0, 400.0,
                                                   hint=" (kelvin; did you pass Celsius? add 273.15)")
        if not 0.0 < self.soc_target <= 1.0:
            raise ValueError(f"soc_target must be in (0, 1], got {self.soc_target!r}")
        lo = self.soc_start[0] if isinstance(self.soc_start, tuple) else self.soc_start
        if lo >= self.soc_target:
            raise ValueError(f"soc_start {self.soc_start!r} must lie below soc_target={self.soc_target}")
        if not 200.0 < self.t_max < 400.0:
            raise ValueError(f"t_max is in kelvin and must be in (200, 400), got {self.t_max!r}")
        self.diagnostics = _diagnostic_kinds(self.diagnostics)
        self.diagnostic_weights = _diagnostic_weights(self.diagnostic_weights)
        if self.torch_threads is not None and not (isinstance(self.torch_threads, (int, np.integer))
                                                   and not isinstance(self.torch_threads, bool) and self.torch_threads >= 1):
            raise ValueError(f"torch_threads must be None (leave torch's setting) or an int >= 1, got {self.torch_threads!r}")
        if self.flush_denormal not in (None, True, False):
            raise ValueError(f"flush_denormal must be True, False or None (leave torch's setting), got {self.flush_denormal!r}")

    # ------------------------------------------------------------------ derived
    @property
    def max_steps(self) -> int:
        """Intervals before truncation: ``ceil(time_limit / dt)``."""
        return int(math.ceil(self.time_limit / self.dt - 1e-9))

    @property
    def one_c(self) -> float:
        """1C current [A] (nominal capacity in A.h over one hour)."""
        return self._one_c

    @property
    def v_ref(self) -> float:
        """Voltage at which the voltage feature is 0 [V]: the chemistry's operating cut-off - ``V_SCALE``."""
        return get_chemistry(self.chemistry).v_max - V_SCALE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def check_keywords(init: Callable, kwargs: Iterable[str]) -> None:
    """Refuse keyword arguments that neither ``init`` (an ``__init__``) names nor :class:`ChargingConfig` has.

    Raises Python's own ``TypeError``, its message beginning as the interpreter's does
    (``FastChargeEnv.__init__() got an unexpected keyword argument 'frameskip'``; for several,
    ``got unexpected keyword arguments 'a', 'b'``), then the valid keywords: callers that retry
    without a keyword on that message (TorchRL's ``GymEnv`` drops ``frameskip``, SB3's
    ``make_vec_env`` drops ``render_mode``) work. One check for every env and the batched core.
    """
    params = [p.name for p in inspect.signature(init).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    valid = params + [n for n in ChargingConfig.field_names() if n not in params]
    unknown = [k for k in kwargs if k not in valid]
    if not unknown:
        return
    owner = f"{init.__qualname__}()"
    if len(unknown) == 1:
        head = f"{owner} got an unexpected keyword argument {unknown[0]!r}"
    else:
        head = f"{owner} got unexpected keyword arguments {', '.join(map(repr, unknown))}"
    raise TypeError(f"{head}; valid keyword arguments: {', '.join(valid)}")


def _range_or_value(name: str, value, lo: float, hi: float, hint: str = ""):
    """A float, or a (low, high) tuple with low <= high, all finite and inside (lo, hi) / [lo, hi]."""
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = tuple(float(v) for v in value)
        if len(vals) != 2 or vals[0] > vals[1]:
            raise ValueError(f"{name} must be a number or a (low, high) pair with low <= high, got {value!r}")
    else:
        vals = (float(value),)
    if not all(math.isfinite(v) and lo <= v <= hi for v in vals):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}{hint}")
    return vals if len(vals) == 2 else vals[0]


def _check_kinds(names, what: str) -> None:
    """Refuse names that are not diagnostic kinds. Imports :mod:`surrogates.diagnostics` (and torch)
    only when there is a name to check that is not a default kind, so a config without
    diagnostics stays cheap."""
    names = [n for n in names if n not in DEFAULT_DIAGNOSTIC_WEIGHTS] if what == "diagnostic_weights" else list(names)
    if not names:
        return
    from surrogates.diagnostics import KINDS

    bad = [n for n in names if n not in KINDS]
    if bad:
        raise ValueError(f"unknown diagnostic kind(s) {bad} in {what}; valid kinds are: {', '.join(KINDS)}")


def _diagnostic_kinds(value) -> tuple[str, ...]:
    """``diagnostics`` as a tuple of distinct kind names (from a tuple, a list, None or ``"a,b"``)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    try:
        kinds = tuple(value)
    except TypeError:
        raise ValueError(f"diagnostics must be a list of diagnostic kinds, got {value!r}") from None
    if not all(isinstance(k, str) for k in kinds):
        raise ValueError(f"diagnostics must be a list of diagnostic kind names (strings), got {value!r}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"diagnostics lists a kind twice: {list(kinds)}; to weigh a term more, use diagnostic_weights")
    _check_kinds(kinds, "diagnostics")
    return kinds


def _diagnostic_weights(value) -> dict[str, float]:
    """``diagnostic_weights`` merged over the defaults, each a finite number >= 0."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"diagnostic_weights must be a mapping kind -> weight, got {value!r}")
    _check_kinds(value, "diagnostic_weights")
    out = dict(DEFAULT_DIAGNOSTIC_WEIGHTS)
    for kind, w in value.items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"diagnostic_weights[{kind!r}] must be a number, got {w!r}") from None
        if not (math.isfinite(w) and w >= 0.0):
            raise ValueError(f"diagnostic_weights[{kind!r}] must be a finite number >= 0 (a penalty weight), got {w!r}")
        out[kind] = w
    return out


def obs_to_physical(obs, config: ChargingConfig) -> dict[str, np.ndarray]:
    """Observation(s) ``[..., 6]`` -> physical quantities, each ``[...]`` float64.

    Keys: ``voltage`` [V], ``c_rate`` [1/h] (charge positive), ``current`` [A] (PyBaMM sign),
    ``temperature`` [K], ``soc``, ``elapsed`` [s], ``ambient_temperature`` [K]. Exact up to
    float32 rounding for features inside the observation bounds.
    """
    o = np.asarray(obs, dtype=np.float64)
    if o.shape[-1] != len(OBS_NAMES):
        raise ValueError(f"observation has {o.shape[-1]} features, expected {len(OBS_NAMES)} ({', '.join(OBS_NAMES)})")
    c_rate = o[..., 1] * config.c_max
    return {
        "voltage": o[..., 0] * V_SCALE + config.v_ref,
        "c_rate": c_rate,
        "current": -c_rate * config.one_c,
        "temperature": o[..., 2] * T_SCALE + T_REF,
        "soc": o[..., 3],
        "elapsed": o[..., 4] * config.time_limit,
        "ambient_temperature": o[..., 5] * T_SCALE + T_REF,
    }


def c_rate_to_action(c_rate, config: ChargingConfig) -> np.ndarray:
    """Charging C-rate(s) [1/h] -> action(s) in [-1, 1] (the inverse of the env's mapping), float32."""
    c = np.asarray(c_rate, dtype=np.float64)
    return np.clip(2.0 * c / config.c_max - 1.0, -1.0, 1.0).astype(np.float32)
