"""Rule-based charging protocols that act through the env API, like an SB3 agent.

Glossary (units as in :mod:`surrogates.common.channels`):

    c        charging C-rate [1/h]; c_prev the one applied during the last interval (in the observation)
    V        terminal voltage [V] at the end of the last interval (in the observation)
    v_cv     constant-voltage set point [V] (default: the env's v_max)
    g        CV gain [C/V]

Both policies read voltage, C-rate, SOC and elapsed time from the observation (de-normalised
with :func:`envs.config.obs_to_physical` and the env's :class:`~envs.config.ChargingConfig`),
choose a C-rate and return the env's action in [-1, 1]. They have SB3's
``predict(obs, state=None, episode_start=None, deterministic=True) -> (actions, state)``, take
one observation ``(6,)`` or a batch ``(N, 6)`` (a ``VecEnv``), and keep no state between calls,
so ``stable_baselines3.common.evaluation.evaluate_policy`` drives them on either backend, or on
:class:`envs.vector.SurrogateVecEnv`, exactly as it drives a trained agent.

The rule, per cell: the protocol's C-rate ``c_cc`` (CC-CV: one; multi-step: by SOC window), and
a constant-voltage phase once V reaches v_cv. CV is an integral controller on the current::

    c = c_cc                                            on the first interval (elapsed = 0)
    c = clip(c_prev + g * (v_cv - V), 0, c_cc)          afterwards

While V < v_cv this is c_cc (CC); above v_cv the current falls until V settles at v_cv (CV),
the usual taper. The loop V_k+1 - v_cv ~ (1 - R g)(V_k - v_cv) is stable for 0 < R g < 2 with
R the cell's resistance in V per C; the error settles at about dOCV/(R g), the rise of the
open-circuit voltage per interval over R g. On the DFN (nmc, 25 C) the default g = 10 C/V
settles within a few intervals and then holds V 1-3 mV above v_cv; g = 20 already oscillates
at 75 % SOC, where the cell's resistance is highest. The interval in which V first crosses
v_cv overshoots (a 10 s current step cannot be corrected inside the interval: +47 mV for 2C
from rest at 75 % SOC). Pass ``v_max`` a few mV under the env's limit to stay below it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.config import ChargingConfig, c_rate_to_action, obs_to_physical

CV_MARGIN = 0.005
"""The baselines' constant-voltage set point sits this far below v_max [V]: a 10 s CV loop holds
V a few mV above its set point (see the module docstring), and the limit is checked strictly."""


def _config_of(env_or_config) -> ChargingConfig:
    """The :class:`ChargingConfig` of an env (gym, wrapped, or SurrogateVecEnv) or a config."""
    if isinstance(env_or_config, ChargingConfig):
        return env_or_config
    for getter in (lambda e: e.unwrapped.config, lambda e: e.config, lambda e: e.get_attr("config")[0]):
        try:
            cfg = getter(env_or_config)
        except (AttributeError, IndexError):
            continue
        if isinstance(cfg, ChargingConfig):
            return cfg
    raise TypeError(f"cannot find a ChargingConfig on {env_or_config!r}")


class RulePolicy:
    """Base: SOC-windowed CC rates with a CV phase at ``v_cv`` (see the module docstring).

    Args:
        windows: ``[(soc_upto, c_rate), ...]`` with increasing ``soc_upto``: ``c_rate`` [1/h]
            applies while soc < soc_upto; above the last window the last rate holds.
        v_cv: constant-voltage set point [V]; None: the env's ``v_max``.
        cv_gain: g [C/V].
        config: the env's :class:`ChargingConfig` (or an env to take it from); None: a
            default config built from ``config_kwargs`` (e.g. ``chemistry="lfp", c_max=4``).
    """

    def __init__(self, windows: Sequence[tuple[float, float]], v_cv: float | None = None, cv_gain: float = 10.0,
                 config=None, **config_kwargs):
        self.config = _config_of(config) if config is not None else ChargingConfig(**config_kwargs)
        w = [(float(s), float(c)) for s, c in windows]
        if not w:
            raise ValueError("windows must hold at least one (soc_upto, c_rate) pair")
        if any(c < 0 for _, c in w) or any(b[0] <= a[0] for a, b in zip(w, w[1:])):
            raise ValueError(f"windows need increasing soc_upto and C-rates >= 0, got {windows!r}")
        if max(c for _, c in w) > self.config.c_max + 1e-9:
            raise ValueError(f"a window's C-rate exceeds the env's c_max={self.config.c_max}: {windows!r}")
        if cv_gain <= 0:
            raise ValueError(f"cv_gain must be > 0, got {cv_gain!r}")
        self.windows = w
        self.v_cv = float(self.config.v_max if v_cv is None else v_cv)
        self.cv_gain = float(cv_gain)

    @classmethod
    def for_env(cls, env, *args, **kwargs):
        """The policy with ``env``'s config (a gym env, a wrapped one or a SurrogateVecEnv)."""
        return cls(*args, config=_config_of(env), **kwargs)

    def cc_rate(self, soc: np.ndarray) -> np.ndarray:
        """The protocol's CC rate [1/h] at ``soc`` ``[N]``."""
        edges = np.array([s for s, _ in self.windows])
        rates = np.array([c for _, c in self.windows])
        return rates[np.minimum(np.searchsorted(edges, soc, side="right"), len(rates) - 1)]

    def c_rate(self, obs) -> np.ndarray:
        """Observation(s) ``[N, 6]`` -> the C-rate [1/h] to apply next, ``[N]``."""
        p = obs_to_physical(np.atleast_2d(obs), self.config)
        c_cc = self.cc_rate(p["soc"])
        cv = np.clip(p["c_rate"] + self.cv_gain * (self.v_cv - p["voltage"]), 0.0, c_cc)
        return np.where(p["elapsed"] <= 0.0, c_cc, cv)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3's signature: actions ``(1,)`` for one observation ``(6,)``, ``(N, 1)`` for ``(N, 6)``."""
        obs = np.asarray(observation)
        actions = c_rate_to_action(self.c_rate(obs), self.config)[:, None]  # (N, 1)
        return (actions[0] if obs.ndim == 1 else actions), state

    def __call__(self, observation):
        return self.predict(observation)[0]


class CCCVPolicy(RulePolicy):
    """Constant current at ``c_rate`` [1/h], then constant voltage at ``v_max`` (the env's by default).

    >>> policy = CCCVPolicy.for_env(env, c_rate=1.0)
    >>> action, _ = policy.predict(obs)
    """

    def __init__(self, c_rate: float, v_max: float | None = None, cv_gain: float = 10.0, config=None, **config_kwargs):
        super().__init__([(1.0, c_rate)], v_cv=v_max, cv_gain=cv_gain, config=config, **config_kwargs)
        self.c_rate_cc = float(c_rate)

    def __repr__(self) -> str:
        return f"CCCVPolicy(c_rate={self.c_rate_cc}, v_max={self.v_cv})"


class MultiStepCCPolicy(RulePolicy):
    """Multi-step constant current by SOC window, then constant voltage at ``v_max``.

    ``windows=[(0.3, 3.0), (0.6, 2.0), (0.8, 1.0)]`` charges at 3C below 30 % SOC, 2C to 60 %,
    1C above; whenever the voltage reaches ``v_max`` the current tapers (CV).
    """

    def __init__(self, windows: Sequence[tuple[float, float]], v_max: float | None = None, cv_gain: float = 10.0,
                 config=None, **config_kwargs):
        super().__init__(windows, v_cv=v_max, cv_gain=cv_gain, config=config, **config_kwargs)

    def __repr__(self) -> str:
        return f"MultiStepCCPolicy(windows={self.windows}, v_max={self.v_cv})"


class ProfilePolicy:
    """Plays back a C-rate profile [1/h], one value per interval (then rests): a stored charge, redrawn."""

    def __init__(self, c_rate, config: ChargingConfig):
        self.actions = c_rate_to_action(np.asarray(c_rate, dtype=np.float64), config)
        self.config = config

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        k = int(round(float(obs_to_physical(np.asarray(observation), self.config)["elapsed"]) / self.config.dt))
        return np.array([self.actions[k] if k < len(self.actions) else -1.0], dtype=np.float32), state


__all__ = ["CV_MARGIN", "RulePolicy", "CCCVPolicy", "MultiStepCCPolicy", "ProfilePolicy"]
