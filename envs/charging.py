"""``cellgym/FastCharge-v2``: charge one cell from a low SOC to a target as fast as physics allows.

Glossary (units as in :mod:`surrogates.common.channels`; defaults in :class:`envs.config.ChargingConfig`):

    a        action in [-1, 1] (Box(-1, 1, (1,)), float32)
    c        charging C-rate [1/h] = (a + 1) / 2 * c_max, in [0, c_max]
    I        current [A] = -c * I_1C (PyBaMM sign: negative charges)
    V, T     terminal voltage [V], lumped cell temperature [K], at the end of the interval
    eta      plating margin [V] (hidden: in ``info``, never in the observation)
    *_max/*_min   the interval's extremes (voltage_max, temperature_max, plating_margin_min)
    soc      coulomb-counted state of charge; k the interval index; dt the interval [s]

Action. ``a`` is clipped to [-1, 1] (an out-of-range action is not an error, it saturates:
-1 rests the cell, +1 charges at ``c_max``); a NaN or infinite action, or one of the wrong
size, raises ``ValueError``.

Observation. Six normalised BMS measurements (voltage, C-rate, temperature, SOC, elapsed
time, ambient temperature); see :mod:`envs.config` for the exact scaling and
:func:`envs.config.obs_to_physical` for its inverse.

Reward of interval k, the sum of these signed terms, each reported in ``info``::

    reward_time        = -w_time
    reward_progress    =  w_progress * (min(soc_k, soc_target) - min(soc_{k-1}, soc_target))
    reward_voltage     = -w_voltage     * max(0, voltage_max_k - v_max)
    reward_temperature = -w_temperature * max(0, temperature_max_k - t_max)
    reward_plating     = -w_plating     * max(0, plating_limit - plating_margin_min_k)
    reward_violation   = -violation_penalty   if the interval ends on a hard violation or a solver failure

plus, for each learned diagnostic in ``diagnostics`` (off by default in ``cellgym/FastCharge-v2``;
``cellgym/FastChargeDiagnostics-v1`` turns on ``plating`` and ``degradation``), scored on the
last intervals of (I, V, T) the cell measured, rest-padded back to before the charge
(:mod:`envs.diagnostic_terms`), with
``w_kind = diagnostic_weights[kind]``::

    reward_diag_plating     = -w_plating     * p_plating              probability plating was possible in the window
    reward_diag_ood         = -w_ood         * max(0, s_ood - 1)      OOD score above its calibrated threshold
    reward_diag_degradation = -w_degradation * 1000 * q               q: lithium lost for good in the interval [A.h]

each also in ``info`` with its score ``diag_<kind>`` (at reset: score 0, term 0). On a solver
failure every term but ``reward_time`` and ``reward_violation`` is 0 (the diagnostic scores
repeat the last ones, like the channels).

Termination (``terminated``): soc reaches ``soc_target`` (``info["reached_target"]``); a hard
violation: ``voltage_max > v_max + hard_voltage_margin``, ``temperature_max > t_max +
hard_temperature_margin`` or (if set) ``plating_margin_min < plating_limit -
hard_plating_margin``; a solver failure of the PyBaMM backend (``info["solver_failure"]``,
with the solver's message in ``info["solver_message"]``, the one key only a failure adds; the
observation and the channels in ``info`` then repeat the last ones that were simulated, while
``c_rate`` / ``current`` report the commanded current that failed). Truncation (``truncated``):
only the time limit, after ``ceil(time_limit / dt)`` intervals. Stepping a finished episode
raises ``RuntimeError``.

The reward, termination, observation and info are pure numpy functions over a batch of cells
(:func:`check_actions`, :func:`action_to_c_rate`, :func:`observe`, :func:`evaluate_step`,
:func:`info_columns`, :func:`sample_starts`) and one :class:`envs.diagnostic_terms.DiagnosticTerms`
(the diagnostics' history and scores), used by this env with a batch of one and by the batched
core :class:`envs.batch.CellBatch` (both vector envs) with N, so they cannot drift apart.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.backends import apply_torch_settings, make_backend
from envs.config import DEFAULT_SURROGATE, OBS_BOUND, OBS_NAMES, T_REF, T_SCALE, V_SCALE, ChargingConfig, check_keywords
from envs.diagnostic_terms import DiagnosticTerms, diagnostic_info_keys, diagnostic_reward_terms, reward_key, score_key
from envs.render import ChargeRenderer, check_render_mode, outcome
from envs.render import metadata as render_metadata

REWARD_TERMS: tuple[str, ...] = (
    "reward_time", "reward_progress", "reward_voltage", "reward_temperature", "reward_plating", "reward_violation",
)
"""The signed components of the reward, in ``info``; with the diagnostic terms of
:func:`reward_terms` (none by default) they sum to the reward."""
FLAGS: tuple[str, ...] = (
    "reached_target", "hard_violation", "hard_voltage", "hard_temperature", "hard_plating", "solver_failure",
)
"""Boolean outcome flags in ``info``."""
INFO_CHANNELS: tuple[str, ...] = (
    "current", "c_rate", "voltage", "temperature", "plating_margin", "soc",
    "voltage_max", "temperature_max", "plating_margin_min", "elapsed", "ambient_temperature",
)
"""Physical quantities in ``info``: ``current`` [A] (PyBaMM sign), ``c_rate`` [1/h], the
channels of :mod:`surrogates.common.channels`, ``elapsed`` [s], ``ambient_temperature`` [K]."""
INFO_KEYS: tuple[str, ...] = INFO_CHANNELS + REWARD_TERMS + FLAGS
"""``info`` keys of every env; :func:`info_keys` adds the diagnostics' (``diag_<kind>``, ``reward_diag_<kind>``)."""


def reward_terms(config: ChargingConfig) -> tuple[str, ...]:
    """Every reward term of an env with ``config``: :data:`REWARD_TERMS`, then ``reward_diag_<kind>``."""
    return REWARD_TERMS + diagnostic_reward_terms(config.diagnostics)


def info_keys(config: ChargingConfig) -> tuple[str, ...]:
    """Every ``info`` key of an env with ``config``: :data:`INFO_KEYS`, then the diagnostics' scores and terms."""
    return INFO_KEYS + diagnostic_info_keys(config.diagnostics)


def observation_space() -> gym.spaces.Box:
    """Box(-OBS_BOUND, OBS_BOUND, (6,), float32)."""
    n = len(OBS_NAMES)
    return gym.spaces.Box(np.full(n, -OBS_BOUND, np.float32), np.full(n, OBS_BOUND, np.float32), dtype=np.float32)


def action_space() -> gym.spaces.Box:
    """Box(-1, 1, (1,), float32): the charging C-rate, scaled."""
    return gym.spaces.Box(np.full(1, -1.0, np.float32), np.full(1, 1.0, np.float32), dtype=np.float32)


# ---------------------------------------------------------------------- batch functions
def check_actions(actions, n: int) -> np.ndarray:
    """Actions for ``n`` cells (any shape with ``n`` elements) -> ``[n]`` float64 clipped to [-1, 1].

    Raises ``ValueError`` on NaN, infinity, a non-numeric action or the wrong number of elements.
    """
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"actions must be numbers in [-1, 1], got {actions!r}") from None
    if a.size != n:
        raise ValueError(f"expected {n} action value(s) (one per cell, action space Box(-1, 1, (1,))), got shape {a.shape}")
    a = a.reshape(n)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"actions must be finite, got {a[~np.isfinite(a)][:5]!r}")
    return np.clip(a, -1.0, 1.0)


def action_to_c_rate(actions: np.ndarray, config: ChargingConfig) -> np.ndarray:
    """Checked actions ``[B]`` in [-1, 1] -> charging C-rates ``[B]`` in [0, c_max]."""
    return (actions + 1.0) * (0.5 * config.c_max)


def sample_starts(rngs, config: ChargingConfig, options=None) -> tuple[np.ndarray, np.ndarray]:
    """Initial SOC and ambient temperature [K] ``[B]`` of B episodes, cell j drawing from ``rngs[j]``.

    A range draws ``rng.uniform(low, high)`` (SOC first, then temperature); a fixed value draws
    nothing. ``options[j]`` (a dict or None) may override ``soc_start`` / ``ambient_temperature``
    of cell j (the draws happen anyway, so the stream of random numbers does not depend on the options).
    """
    n = len(rngs)
    soc_lo, soc_hi = config.soc_start if isinstance(config.soc_start, tuple) else (None, None)
    amb_lo, amb_hi = config.ambient_temperature if isinstance(config.ambient_temperature, tuple) else (None, None)
    soc = np.full(n, config.soc_start if soc_lo is None else np.nan)
    amb = np.full(n, config.ambient_temperature if amb_lo is None else np.nan)
    # numpy's uniform(low, high) is low + (high - low) * random(), bit for bit, and random() costs a
    # third of it: a batched env restarts tens of cells a step, each from its own generator.
    for j, rng in enumerate(rngs):
        draw = rng.random
        if soc_lo is not None:
            soc[j] = soc_lo + (soc_hi - soc_lo) * draw()
        if amb_lo is not None:
            amb[j] = amb_lo + (amb_hi - amb_lo) * draw()
    for j, opt in enumerate(options or ()):
        if opt:
            unknown = set(opt) - {"soc_start", "ambient_temperature"}
            if unknown:
                raise ValueError(f"unknown reset options {sorted(unknown)}; valid: soc_start, ambient_temperature")
            soc[j] = float(opt.get("soc_start", soc[j]))
            amb[j] = float(opt.get("ambient_temperature", amb[j]))
    bad = ~((soc >= 0.0) & (soc < config.soc_target))
    if bad.any():
        raise ValueError(f"soc_start={soc[bad][0]} must lie in [0, soc_target={config.soc_target})")
    return soc, amb


def observe(channels: dict[str, np.ndarray], c_rate: np.ndarray, steps: np.ndarray, ambient: np.ndarray,
            config: ChargingConfig) -> np.ndarray:
    """The observation ``[B, 6]`` float32 (see :mod:`envs.config`), clipped to the Box bounds."""
    obs = np.stack([
        (channels["voltage"] - config.v_ref) / V_SCALE,
        c_rate / config.c_max,
        (channels["temperature"] - T_REF) / T_SCALE,
        channels["soc"],
        steps * (config.dt / config.time_limit),
        (ambient - T_REF) / T_SCALE,
    ], axis=-1)
    return np.clip(obs, -OBS_BOUND, OBS_BOUND).astype(np.float32)


def limit_slack(channels: dict[str, np.ndarray], config: ChargingConfig, buffers=(0.0, 0.0, 0.0),
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance of each interval to each limit held ``buffers`` (V [V], K, V [V]) inside it, negative where
    broken: ``v_max - bv - voltage_max`` [V], ``t_max - bt - temperature_max`` [K], ``plating_margin_min -
    plating_limit - bp`` [V]; each shaped like the channels. The one definition of a broken limit: the reward, the
    termination, and the agents' records and controllers (:mod:`agents.charge.record`) all read it."""
    bv, bt, bp = buffers
    return (config.v_max - bv - np.asarray(channels["voltage_max"]),
            config.t_max - bt - np.asarray(channels["temperature_max"]),
            np.asarray(channels["plating_margin_min"]) - config.plating_limit - bp)


def limit_excess(channels: dict[str, np.ndarray], config: ChargingConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How far each interval went past each limit (0 inside it): V over ``v_max`` [V], T over ``t_max`` [K],
    plating margin under ``plating_limit`` [V] (:func:`limit_slack`, sign turned); each shaped like the channels."""
    return tuple(np.maximum(-s, 0.0) for s in limit_slack(channels, config))


def hard_violations(channels: dict[str, np.ndarray], config: ChargingConfig, excesses=None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The intervals that end an episode as a hard violation, per limit (voltage, temperature, plating): an excess
    (:func:`limit_excess`, or ``excesses`` already computed from ``channels``) beyond the limit's ``hard_*_margin``;
    a margin of None never ends one."""
    excesses = limit_excess(channels, config) if excesses is None else excesses
    margins = (config.hard_voltage_margin, config.hard_temperature_margin, config.hard_plating_margin)
    return tuple(e > m if m is not None else np.zeros(e.shape, dtype=bool) for e, m in zip(excesses, margins))


def evaluate_step(channels: dict[str, np.ndarray], soc_prev: np.ndarray, steps: np.ndarray, config: ChargingConfig,
                  failed: np.ndarray | None = None, diagnostics: dict[str, np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Reward, ``terminated``, ``truncated`` and the reward terms and flags of one interval, each ``[B]``.

    ``channels`` are the interval's (for ``failed`` rows: the last simulated ones); ``steps``
    counts intervals since reset, this one included. ``diagnostics``: kind -> reward term
    ``[B]`` of each of ``config.diagnostics`` (:meth:`envs.diagnostic_terms.DiagnosticTerms.step`),
    zeroed here on ``failed`` rows. See the module docstring for the terms.
    """
    cfg = config
    n = len(soc_prev)
    ok = np.ones(n, dtype=bool) if failed is None else ~np.asarray(failed, dtype=bool)
    failed = ~ok
    over_v, over_t, under_p = excesses = limit_excess(channels, cfg)
    hard_v, hard_t, hard_p = (ok & h for h in hard_violations(channels, cfg, excesses))
    hard = hard_v | hard_t | hard_p
    progress = np.minimum(channels["soc"], cfg.soc_target) - np.minimum(soc_prev, cfg.soc_target)
    terms = {
        "reward_time": np.full(n, -cfg.w_time),
        "reward_progress": np.where(ok, cfg.w_progress * progress, 0.0),
        "reward_voltage": np.where(ok, 0.0 - cfg.w_voltage * over_v, 0.0),  # 0.0 - x: no -0.0 in info
        "reward_temperature": np.where(ok, 0.0 - cfg.w_temperature * over_t, 0.0),
        "reward_plating": np.where(ok, 0.0 - cfg.w_plating * under_p, 0.0),
        "reward_violation": np.where(hard | failed, -cfg.violation_penalty, 0.0),
    }
    if cfg.diagnostics:
        missing = [k for k in cfg.diagnostics if diagnostics is None or k not in diagnostics]
        if missing:
            raise ValueError(f"evaluate_step needs the reward terms of the config's diagnostics, missing {missing}")
        for kind in cfg.diagnostics:
            terms[reward_key(kind)] = np.where(ok, np.asarray(diagnostics[kind], dtype=np.float64), 0.0)
    reward = sum(terms[k] for k in reward_terms(cfg))
    reached = ok & (channels["soc"] >= cfg.soc_target - 1e-9)
    terminated = reached | hard | failed
    truncated = (steps >= cfg.max_steps) & ~terminated
    terms.update(reached_target=reached, hard_violation=hard, hard_voltage=hard_v, hard_temperature=hard_t,
                 hard_plating=hard_p, solver_failure=failed)
    return reward, terminated, truncated, terms


def info_columns(channels: dict[str, np.ndarray], c_rate: np.ndarray, steps: np.ndarray, ambient: np.ndarray,
                 config: ChargingConfig, terms: dict[str, np.ndarray] | None = None,
                 scores: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The ``info`` of ``B`` cells as columns: :func:`info_keys` -> ``[B]`` float64 (bool for the flags).

    ``terms`` None (at reset): reward terms 0 and flags False. ``scores``: kind -> ``[B]`` score
    of each of ``config.diagnostics``; None (at reset): 0. Columns may share memory with the
    inputs: callers hand out arrays they never write again.
    """
    n = len(c_rate)
    cols = {
        "current": 0.0 - c_rate * config.one_c,
        "c_rate": c_rate,
        **{k: channels[k] for k in ("voltage", "temperature", "plating_margin", "soc",
                                    "voltage_max", "temperature_max", "plating_margin_min")},
        "elapsed": steps * config.dt,
        "ambient_temperature": ambient,
    }
    rewards = reward_terms(config)
    if terms is None:
        zeros, no = np.zeros(n), np.zeros(n, dtype=bool)
        cols.update({k: zeros for k in rewards})
        cols.update({k: no for k in FLAGS})
    else:
        cols.update({k: terms[k] for k in rewards + FLAGS})
    for kind in config.diagnostics:
        cols[score_key(kind)] = np.zeros(n) if scores is None else np.asarray(scores[kind], dtype=np.float64)
    return {k: np.asarray(cols[k], dtype=bool if k in FLAGS else np.float64) for k in info_keys(config)}


def as_dicts(columns: dict[str, np.ndarray]) -> list[dict]:
    """Info columns ``{key: [B]}`` -> B dicts of Python floats and bools, keys in the columns' order."""
    keys = list(columns)
    return [dict(zip(keys, row)) for row in zip(*(np.asarray(columns[k]).tolist() for k in keys))]


# ---------------------------------------------------------------------- the env
class FastChargeEnv(gym.Env):
    """Fast charging of one cell on a surrogate or on PyBaMM's DFN (see the module docstring).

    Args:
        chemistry: ``"nmc"`` or ``"lfp"``.
        backend: ``"surrogate"`` (a neural surrogate, default) or ``"pybamm"`` (the DFN).
        surrogate: for the surrogate backend: an architecture name (loads the checkpoint
            shipped in ``surrogates/checkpoints``), a checkpoint path, or a ``Surrogate``.
        device: torch device of the surrogate.
        render_mode: None (default: nothing recorded), ``"rgb_array"`` (``render()`` returns the charge so far as an
            RGB frame ``[H, W, 3]`` uint8: C-rate, voltage, temperature and plating margin against time, with the
            limits) or ``"human"`` (the same shown live in a matplotlib window at every ``reset`` and ``step``);
            see :mod:`envs.render`.
        pybamm_options: for the pybamm backend, keyword arguments of :class:`surrogates.physics.dfn.DFNSimulator`;
            ``{"degradation": True}`` adds SEI growth and lithium plating and, in A.h,
            ``info["lithium_irreversible"]``, the lithium lost for good since reset (SEI + dead lithium:
            what a charge is judged on for degradation, and what the degradation estimator estimates),
            ``info["lithium_plated"]``, the reversibly plated lithium now, and ``info["capacity_lost"]``,
            PyBaMM's "Total capacity lost to side reactions" since reset (plated lithium included).
        **config: any field of :class:`envs.config.ChargingConfig` (``c_max``, ``soc_start``,
            ``soc_target``, ``ambient_temperature``, limits, ``time_limit``, reward weights,
            ``diagnostics`` and ``diagnostic_weights``; the diagnostics run on ``device`` too).

    ``reset(seed=..., options={"soc_start": s, "ambient_temperature": T})``: the options fix
    the start state of that episode. Seeded resets reproduce episodes exactly on both backends.

    An unknown keyword argument raises Python's ``TypeError`` (``FastChargeEnv.__init__() got an unexpected keyword
    argument 'frameskip'; valid keyword arguments: ...``), so callers that retry without it work.
    """

    metadata = render_metadata()

    def __init__(self, chemistry: str = "nmc", backend: str = "surrogate", surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 render_mode: str | None = None, pybamm_options: dict | None = None, **config):
        check_keywords(FastChargeEnv.__init__, config)
        check_render_mode(render_mode, "FastChargeEnv")
        self.config = ChargingConfig(chemistry=chemistry, **config)
        self.backend_name = backend
        self.backend = make_backend(backend, config=self.config, surrogate=surrogate, device=device,
                                    pybamm_options=pybamm_options)
        if self.config.diagnostics:
            apply_torch_settings(self.config)  # the diagnostics run torch on either backend
        self.diagnostic_terms = DiagnosticTerms(self.config, 1, device=device) if self.config.diagnostics else None
        """The learned-diagnostic reward terms (:class:`envs.diagnostic_terms.DiagnosticTerms`), or None."""
        self.render_mode = render_mode
        self._renderer = ChargeRenderer(render_mode, self.config) if render_mode is not None else None
        self.observation_space = observation_space()
        self.action_space = action_space()
        self._channels: dict[str, np.ndarray] | None = None
        self._scores: dict[str, np.ndarray] | None = None
        self._ambient = np.zeros(1)
        self._c_rate = np.zeros(1)
        self._steps = np.zeros(1, dtype=np.int64)
        self._done = True

    # ------------------------------------------------------------------ helpers
    def _get_obs(self) -> np.ndarray:
        return observe(self._channels, self._c_rate, self._steps, self._ambient, self.config)[0]

    def _get_info(self, terms: dict[str, np.ndarray] | None = None) -> dict:
        info = as_dicts(info_columns(self._channels, self._c_rate, self._steps, self._ambient, self.config, terms,
                                     self._scores if terms is not None else None))[0]
        info.update({k: float(v[0]) for k, v in self._channels.items() if k not in info})  # e.g. the degradation channels
        return info

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        (soc,), (amb,) = sample_starts([self.np_random], self.config, [options])
        soc, amb = float(soc), float(amb)
        rest = self.backend.reset(soc, amb)
        self._channels = {k: np.array([v], dtype=np.float64) for k, v in rest.items()}
        self._ambient = np.array([amb])
        self._c_rate = np.zeros(1)
        self._steps = np.zeros(1, dtype=np.int64)
        self._scores = None
        if self.diagnostic_terms is not None:
            self.diagnostic_terms.reset_rows([0], self._channels["voltage"], self._channels["temperature"])
        self._done = False
        info = self._get_info()
        if self._renderer is not None:
            self._renderer.reset(info)
        return self._get_obs(), info

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        c_rate = action_to_c_rate(check_actions(action, 1), self.config)
        out, failure = self.backend.step(float(-c_rate[0] * self.config.one_c))
        soc_prev = self._channels["soc"]
        if failure is None:
            self._channels = {k: np.array([v], dtype=np.float64) for k, v in out.items()}
        self._c_rate = c_rate
        self._steps = self._steps + 1
        failed = np.array([failure is not None])
        diag_terms = None
        if self.diagnostic_terms is not None:
            self._scores, diag_terms = self.diagnostic_terms.step(
                0.0 - c_rate * self.config.one_c, self._channels["voltage"], self._channels["temperature"], ok=~failed)
        reward, terminated, truncated, terms = evaluate_step(self._channels, soc_prev, self._steps, self.config, failed,
                                                             diag_terms)
        self._done = bool(terminated[0] or truncated[0])
        info = self._get_info(terms)
        if failure is not None:
            info["solver_message"] = failure
        if self._renderer is not None:
            self._renderer.step(info, outcome(info, bool(terminated[0]), bool(truncated[0])))
        return self._get_obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        """``"rgb_array"``: the charge since reset as an RGB frame ``[H, W, 3]`` uint8; ``"human"``: show it; None without
        a render mode."""
        return self._renderer.render() if self._renderer is not None else None

    def close(self):
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
        if getattr(self, "backend", None) is not None:
            self.backend.close()
