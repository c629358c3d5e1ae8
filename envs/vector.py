"""N cells as one batch of surrogate states: a stable-baselines3 ``VecEnv``, one forward pass per step.

Per cell, the semantics are exactly those of ``cellgym/FastCharge-v0`` on the surrogate backend
(:class:`envs.charging.FastChargeEnv`): the same action mapping and checks, observation,
reward terms, termination, truncation and ``info`` keys, computed by the same batch functions
of :mod:`envs.charging`. What the VecEnv adds is SB3's protocol:

* a finished cell is reset at once (``Surrogate.reset_rows``, one call for all finished cells),
  its last observation in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]``
  set as in SB3's ``DummyVecEnv``; the reset's info lands in ``reset_infos``;
* cell i draws its start states from a generator of its own, seeded ``seed + i`` by
  :meth:`seed` (applied at the next :meth:`reset`), so cell i replays what a
  ``FastChargeEnv`` reset with ``seed=seed + i`` (then reset without a seed) would do;
* ``set_options({"soc_start": s, "ambient_temperature": T})`` fixes the next reset's start state.

With ``diagnostics`` the N cells' histories live in one :class:`envs.diagnostic_terms.DiagnosticTerms`:
finished cells' rows are refilled with their rest state at the auto-reset, and each kind scores
all N windows in one call per step.

Torch runs under ``no_grad`` (inside :class:`~surrogates.surrogate.Surrogate`) on ``device``
(``"cuda"`` for a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs.backends import resolve_surrogate, surrogate_rest_channels, surrogate_state_kwargs
from envs.config import DEFAULT_SURROGATE
from envs.charging import (
    action_space,
    action_to_c_rate,
    check_actions,
    evaluate_step,
    make_infos,
    observation_space,
    observe,
    sample_start,
)
from envs.config import ChargingConfig
from envs.diagnostic_terms import DiagnosticTerms


class SurrogateVecEnv(VecEnv):
    """``num_envs`` fast-charging cells on one surrogate, stepped as a batch.

    Args:
        num_envs: number of cells N.
        chemistry: ``"nmc"`` or ``"lfp"``.
        surrogate: an architecture name (the shipped checkpoint), a checkpoint path or a ``Surrogate``.
        device: torch device for the surrogate (``"cpu"``, ``"cuda"``).
        seed: if given, as :meth:`seed` (applied at the first reset).
        **env_kwargs: any field of :class:`envs.config.ChargingConfig`.

    Attributes readable through ``get_attr`` (the same for every cell): ``config``, ``surrogate``,
    ``diagnostic_terms``, ``render_mode``, and the per-cell ``soc``, ``steps``, ``ambient_temperature``, ``np_random``.
    """

    _PER_CELL = ("soc", "steps", "ambient_temperature", "np_random")

    def __init__(self, num_envs: int, chemistry: str = "nmc", surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 seed: int | None = None, **env_kwargs):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs!r}")
        unknown = set(env_kwargs) - set(ChargingConfig.field_names())
        if unknown:
            raise TypeError(f"unknown SurrogateVecEnv arguments {sorted(unknown)}; valid: {', '.join(ChargingConfig.field_names())}")
        n = int(num_envs)
        self.config = ChargingConfig(chemistry=chemistry, **env_kwargs)
        self.surrogate = resolve_surrogate(surrogate, chemistry, device)
        self.surrogate._check_dt(self.config.dt)
        self._state_kwargs = surrogate_state_kwargs(self.surrogate, self.config.max_steps)
        self.diagnostic_terms = DiagnosticTerms(self.config, n, device=device) if self.config.diagnostics else None
        """The learned-diagnostic reward terms of the N cells, or None."""
        self.render_mode = None
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._state = None
        self._channels: dict[str, np.ndarray] = {}
        self._ambient = np.zeros(n)
        self._c_rate = np.zeros(n)
        self._steps = np.zeros(n, dtype=np.int64)
        self._actions: np.ndarray | None = None
        super().__init__(n, observation_space(), action_space())
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------ resets
    def _draw_starts(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start states of cells ``rows`` from their generators (seeded if a seed is pending)."""
        soc, amb = np.empty(len(rows)), np.empty(len(rows))
        for j, i in enumerate(rows):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(self._seeds[i])
                self._seeds[i] = None
            soc[j], amb[j] = sample_start(self._rngs[i], self.config, self._options[i] or None)
            self._options[i] = {}
        return soc, amb

    def _restart(self, rows: np.ndarray) -> None:
        """Reset cells ``rows`` (indices): new start states, fresh model state, rest channels."""
        soc, amb = self._draw_starts(rows)
        if self._state is None:
            self._state = self.surrogate.initial_state(soc, amb, **self._state_kwargs)
            self._channels = surrogate_rest_channels(self.surrogate, soc, amb)
        else:
            self._state = self.surrogate.reset_rows(self._state, rows, soc, amb)
            rest = surrogate_rest_channels(self.surrogate, soc, amb)
            for k, v in rest.items():
                self._channels[k][rows] = v
        self._ambient[rows] = amb
        self._c_rate[rows] = 0.0
        self._steps[rows] = 0
        if self.diagnostic_terms is not None:
            self.diagnostic_terms.reset_rows(rows, self._channels["voltage"][rows], self._channels["temperature"][rows])

    def reset(self) -> VecEnvObs:
        """Reset every cell (pending seeds and options apply); the observations ``[N, 6]``."""
        self._state = None
        self._restart(np.arange(self.num_envs))
        self.reset_infos = make_infos(self._channels, self._c_rate, self._steps, self._ambient, self.config)
        self._actions = None
        return observe(self._channels, self._c_rate, self._steps, self._ambient, self.config)

    # ------------------------------------------------------------------ stepping
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = check_actions(actions, self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        if self._state is None:
            raise RuntimeError("SurrogateVecEnv.step called before reset()")
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        cfg = self.config
        c_rate = action_to_c_rate(self._actions, cfg)
        self._actions = None
        soc_prev = self._channels["soc"]
        out, self._state = self.surrogate.step(self._state, -c_rate * cfg.one_c)
        self._channels = {k: np.array(v) for k, v in out.items()}  # own copies: resets write rows in place
        self._c_rate = c_rate
        self._steps = self._steps + 1
        scores = diag_terms = None
        if self.diagnostic_terms is not None:
            scores, diag_terms = self.diagnostic_terms.step(0.0 - c_rate * cfg.one_c, self._channels["voltage"],
                                                       self._channels["temperature"])
        reward, terminated, truncated, terms = evaluate_step(self._channels, soc_prev, self._steps, cfg,
                                                             diagnostics=diag_terms)
        obs = observe(self._channels, c_rate, self._steps, self._ambient, cfg)
        infos = make_infos(self._channels, c_rate, self._steps, self._ambient, cfg, terms, scores)
        dones = terminated | truncated
        time_limit = (truncated & ~terminated).tolist()
        for info, tl in zip(infos, time_limit):
            info["TimeLimit.truncated"] = tl
        rows = np.flatnonzero(dones)
        if len(rows):
            for i in rows:
                infos[i]["terminal_observation"] = obs[i].copy()
            self._restart(rows)
            obs[rows] = observe({k: v[rows] for k, v in self._channels.items()}, self._c_rate[rows],
                                self._steps[rows], self._ambient[rows], cfg)
            fresh = make_infos({k: v[rows] for k, v in self._channels.items()}, self._c_rate[rows],
                               self._steps[rows], self._ambient[rows], cfg)
            for i, info in zip(rows, fresh):
                self.reset_infos[i] = info
        return obs, reward.astype(np.float32), dones, infos

    # ------------------------------------------------------------------ SB3 plumbing
    def close(self) -> None:
        self._state = None

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Cell i gets ``seed + i`` at the next :meth:`reset` (SB3's convention)."""
        return super().seed(seed)

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """No rendering (like the single env)."""
        return None

    def _cell_attr(self, name: str, i: int) -> Any:
        if name == "soc":
            return float(self._channels["soc"][i]) if self._channels else None
        if name == "steps":
            return int(self._steps[i])
        if name == "ambient_temperature":
            return float(self._ambient[i])
        return self._rngs[i]  # np_random

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        idx = list(self._get_indices(indices))
        if attr_name in self._PER_CELL:
            return [self._cell_attr(attr_name, i) for i in idx]
        if attr_name in ChargingConfig.field_names():
            return [getattr(self.config, attr_name)] * len(idx)
        value = getattr(self, attr_name)  # AttributeError as SB3 expects
        return [value] * len(idx)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Shared attributes only: a config field (for every cell) or ``np_random`` per cell."""
        idx = list(self._get_indices(indices))
        if attr_name == "np_random":
            for i in idx:
                self._rngs[i] = value
        elif attr_name in ChargingConfig.field_names():
            if len(idx) != self.num_envs:
                raise ValueError(f"{attr_name!r} is shared by every cell of a SurrogateVecEnv; set it for all of them")
            if attr_name == "diagnostics":
                raise ValueError("diagnostics are loaded when the SurrogateVecEnv is made; make a new one to change "
                                 "them (diagnostic_weights can be set)")
            setattr(self.config, attr_name, value)
            self.config.__post_init__()
        elif attr_name in self._PER_CELL:
            raise AttributeError(f"{attr_name!r} is simulation state; use reset / set_options instead")
        else:
            if len(idx) != self.num_envs:
                raise ValueError(f"{attr_name!r} is shared by every cell of a SurrogateVecEnv; set it for all of them")
            setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of the VecEnv once per requested cell (the cells share one object)."""
        idx = list(self._get_indices(indices))
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """The cells are not gym envs, so never wrapped (wrap the VecEnv in ``VecMonitor`` instead)."""
        return [False] * len(list(self._get_indices(indices)))
